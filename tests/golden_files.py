"""The golden reports under tests/golden/: how a rendered report is compared with its file.

A golden file holds what its case decides, and nothing that is the same in every case or in
several of them, so that a change to shared markup is reviewed once, not once per case:

- the tool version (it changes with every release) is a placeholder;
- an HTML page's frame, the same in every page, is checked once here, to the letter, and left
  out of the golden files: the document head (character set, Content-Security-Policy, the style
  sheet exactly once) around the page's ``<title>``, the body's opening and closing tags, and the
  head row and end of the versions table around its two rows. The style sheet is pinned by its
  SHA-256 in ``tests/golden/html_frame/style.css.sha256`` (the sheet itself is read in the
  reporter's diff; a change to it fails here once, not per page, until the digest is written
  again);
- a run of whole lines that stands in several HTML pages (the same cause, the same migration
  timeline) is written once, in ``tests/golden/html_parts/NAME.html``, and each page that shows it
  holds the line ``<!-- golden part: NAME -->`` in its place; a part may hold another part's
  line (a whole page body two cases share, with a cause a third case shows too).

The comparison keeps its full strength: a page is compared to the letter with its golden file
after the parts are put back in (:func:`expected`); only ``UPDATE_GOLDEN=1`` writes files, with
each part's markup taken out again (:func:`stored`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from compatcheck import __version__

GOLDEN = Path(__file__).resolve().parent / "golden"
PARTS = GOLDEN / "html_parts"
#: The SHA-256 of the reporter's style sheet, as every page must carry it.
STYLE = GOLDEN / "html_frame" / "style.css.sha256"
_STYLE = re.compile("<style>(.*?)</style>", re.DOTALL)

#: The frame of every HTML page, which the golden files do not hold (see the module's docstring).
PAGE_OPEN = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta http-equiv='
    "\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
)
PAGE_CLOSE = "</main></body></html>\n"
VERSIONS_HEAD = "<table><tr><th>version</th><th>label</th><th>source</th><th>build</th></tr>\n"
_VERSIONS = re.compile(re.escape(VERSIONS_HEAD) + "(<tr>[^\n]*</tr>\n<tr>[^\n]*</tr>\n)</table>\n")
_PART_LINE = re.compile(r"^<!-- golden part: ([a-z0-9-]+) -->\n", re.MULTILINE)


def normalise(text: str, fmt: str) -> str:
    """The rendered report with the version a placeholder and, for a page, its frame checked and
    left out (the title line first, then the body; the versions table its two rows)."""
    text = text.replace(f'"{__version__}"', '"<version>"')
    if fmt != "html":
        return text
    assert text.count("<style") == 1, "not exactly one style element"
    style = _STYLE.search(text)
    assert style is not None, "the style element is not closed"
    css = style.group(1)
    assert style_digest(css) == STYLE.read_text(encoding="utf-8").strip(), (
        f"the style sheet changed: review it, then run UPDATE_GOLDEN=1 to write {STYLE}"
    )
    page = _page(css).fullmatch(text)
    assert page is not None, "the page is not in the reporter's frame (head, body, end)"
    body, found = _VERSIONS.subn(r"\1", page.group(2))
    assert found == 1, "the page has not exactly one versions table with its two rows"
    return f"{page.group(1)}\n{body}"


def style_digest(css: str) -> str:
    """What :data:`STYLE` holds for the style sheet ``css``."""
    return hashlib.sha256(css.encode("utf-8")).hexdigest()


@functools.cache
def _page(css: str) -> re.Pattern[str]:
    """The frame of a page around its title line and its body."""
    head_end = f"<style>{css}</style></head>\n<body><main>\n"
    return re.compile(
        re.escape(PAGE_OPEN) + "(<title>[^\n]*</title>)" + re.escape(head_end) + "(.*)"
        + re.escape(PAGE_CLOSE),
        re.DOTALL,
    )  # fmt: skip


def parts() -> dict[str, str]:
    """The shared runs of HTML lines by name, as stored (whole lines, maybe holding parts)."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(PARTS.glob("*.html"))}


def parts_used(golden: str) -> list[str]:
    """The names of the parts a golden page or part holds directly, in order."""
    return _PART_LINE.findall(golden)


def expected(golden: str) -> str:
    """The golden page with each part's placeholder line replaced by the part's lines, parts held
    in parts included."""
    known = parts()

    def put_back(match: re.Match[str]) -> str:
        assert match.group(1) in known, f"no golden part {match.group(1)!r} in {PARTS}"
        return known[match.group(1)]

    for _ in range(len(known) + 1):  # a part in a part in ...: never deeper than there are parts
        if not _PART_LINE.search(golden):
            return golden
        golden = _PART_LINE.sub(put_back, golden)
    raise AssertionError(f"golden parts hold each other in a cycle: {parts_used(golden)}")


def stored(page: str) -> str:
    """What ``UPDATE_GOLDEN=1`` writes for a normalised page: each part's lines taken out, the
    largest part first (a part holding another is taken out whole). Only whole lines: a part's
    text ending a longer line stays, since its placeholder there would never be put back."""
    full = {name: expected(text) for name, text in parts().items()}
    for name in sorted(full, key=lambda n: -len(full[n])):
        line = f"<!-- golden part: {name} -->\n"  # a name holds no backslash: a plain template
        page = re.sub(f"^{re.escape(full[name])}", line, page, flags=re.MULTILINE)
    return page
