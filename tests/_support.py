"""Small builders several test modules share, so that an expected value is one readable line
instead of the same keyword block written again per test."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from compatcheck.model import MetricFamily


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
