"""compatcheck: is rolling back from NEW to OLD safe, and if not, exactly what breaks?

The public Python API (``docs/api.md`` has an example the tests run)::

    from compatcheck import EvaluateOptions, evaluate, load_source, render

    old = load_source("old.prom", label="v1")
    new = load_source("http://127.0.0.1:9000/metrics", label="v2")
    report = evaluate(old, new, EvaluateOptions(consumers=("monitoring/",)))
    print(render(report, "text"))

The names are imported on first use, so ``import compatcheck`` (and the CLI's start-up) stays
cheap; the CLI and the HTTP hook call the same functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.policy import Policy, load_policy
    from compatcheck.report import RatedFinding, Report
    from compatcheck.reporters import render
    from compatcheck.snapshot import Snapshot
    from compatcheck.sources import load_source

#: Public name → the module that defines it.
_EXPORTS = {
    "EvaluateOptions": "compatcheck.engine",
    "evaluate": "compatcheck.engine",
    "Policy": "compatcheck.policy",
    "load_policy": "compatcheck.policy",
    "RatedFinding": "compatcheck.report",
    "Report": "compatcheck.report",
    "render": "compatcheck.reporters",
    "Snapshot": "compatcheck.snapshot",
    "load_source": "compatcheck.sources",
}

__all__ = [
    "EvaluateOptions",
    "Policy",
    "RatedFinding",
    "Report",
    "Snapshot",
    "__version__",
    "evaluate",
    "load_policy",
    "load_source",
    "render",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compatcheck' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
