"""``--format html`` in a real headless browser (Debian's chromium): the page the CLI writes
renders offline, shows the verdict and every cause, and its screenshot is kept in the test's
tmp dir (``pytest --basetemp=DIR`` keeps it where CI collects artifacts)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.cli import run

REPO = Path(__file__).resolve().parent.parent
RENAMED = REPO / "fixtures" / "metrics" / "renamed"
CONSUMERS = REPO / "fixtures" / "consumers" / "shop"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: The causes of the renamed fixture with the shop's consumers, in the order the page lists them.
CAUSES = [
    ("metrics/label-removed", "shop_orders_created_total{payment_method}"),
    ("metrics/renamed", "shop_orders_created_total"),
    ("metrics/buckets-changed", "http_request_duration_seconds"),
    ("metrics/family-removed", "worker_threads"),
    ("metrics/renamed", "http_server_requests_total"),
    ("metrics/family-added", "db_connections"),
]


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB(A), non-interlaced PNG (what chromium writes) into rows of bytes."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        ctype, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 4 if colour == 6 else 3
        elif ctype == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line if channels == 3 else _rgb(line)))
        prev = line
    return width, height, rows


def _rgb(rgba: bytearray) -> bytes:
    return bytes(v for i, v in enumerate(rgba) if i % 4 != 3)


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    proc = run(
        "diff",
        str(RENAMED / "old.prom"),
        str(RENAMED / "new.prom"),
        "--consumers",
        str(CONSUMERS),
        "--format",
        "html",
        "-o",
        str(page),
    )
    assert proc.returncode == 1, proc.stderr
    text = page.read_text()
    # Self-contained: nothing fetched, nothing run.
    assert re.findall(r"<(script|link|img|iframe)\b", text) == []
    assert "http://" not in text.replace("http://www.w3.org", "")
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    verdict = re.search(r'<div class="verdict no-go" id="verdict">(.*?)</div>', dom.stdout)
    assert verdict is not None
    assert verdict.group(1) == (
        "NO-GO: 2 blocking problems (5 findings); 3 warnings, 1 info (rollback new → old)"
    )
    shown = re.findall(
        r'<section class="cause \w+" id="cause-\d+">.*?<code>([^<]+)</code> <code>([^<]+)</code>',
        dom.stdout,
        re.S,
    )
    assert [(k, s.replace("&amp;", "&")) for k, s in shown] == CAUSES
    shot = tmp_path / "report.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,6000", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr
    width, height, rows = _pixels(shot.read_bytes())
    assert (width, height) == (1200, 6000)
    # The verdict banner is painted (NO-GO red) near the top, and the whole page fits: the last
    # rows are the page background, so no cause is cut off below the fold.
    red = bytes((0xB3, 0x26, 0x1E))
    assert any(rows[y].count(red) > 300 for y in range(0, 200)), "no red verdict banner"
    background = bytes((0xF5, 0xF6, 0xF8)) * width
    assert rows[-1] == background and rows[-50] == background
