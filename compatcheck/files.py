"""Reading the files a user names, with one-line errors that name the file.

Every input (exposition, snapshot, config, policy) fails the same few ways; saying so in one
place keeps the messages identical across commands, so scripts and people can rely on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from compatcheck.errors import InputError


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[Path]:
    """Map the ways reading ``path`` fails to :class:`InputError` lines naming it.

    ``what`` names the expected kind of file (``"snapshot file"``) in the messages.
    """
    p = Path(path)
    try:
        yield p
    except FileNotFoundError:
        raise InputError(f"{p}: no such {what}") from None
    except IsADirectoryError:
        article = "an" if what[:1] in "aeiou" else "a"
        raise InputError(f"{p}: is a directory, expected {article} {what}") from None
    except PermissionError:
        raise InputError(f"{p}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None


def read_text(path: str | Path, what: str = "file", *, max_bytes: int | None = None) -> str:
    """The whole UTF-8 text of ``path``; failures as :func:`reading` says.

    With ``max_bytes``, a larger file is refused after reading at most one byte more (a config
    pointed at a multi-GB file must not fill memory first).
    """
    with reading(path, what) as p:
        if max_bytes is None:
            return p.read_text(encoding="utf-8")
        return read_bytes(p, what, max_bytes=max_bytes).decode("utf-8")


def read_bytes(path: str | Path, what: str = "file", *, max_bytes: int) -> bytes:
    """The bytes of ``path``, refused when larger than ``max_bytes`` after reading at most one
    byte more (a config pointed at a multi-GB file must not fill memory first); failures as
    :func:`reading` says."""
    with reading(path, what) as p, p.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{p}: {what} larger than {_size(max_bytes)}")
    return data


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"
