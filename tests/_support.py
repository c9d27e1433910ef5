"""Small helpers several test modules share (expected values, a fixture script's import, a
verify section, a one-line error), written once instead of again per module."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from compatcheck.model import MetricFamily
from compatcheck.verify.section import VerifyCheck, VerifySection


def sampled(name: str, type_: str, **kw: Any) -> MetricFamily:
    """A family as the parser reports one that had samples: ``has_samples`` is what every
    expectation of a parsed exposition with samples holds, the rest is what the test decides."""
    return MetricFamily(name=name, type=type_, has_samples=True, **kw)


def load_script(path: Path) -> ModuleType:
    """Import a fixture's generator script by its path: the fixture folders are not packages, and
    the tests must call the very code that wrote the committed files."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def failing_verify_section() -> VerifySection:
    """A post-rollback verification that failed on the error rate, one check of each status: what
    every reporter must show of a verify section (the formats and the HTML page share it)."""
    checks = (
        VerifyCheck("build", "ok", "1 of 1 instances report version `1.0.0`", "shop_build_info"),
        VerifyCheck("targets", "ok", "1 of 1 targets up", 'up{job="shop"}', 1.0),
        VerifyCheck("series", "skipped", "no consumers given"),
        VerifyCheck(
            "error-rate",
            "failing",
            "0.3 > 0.015",
            "sum(rate(x[5m]))",
            0.3,
            "t1",
            None,
            ("{}: 0.3",),
        ),
        VerifyCheck("alerts", "ok", "no alert firing", "GET /api/v1/alerts", 0.0, "t1", "t0"),
    )
    return VerifySection(
        prometheus="http://prom:9090",
        selector='{job="shop"}',
        expect="v1",
        window_seconds=60,
        interval_seconds=15,
        started_at="t0",
        finished_at="t1",
        polls=4,
        verified=False,
        checks=checks,
    )


def one_line_error(error: type[Exception], call: Callable[[], object]) -> str:
    """The message of the ``error`` that ``call`` raises, insisting it is one line (the CLI prints
    it as such: a traceback or a wrapped dump would be a bug of its own)."""
    with pytest.raises(error) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message
