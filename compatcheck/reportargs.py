"""The report options every judging command shares (``diff``, ``check``, ``migrations``,
``verify``), and the contract sources ``diff`` and ``verify`` share: one definition, so a format
or flag added here reaches all of them.

Its own module, not :mod:`compatcheck.arguments`, because ``arguments`` imports the ``verify`` and
``serve`` parsers, which need these options too: defined there, each would import the other.
"""

from __future__ import annotations

import argparse

REPORT_FORMATS = ("text", "json", "markdown", "junit", "sarif", "github", "html")


def add_report_options(
    p: argparse.ArgumentParser,
    *,
    consumers: bool = True,
    direction: bool = True,
    fail_on_help: str = "lowest severity that makes the verdict no-go (default: error)",
    consumers_help: str = "rule files, dashboards or folders whose breakage to name, or the "
    "rules a running Prometheus loaded (repeatable)",
    bridge_rules: bool = True,
) -> None:
    """Add the ``report`` group: format, output, policy, fail-on, colour, quiet; ``direction``
    for commands that judge a transition both ways; ``consumers`` (and the bridge rules written
    from them, ``bridge_rules``) for commands that read consumers."""
    g = p.add_argument_group("report")
    g.add_argument("--format", choices=REPORT_FORMATS, default="text", help="report format")
    g.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE")
    g.add_argument(
        "--policy", action="append", default=[], metavar="FILE", help="policy file (repeatable)"
    )
    g.add_argument(
        "--fail-on", choices=("error", "warning", "info"), default="error", help=fail_on_help
    )
    if direction:
        g.add_argument(
            "--direction",
            choices=("rollback", "deploy"),
            default="rollback",
            help="rollback judges NEW → OLD (default); deploy judges OLD → NEW",
        )
    g.add_argument("--no-color", action="store_true", help="never colour the text report")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    if consumers:
        g.add_argument(
            "--consumers",
            action="append",
            default=[],
            metavar="PATH|prometheus:URL",
            help=consumers_help,
        )
        if bridge_rules:
            g.add_argument(
                "--emit-bridge-rules",
                metavar="FILE",
                help="write a Prometheus rule file that bridges renamed metrics",
            )


def add_contract_sources(
    p: argparse.ArgumentParser, *, store_help: str, service_help: str, registry_help: str
) -> None:
    """Where a command reads contracts from besides files and URLs: the snapshot store
    (``--snapshot-dir``, versions of ``--service``) and the registry credentials for ``oci:``
    references; the help says what each is for in that command."""
    p.add_argument("--snapshot-dir", metavar="DIR|URL", help=store_help)
    p.add_argument("--service", metavar="NAME", help=service_help)
    p.add_argument("--registry-config", metavar="FILE", help=registry_help)
