"""Entry points of the exposition reader: bytes or text into blocks of whole lines.

The input is never split into a list of lines nor held whole when it streams: blocks of about
:data:`BLOCK_CHARS` are cut at a newline and handed to the reader, so memory stays flat in the
size of the input, and a line longer than :data:`MAX_LINE_BYTES` fails as soon as that much of
it has been seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from compatcheck.errors import ExpositionError
from compatcheck.exposition.grammar import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    is_openmetrics,
)
from compatcheck.exposition.reader import Reader
from compatcheck.files import reading
from compatcheck.model import MetricsSchema

#: Characters decoded per block; a block is cut at a newline so lines are never split.
BLOCK_CHARS = 1 << 18
#: Bytes looked at (from the start, plus the last few hundred) to detect OpenMetrics.
DETECT_BYTES = 1 << 16
#: Longest line read (bytes; characters for text already decoded). Real lines are well under a
#: KB; a longer one is refused at once, before the rest of it is read.
MAX_LINE_BYTES = 1 << 20


# -- entry points ------------------------------------------------------------------------------


def _clean(block: str) -> str:
    if "\r" in block:
        block = block.replace("\r\n", "\n")
        if block.endswith("\r"):  # the \n was the cut point
            block = block[:-1]
    return block


def parse_text(text: str, *, content_type: str = "") -> MetricsSchema:
    """Read a whole exposition held in memory (blocks of it at a time, never split into lines).

    ``content_type`` is the negotiated Content-Type, if known; otherwise the format is sniffed
    (see :func:`is_openmetrics`). Raises :class:`ExpositionError` on the first invalid line.
    """
    return _parse_text(text, content_type, fast_path=True)


def _parse_text(text: str, content_type: str, fast_path: bool) -> MetricsSchema:
    openmetrics = is_openmetrics(content_type, text[:DETECT_BYTES] + "\n" + text[-512:])
    reader = Reader(openmetrics, content_type or _canonical(openmetrics), fast_path)
    if not text:
        return reader.finish()
    # The lines are text.split("\n") less the empty piece after a final newline.
    stop = len(text) - 1 if text.endswith("\n") else len(text)
    start = 1 if text.startswith("\ufeff") else 0
    while start <= stop:
        end = start + BLOCK_CHARS
        cut = text.rfind("\n", start, end) if end < stop else stop
        if cut < 0:  # one line longer than a block: look no further than the longest allowed
            limit = start + MAX_LINE_BYTES + 1
            cut = text.find("\n", end, min(stop, limit))
            if cut < 0:
                cut = stop
            if cut - start > MAX_LINE_BYTES:
                raise _too_long(reader.lines + 1)
        reader.feed(_clean(text[start:cut]))
        start = cut + 1
    return reader.finish()


def _canonical(openmetrics: bool) -> str:
    return CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT


def parse_stream(chunks: Iterable[bytes], *, content_type: str = "") -> MetricsSchema:
    """Read an exposition from byte chunks (e.g. ``httpx.Response.iter_bytes()``) as they come.

    Chunks are gathered into blocks cut at a newline and each block is decoded on its own:
    a UTF-8 sequence never contains a newline byte, so a cut there never splits a character, and
    invalid UTF-8 is reported with the number of the line that holds it. Only one block and the
    schema are in memory at a time.
    """
    it = iter(chunks)
    head: list[bytes] = []
    size = 0
    for chunk in it:
        head.append(chunk)
        size += len(chunk)
        if size >= DETECT_BYTES:
            break
    first = b"".join(head)
    probe = first.decode("utf-8", "replace")
    openmetrics = is_openmetrics(content_type, probe)
    reader = Reader(openmetrics, content_type or _canonical(openmetrics))
    _feed_bytes(reader, _prepend(first, it))
    return reader.finish()


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _too_long(line: int) -> ExpositionError:
    return ExpositionError(f"line longer than {MAX_LINE_BYTES >> 20} MiB", line)


def _feed_bytes(reader: Reader, chunks: Iterable[bytes]) -> None:
    """Gather chunks into blocks of whole lines and feed them.

    Each byte is looked at once for a newline (only the new chunk is searched), so a very long
    line costs linear time; a line past :data:`MAX_LINE_BYTES` fails as soon as that many bytes
    of it have arrived, holding at most that much in memory.
    """
    pending: list[bytes] = []
    size = 0
    #: Bytes after the last newline in ``pending`` (the line being read); -1: no newline yet.
    tail = 0
    has_newline = False
    at_start = True
    for chunk in chunks:
        if not chunk:
            continue
        pending.append(chunk)
        size += len(chunk)
        nl = chunk.rfind(b"\n")
        if nl < 0:
            tail += len(chunk)
            if tail > MAX_LINE_BYTES:
                raise _too_long(reader.lines + sum(c.count(b"\n") for c in pending) + 1)
        else:
            tail = len(chunk) - nl - 1
            has_newline = True
        if size < BLOCK_CHARS or not has_newline:
            continue
        data = b"".join(pending)
        cut = len(data) - tail - 1
        _feed_block(reader, data[:cut], at_start)
        at_start = False
        rest = data[cut + 1 :]
        pending = [rest] if rest else []
        size = len(rest)
        has_newline = False
    data = b"".join(pending)
    if data.endswith(b"\n"):
        data = data[:-1]
    elif not data:
        return
    _feed_block(reader, data, at_start)


def _feed_block(reader: Reader, data: bytes, at_start: bool) -> None:
    if at_start and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if len(data) > MAX_LINE_BYTES:  # only then can a line in it be too long (one scan)
        start = 0
        while start <= len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end
            if end - start > MAX_LINE_BYTES:
                raise _too_long(reader.lines + data.count(b"\n", 0, start) + 1)
            start = end + 1
    try:
        block = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = reader.lines + data.count(b"\n", 0, err.start) + 1
        bad = data[err.start : err.end].hex(" ")
        raise ExpositionError(f"invalid UTF-8 (bytes {bad})", line) from None
    reader.feed(_clean(block))


def read_exposition_file(path: str | Path) -> MetricsSchema:
    """Read an exposition file in chunks; the format is sniffed from its start and its end.

    A file that cannot be read raises :class:`InputError` with a one-line message naming it; an
    invalid exposition raises :class:`ExpositionError` (``.line``, ``.reason``), whose message the
    caller prefixes with the file name.
    """
    with reading(path, "exposition file") as p, open(p, "rb") as fh:
        head = fh.read(DETECT_BYTES)
        size = os.fstat(fh.fileno()).st_size
        tail = b""
        if size > len(head):
            fh.seek(max(len(head), size - 512))
            tail = fh.read()
            fh.seek(len(head))
        probe = (head + b"\n" + tail).decode("utf-8", "replace")
        openmetrics = is_openmetrics("", probe)
        reader = Reader(openmetrics, _canonical(openmetrics))
        _feed_bytes(reader, _prepend(head, iter(lambda: fh.read(BLOCK_CHARS), b"")))
    return reader.finish()
