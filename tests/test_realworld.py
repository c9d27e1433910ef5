"""Real published instrumentation libraries, live: each release installed in its own environment
(cached under ~/.cache/compatcheck-tests), served on loopback and scraped by ``compatcheck diff``
with Prometheus's content negotiation. The exact findings are each pair's ``expected.yaml``,
written from the libraries' changelogs and sources (tests/realworld.py lists the pairs).

Marker ``realworld``: not part of the default run; ``.ci/run`` runs them after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.realworld import PAIRS, Missing, Pair, capture, running
from tests.test_realworld_fixtures import diff_json, expected_of, findings_of

pytestmark = pytest.mark.realworld
MEDIA = {"text": "text/plain", "openmetrics": "application/openmetrics-text"}


@pytest.fixture(params=PAIRS, ids=[p.name for p in PAIRS])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Pair, str, str]]:
    pair: Pair = request.param
    with ExitStack() as stack:
        try:
            old = stack.enter_context(running(pair, pair.old, tmp_path))
            new = stack.enter_context(running(pair, pair.new, tmp_path))
        except Missing as exc:
            if os.environ.get("COMPATCHECK_REQUIRE_SERVERS") == "1":
                pytest.fail(f"{exc} and COMPATCHECK_REQUIRE_SERVERS=1")
            pytest.skip(str(exc))
        yield pair, old, new


def test_live_pair_gives_the_expected_findings(live: tuple[Pair, str, str], tmp_path: Path) -> None:
    pair, old, new = live
    expected = expected_of(pair)
    captured = {"old": capture(old), "new": capture(new)}
    for role in ("old", "new"):
        negotiated = captured[role]["negotiated"][0]
        assert negotiated.startswith(MEDIA[expected[f"{role}_format"]]), (role, negotiated)
    code, doc = diff_json(f"{old}/metrics", f"{new}/metrics", tmp_path)
    assert findings_of(doc) == {tuple(f) for f in expected["findings"]}
    assert doc["verdict"] == expected["verdict"]
    assert code == (0 if expected["verdict"] == "go" else 1)
    # NEW's own text rendering against its negotiated one (scraped live): one schema.
    text = tmp_path / "new.prom"
    text.write_bytes(captured["new"]["text"][1])
    code, doc = diff_json(str(text), f"{new}/metrics", tmp_path)
    assert (code, findings_of(doc)) == (0, set())
