"""Benchmark: judge 1,000 rules and 100 dashboards against a pair of snapshots.

Generates, in a temporary folder, a realistic monitoring repository for a service of ~200 metric
families: 20 rule files of 50 rules (alerts with ``for``/annotations, recording rules feeding
alerts, ``histogram_quantile``, ``absent``, ``unless``, ``or vector(0)``, joins with
``group_left``) and 100 Grafana dashboards (current and legacy schema, collapsed rows, 20 panels
of 1–3 targets with Grafana variables, 5 templating variables each). The rollback target drops,
renames and relabels a tenth of the families and changes some buckets.

It then measures, cold (parse caches cleared, as in a fresh ``compatcheck`` process):
``load_consumers`` (read + parse), ``check_consumers`` (judge + findings) and
``render_bridge_rules``, five times (min/median/max), and the time per expression. Target: a median
≤ 1 s in all, stable across the runs.

``--beside N`` runs N CPU-bound processes meanwhile (the loaded figures); the CPU time of the
whole is printed beside the wall times.

Run: ``python bench/consumers.py [--rules 1000] [--dashboards 100] [--seed 1] [--runs 5]``. It is
a benchmark, not a test: it prints and exits 0 (1 when over the target with ``--strict``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import promql_parser
from _load import beside, describe

from compatcheck.checks.metrics import check_metrics
from compatcheck.consumers import check_consumers, load_consumers, render_bridge_rules
from compatcheck.consumers.promql import clear_caches, parse_consumer, substitute_variables
from compatcheck.model import MetricFamily, MetricsSchema

BUCKETS_NEW: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)
BUCKETS_OLD: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)
LABELS = ("method", "route", "status", "code", "queue", "pod", "team", "tenant")


def make_schemas(rng: random.Random, n: int = 200) -> tuple[MetricsSchema, MetricsSchema]:
    """(before, after) of a rollback: before = NEW (running), after = OLD (target)."""
    new: dict[str, MetricFamily] = {}
    old: dict[str, MetricFamily] = {}
    for i in range(n):
        kind = ("counter", "gauge", "histogram")[i % 3]
        base = f"svc_part{i}_{'requests' if kind == 'counter' else 'items'}"
        name = f"{base}_total" if kind == "counter" else base
        if kind == "histogram":
            name = f"svc_part{i}_duration_seconds"
        labels = tuple(sorted(rng.sample(LABELS, 3)))
        values = {lb: tuple(f"v{j}" for j in range(3)) for lb in labels}
        buckets = BUCKETS_NEW if kind == "histogram" else ()
        fam = MetricFamily(
            name=name, type=kind, labels=labels, label_values=values, buckets=buckets,
            series=27, has_samples=True,
        )  # fmt: skip
        new[name] = fam
        fate = i % 10
        if fate == 0:
            continue  # only in NEW: removed by the rollback
        if fate == 1:
            old_name = name.replace("svc_", "svc_legacy_")
            old[old_name] = MetricFamily(
                name=old_name, type=kind, labels=labels, label_values=values, buckets=buckets,
                series=27, has_samples=True,
            )  # fmt: skip
            continue
        if fate == 2:
            labels = labels[:-1]  # a label NEW added
            values = {lb: values[lb] for lb in labels}
        if fate == 3 and kind == "histogram":
            buckets = BUCKETS_OLD
        old[name] = MetricFamily(
            name=name, type=kind, labels=labels, label_values=values, buckets=buckets,
            series=27, has_samples=True,
        )  # fmt: skip
    return MetricsSchema(families=new), MetricsSchema(families=old)


def _selector(rng: random.Random, fam: MetricFamily, grafana: bool) -> str:
    window = "$__rate_interval" if grafana else rng.choice(("1m", "5m", "15m"))
    label = rng.choice(fam.labels)
    value = f"${label}" if grafana else "v1"
    op = "=~" if grafana else "="
    if fam.type == "histogram":
        return (
            f"histogram_quantile(0.99, sum by (le, {label}) "
            f'(rate({fam.name}_bucket{{{label}{op}"{value}"}}[{window}])))'
        )
    if fam.type == "counter":
        return f'sum by ({label}) (rate({fam.name}{{{label}{op}"{value}"}}[{window}]))'
    return f'max by ({label}) ({fam.name}{{{label}{op}"{value}"}})'


def _expression(rng: random.Random, fams: list[MetricFamily], grafana: bool) -> str:
    a = _selector(rng, rng.choice(fams), grafana)
    shape = rng.randrange(8)
    if shape == 0:
        return f"{a} > {rng.randint(1, 100)}"
    if shape == 1:
        f = rng.choice(fams)
        return f"absent({f.name if f.type != 'histogram' else f.name + '_count'})"
    if shape == 2:
        return f"({a} or vector(0)) > 1"
    if shape == 3:
        b = rng.choice([f for f in fams if f.type == "gauge"])
        return f"{a} > 1 unless on () {b.name} == 1"
    if shape == 4:
        b = rng.choice([f for f in fams if f.type == "gauge"])
        lb = rng.choice([x for x in b.labels if x != "team"])
        return f"{a} * on ({lb}) group_left (team) max by ({lb}, team) ({b.name})"
    if shape == 5:
        lb = rng.choice(LABELS)
        return f'label_replace({a}, "x", "$1", "{lb}", "(.*)")'
    return f"{a} / {_selector(rng, rng.choice(fams), grafana)}"


def write_repository(
    root: Path, before: MetricsSchema, rules: int, dashboards: int, seed: int
) -> int:
    rng = random.Random(seed)
    fams = list(before.families.values())
    count = 0
    rules_dir = root / "rules"
    rules_dir.mkdir(parents=True)
    per_file = 50
    for f in range(math.ceil(rules / per_file)):
        lines = ["groups:", f"  - name: group{f}", "    rules:"]
        records: list[str] = []
        for r in range(min(per_file, rules - f * per_file)):
            expr = _expression(rng, fams, grafana=False)
            if r % 5 == 0:
                name = f"svc:rec{f}_{r}:rate5m"
                records.append(name)
                lines += [f"      - record: {name}", f"        expr: {json.dumps(expr)}"]
            elif records and r % 5 == 1:
                lines += [
                    f"      - alert: FromRecord{f}x{r}",
                    f"        expr: sum({records[-1]}) > 1",
                ]
            else:
                lines += [
                    f"      - alert: Alert{f}x{r}",
                    f"        expr: {json.dumps(expr)}",
                    "        for: 5m",
                    "        annotations:",
                    '          summary: "{{ $labels.route }} is unhappy"',
                ]
            count += 1
        (rules_dir / f"rules{f}.yml").write_text("\n".join(lines) + "\n")
    dash_dir = root / "dashboards"
    dash_dir.mkdir()
    for d in range(dashboards):
        panels = []
        for p in range(20):
            targets = [
                {"expr": _expression(rng, fams, grafana=True), "refId": chr(65 + t)}
                for t in range(rng.randint(1, 3))
            ]
            count += len(targets)
            panels.append(
                {"id": p + 1, "title": f"Panel {p}", "type": "timeseries", "targets": targets}
            )
        variables = []
        for v in range(5):
            fam = rng.choice(fams)
            series = fam.name + ("_count" if fam.type == "histogram" else "")
            variables.append(
                {
                    "name": f"var{v}",
                    "type": "query",
                    "query": f"label_values({series}, {fam.labels[0]})",
                }
            )
            count += 1
        if d % 2:
            body = {
                "title": f"Dashboard {d}",
                "panels": [
                    *panels[:10],
                    {
                        "id": 100,
                        "type": "row",
                        "collapsed": True,
                        "title": "More",
                        "panels": panels[10:],
                    },
                ],
                "templating": {"list": variables},
            }
        else:
            body = {
                "title": f"Dashboard {d}",
                "rows": [{"panels": panels[:10]}, {"panels": panels[10:]}],
                "templating": {"list": variables},
            }
        (dash_dir / f"dash{d}.json").write_text(json.dumps({"dashboard": body}, indent=2))
    return count


def _one_run(
    root: Path, before: MetricsSchema, after: MetricsSchema, metric_findings: list[Any]
) -> tuple[float, float, float, float, Any, str, int]:
    """One cold run (parse caches cleared, as in a fresh process): load, judge, bridge."""
    clear_caches()
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    consumers = load_consumers([root])
    t1 = time.perf_counter()
    findings = check_consumers(consumers, before, after, metric_findings)
    t2 = time.perf_counter()
    bridge = render_bridge_rules(findings, before, after)
    t3, c3 = time.perf_counter(), time.process_time()
    flagged = sum(1 for f in findings if f.kind.startswith("consumers/"))
    return t1 - t0, t2 - t1, t3 - t2, c3 - c0, consumers, bridge, flagged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--dashboards", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5, help="cold runs (min/median/max printed)")
    ap.add_argument("--beside", type=int, default=0, help="CPU-bound processes running beside")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the median is over 1 s")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    before, after = make_schemas(rng)
    metric_findings = check_metrics(before, after)
    runs = []
    with tempfile.TemporaryDirectory(prefix="compatcheck-bench-") as tmp:
        root = Path(tmp)
        write_repository(root, before, args.rules, args.dashboards, args.seed)
        with beside(args.beside):
            for _ in range(args.runs):
                runs.append(_one_run(root, before, after, metric_findings))
    print(describe(args.beside))
    *_, consumers, bridge, flagged = runs[-1]
    n = len(consumers.expressions)
    distinct = parse_consumer.cache_info().currsize
    print(f"expressions: {n} ({distinct} distinct), consumers: {len(consumers.consumers)}")
    print(f"findings: {flagged} consumers/*, bridge rules: {bridge.count('- record:')}")
    print(f"{args.runs} cold runs, seconds      min   median      max")
    totals = [r[0] + r[1] + r[2] for r in runs]
    for label, values in (
        ("load  (read + parse)", [r[0] for r in runs]),
        ("check (judge)", [r[1] for r in runs]),
        ("bridge", [r[2] for r in runs]),
        ("total", totals),
        ("total, CPU time", [r[3] for r in runs]),
    ):
        print(f"{label:<26}{min(values):>8.3f}{statistics.median(values):>9.3f}{max(values):>9.3f}")
    median = statistics.median(totals)
    print(f"per expression (median): {median / max(n, 1) * 1e6:.0f} µs")
    # Reference in the same run: promql-parser alone on every distinct expression text (the
    # floor any judge built on it pays), best of the same number of runs, under the same
    # `--beside` load as the runs (else the ratio would set a loaded time against a quiet one).
    texts = sorted({substitute_variables(e.text) for e in consumers.expressions})
    floor = float("inf")
    with beside(args.beside):
        for _ in range(args.runs):
            t0 = time.perf_counter()
            for text in texts:
                with contextlib.suppress(Exception):
                    promql_parser.parse(text)
            floor = min(floor, time.perf_counter() - t0)
    print(f"reference: promql_parser.parse alone {floor:.3f} s; ours {median / floor:.1f}x that")
    print(f"target ≤ 1 s (median): {'met' if median <= 1.0 else 'MISSED'}")
    return 1 if args.strict and median > 1.0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
