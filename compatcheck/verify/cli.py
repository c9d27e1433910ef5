"""``compatcheck verify``: its arguments and its command, kept apart from the main CLI module so
that the subcommand is one call there (``add_verify_parser``) and one entry in its table.

Exit codes: 0 verified, 1 not verified when the window ended (the report says what still
fails), 2 bad arguments or input, 3 Prometheus could not be asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import IO, Any

from compatcheck.argtypes import duration, ratio
from compatcheck.errors import UsageError
from compatcheck.reportargs import add_contract_sources, add_report_options


def _promql_duration(text: str) -> str:
    if not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", text):
        raise argparse.ArgumentTypeError(f"expected a PromQL duration like 5m, got {text!r}")
    return text


def add_verify_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``verify`` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "verify",
        help="after a rollback: poll Prometheus until OLD runs as its contract says",
        description="Poll Prometheus until every target of the selector reports the expected "
        "build, is up, the series consumers need are back, the error rate is under the limit "
        "and no alert of the service fires (exit 0), or the window ends (exit 1).",
    )
    p.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    p.add_argument(
        "--selector", required=True, metavar="'{job=\"...\"}'", help="the service's targets"
    )
    p.add_argument(
        "--expect",
        required=True,
        metavar="SOURCE",
        help="the contract of the release that should now run: snapshot or exposition file, "
        "URL, stored:VERSION (with --snapshot-dir and --service), or the contract attached to "
        "an image digest (oci:IMAGE@sha256:…, oci-layout:DIR@sha256:…)",
    )
    p.add_argument("--window", type=duration, default=600.0, help="how long to wait (10m)")
    p.add_argument("--interval", type=duration, default=15.0, help="time between polls (15s)")
    p.add_argument(
        "--error-rate",
        metavar="EXPR",
        help="PromQL error ratio (default: 5xx share of the contract's HTTP request counter)",
    )
    p.add_argument(
        "--max-error-rate", type=ratio, default=0.015, help="highest error ratio (0.015)"
    )
    p.add_argument(
        "--error-rate-range",
        type=_promql_duration,
        default="5m",
        metavar="DURATION",
        help="rate() range of the default error-rate expression (5m)",
    )
    p.add_argument(
        "--all-families",
        action="store_true",
        help="every family of the contract must have series again, not only those consumers use",
    )
    p.add_argument(
        "--build-info", metavar="FAMILY", help="the family carrying the build (version/revision)"
    )
    add_contract_sources(
        p,
        store_help="store of release contracts",
        service_help="service of stored:VERSION and build info",
        registry_help="docker config.json with registry credentials for an oci: --expect",
    )
    p.add_argument("--timeout", type=duration, default=10.0, help="per request to Prometheus")
    add_report_options(
        p,
        direction=False,
        bridge_rules=False,
        fail_on_help="lowest severity that keeps the rollback unverified (default: error)",
        consumers_help="rule files, dashboards or folders whose families must be back, or the "
        "rules a running Prometheus loaded (repeatable)",
    )


def _service(args: argparse.Namespace) -> str:
    """``--service``, else the selector's ``job="..."`` (the usual service name)."""
    if args.service:
        return str(args.service)
    from compatcheck.verify.plan import job_of

    return job_of(args.selector) or ""


def load_expect(args: argparse.Namespace, store: Any = None) -> Any:
    """The ``--expect`` contract, from the sources snapshots are read from elsewhere; ``store``
    is the snapshot store to use (the hook's own), else one is opened for ``--snapshot-dir``."""
    from compatcheck.sources import is_contract_ref, load_source
    from compatcheck.store import SnapshotStore, resolve_version

    arg = str(args.expect)
    if store is None and args.snapshot_dir:
        store = SnapshotStore(args.snapshot_dir)
    if arg.startswith("stored:"):
        if store is None or not args.service:
            raise UsageError(f"--expect {arg}: needs --snapshot-dir and --service")
        return store.get(args.service, arg[len("stored:") :])
    if not is_contract_ref(arg):
        snap = resolve_version(arg, store, args.service)
        if snap is not None:
            return snap
    # An oci: reference resolves the contract attached to that digest, as in `diff`.
    return load_source(
        arg, timeout=args.timeout, service=_service(args), registry_config=args.registry_config
    )


