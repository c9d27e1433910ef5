"""Where a command's results go: the report in its format (to ``-o`` or stdout, with the exit
code it means), the bridge rule file, and the checks that an output path is writable before a
run starts (a usage error now, not after minutes of capture).

Every command that ends in a report (``diff``, ``check``, ``migrations``, ``verify``) ends in
:func:`write_report`; :mod:`compatcheck.cli` chooses the command, this module writes its result.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import IO, Any

from compatcheck.arguments import EXIT_GO, EXIT_NO_GO, EXIT_UNAVAILABLE
from compatcheck.errors import UsageError
from compatcheck.masking import mask_secrets

__all__ = ["prepare_output", "write_bridge", "write_file", "write_report"]


def write_bridge(args: argparse.Namespace, report: Any, old: Any, new: Any) -> None:
    """Write the bridge rule file from the report's findings and the two metrics schemas."""
    target = getattr(args, "emit_bridge_rules", None)
    if not target:
        return
    from compatcheck.consumers import render_bridge_rules

    before, after = (new, old) if args.direction == "rollback" else (old, new)
    if before.metrics is None or after.metrics is None:
        raise UsageError(f"{target}: no bridge rules: the metrics of both versions are needed")
    findings = [rf.finding for rf in report.findings]
    write_file(target, render_bridge_rules(findings, before.metrics, after.metrics))


def prepare_output(path: str) -> None:
    """Check an output path before the run starts: its folder is created, and a directory or
    an unwritable place is a usage error now, not after minutes of capture."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{path}: is a directory, expected a file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{path}: cannot create its folder: {exc.strerror}") from None
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"{path}: cannot write: permission denied")


def write_file(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def _use_color(args: argparse.Namespace, stream: IO[str]) -> bool:
    if args.no_color or os.environ.get("NO_COLOR") or getattr(args, "output", None):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


#: The formats whose file paths are relative to the workspace (see ``Report.workspace``): only
#: they ask git for it, the others start no process (the snapshot gate waits for every one).
_PATH_FORMATS = ("github", "sarif")


def _stamped(args: argparse.Namespace, report: Any) -> Any:
    """The report with the command line as it ran and the total time since start-up."""
    import time

    started = getattr(args, "started", None)
    timings = dict(report.timings)
    if isinstance(started, float):
        timings["total"] = time.monotonic() - started
    return dataclasses.replace(
        report,
        invocation=getattr(args, "invocation", "") or report.invocation,
        timings=timings,
        workspace=report.workspace or (_workspace() if args.format in _PATH_FORMATS else ""),
    )


def _workspace() -> str:
    """The repository root: ``GITHUB_WORKSPACE``, else the git top level, else the cwd."""
    import subprocess

    root = os.environ.get("GITHUB_WORKSPACE", "")
    if not root:
        try:
            done = subprocess.run(
                ["git", "rev-parse", "--show-toplevel"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            root = done.stdout.strip() if done.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            root = ""
    return str(Path(root or os.getcwd()).resolve())


def write_report(args: argparse.Namespace, report: Any, out: IO[str]) -> int:
    """Render ``report`` as ``--format`` to ``-o`` or ``out``; the exit code. Every command that
    ends in a report (``diff``, ``check``, ``migrations``, ``verify``) ends here."""
    from compatcheck.reporters import render

    report = _stamped(args, report)
    text = render(report, args.format, color=_use_color(args, out))
    if args.output:
        write_file(args.output, text)
    else:
        out.write(text)
    if report.unavailable:
        for rf in report.cannot_tell():
            line = f"compatcheck: could not evaluate: {rf.finding.message}"
            print(mask_secrets(line), file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.output and not args.quiet:
        from compatcheck.reporters.causes import summary_line

        print(f"compatcheck: {summary_line(report)} → {args.output}", file=sys.stderr)
    return EXIT_GO if report.go else EXIT_NO_GO
