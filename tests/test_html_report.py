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

from tests._support import failing_verify_section
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


#: A policy for the renamed fixture: one waiver that applies, one expired, one matching nothing.
POLICY = """\
waivers:
  - kind: metrics/family-removed
    subject: worker_threads
    reason: "threads gauge retired, OPS-7"
    expires: 2099-12-31
  - kind: metrics/family-added
    subject: db_connections
    reason: "pool gauge is new"
    expires: 2020-01-31
  - kind: metrics/type-changed
    subject: nothing_here
    reason: "left over"
    expires: 2099-12-31
"""
DIGEST = "sha256:" + "ab" * 32


def _sections_report(tmp: Path) -> str:
    """The renamed fixture with waivers, OLD's artifact and a post-rollback verification: every
    section the HTML report has beyond the causes, built by the real engine."""
    from compatcheck.artifact.section import ArtifactSection
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.policy import load_policy
    from compatcheck.reporters import render
    from compatcheck.sources import load_source

    (tmp / "policy.yaml").write_text(POLICY, encoding="utf-8")
    artifact = ArtifactSection.from_json(
        {
            "reference": "registry.example/shop:v1.4.2",
            "digest": DIGEST,
            "pinned": False,
            "pinned_reference": f"registry.example/shop@{DIGEST}",
            "rollback_commands": [f"kubectl set image deployment/shop app=shop@{DIGEST}"],
        }
    )
    verify = failing_verify_section()
    report = evaluate(
        load_source(str(RENAMED / "old.prom")),
        load_source(str(RENAMED / "new.prom")),
        EvaluateOptions(
            policy=load_policy([str(tmp / "policy.yaml")]), artifact=artifact, verify=verify
        ),
    )
    return render(report, "html")


@pytest.mark.slow
def test_html_report_shows_waivers_verify_and_artifact_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "sections.html"
    page.write_text(_sections_report(tmp_path), encoding="utf-8")
    dom = _chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout.replace("&amp;", "&").replace("&quot;", '"')
    sections = re.findall(r'<h2 id="([a-z-]+)">([^<]+)</h2>', html)
    assert sections == [
        ("waived", "Waived"),
        ("expired-waivers", "Expired waivers"),
        ("unused-waivers", "Unused waivers"),
        ("verify", "Verification"),
        ("artifact", "Artifact"),
    ]
    assert "<code>worker_threads</code> (gauge) disappears." in html
    assert "waived until 2099-12-31: threads gauge retired, OPS-7" in html
    assert "metrics/family-added db_connections</code>: expired 2020-01-31" in html
    assert "metrics/type-changed nothing_here</code>: matched no finding, remove it" in html
    assert '<td class="unsafe">failing</td><td>0.3 &gt; 0.015<br>{}: 0.3</td>' in html
    assert "<code>sum(rate(x[5m]))</code>" in html
    assert f"registry.example/shop:v1.4.2 → registry.example/shop@{DIGEST}" in html
    # NO-GO (the renames): the rollback command waits below, framed as after the problems.
    assert "<h2>Rollback steps, once the problems are resolved</h2>" in html
    assert f"kubectl set image deployment/shop app=shop@{DIGEST}" in html
    verdict = re.search(r'<div class="verdict no-go" id="verdict">(.*?)</div>', html)
    assert verdict is not None and verdict.group(1).startswith("NOT VERIFIED: ")
    shot = tmp_path / "sections.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,8000", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr
    width, _, rows = _pixels(shot.read_bytes())
    assert rows[-1] == bytes((0xF5, 0xF6, 0xF8)) * width, "the page is cut off below the fold"