def _plan(args: argparse.Namespace, expect: Any, consumers: Any) -> Any:
    """Everything the polls ask, worked out (and every argument checked) before the first."""
    from compatcheck.verify.plan import (
        VerifyPlan,
        default_error_rate,
        expected_build,
        family_needs,
        parse_selector,
    )

    matchers = parse_selector(args.selector)
    build, family = expected_build(expect, service=_service(args), family=args.build_info)
    error_rate = args.error_rate or default_error_rate(
        args.selector, expect.metrics, args.error_rate_range
    )
    return VerifyPlan(
        selector=args.selector.strip(),
        matchers=matchers,
        expected_build=build,
        build_family=family,
        families=(
            family_needs(expect.metrics, consumers, all_families=args.all_families)
            if expect.metrics is not None
            else None
        ),
        error_rate=error_rate,
        error_rate_missing="the contract has no HTTP request counter with a status label: "
        "give --error-rate EXPR",
        max_error_rate=args.max_error_rate,
    )


def cmd_verify(args: argparse.Namespace, out: IO[str]) -> int:
    """Build the plan (every argument checked), poll, and write the report."""
    # The CLI's one ending (exit 0 verified, 1 not verified, 3 could not evaluate); imported here
    # because the CLI's parser imports this module.
    from compatcheck.cli import write_report

    return write_report(args, verify_report(args), out)


def verify_report(
    args: argparse.Namespace, consumers: Any = None, *, policy: Any = None, store: Any = None
) -> Any:
    """The report of one verification as ``args`` (the ``verify`` options) describe it.

    The hook passes what it keeps loaded instead of having each request read it again:
    ``consumers`` (a :class:`~compatcheck.consumers.ConsumerSet`, used when ``args`` names
    none), ``policy`` (a parsed :class:`~compatcheck.policy.Policy`, instead of ``--policy``)
    and ``store`` (its :class:`~compatcheck.store.SnapshotStore`)."""
    from compatcheck.consumers import load_consumers
    from compatcheck.engine import EvaluateOptions, evaluate
    from compatcheck.policy import load_policy
    from compatcheck.progress import Progress
    from compatcheck.snapshot import Snapshot
    from compatcheck.verify.client import PrometheusClient
    from compatcheck.verify.plan import check_expression
    from compatcheck.verify.run import run_verify

    if policy is None:
        policy = load_policy(args.policy)
    if args.error_rate is not None:
        check_expression(args.error_rate, "--error-rate")
    expect = load_expect(args, store)
    if args.consumers:
        consumers = load_consumers(args.consumers)
    plan = _plan(args, expect, consumers)
    label = expect.label or str(args.expect)
    progress = Progress(quiet=args.quiet)
    options = EvaluateOptions(
        direction="rollback",
        policy=policy,
        fail_on=args.fail_on,
        anchor=args.expect if Path(args.expect).is_file() else "",
    )

    def report_for(section: Any, findings: Any, observed: dict[str, str]) -> Any:
        running = Snapshot(label=plan.selector, source=section.prometheus, build=observed)
        return evaluate(
            expect,
            running,
            dataclasses.replace(options, extra_findings=tuple(findings), verify=section),
        )

    with PrometheusClient(args.prometheus, timeout=args.timeout) as client:
        progress.step("verify", f"{client.shown}: {plan.selector} should run {label}")
        result = run_verify(
            plan,
            client,
            window=args.window,
            interval=args.interval,
            expect_label=label,
            decide=lambda section, findings: report_for(section, findings, {}).go,
            progress=progress,
        )
    return report_for(result.section, result.findings, result.observed_build)
