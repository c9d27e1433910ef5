"""Merging several scrapes of one target into one schema (``MetricFamily.intermittent``).

A family absent from some scrapes gets
``__name__``; a label key absent from some of the scrapes that had the family gets the key; a label
value seen in only some of the scrapes that had the key gets ``key=value``. Checks ignore
differences on intermittent names, keys and values: they are noise (lazily created series), not
contract.
"""

from __future__ import annotations

from dataclasses import replace

from compatcheck.model import LABEL_VALUE_CAP, MetricFamily, MetricsSchema

FAMILY_INTERMITTENT = "__name__"


def merge_schemas(schemas: list[MetricsSchema]) -> MetricsSchema:
    """Union of several scrapes of one target, with what came and went marked intermittent."""
    if not schemas:
        return MetricsSchema()
    if len(schemas) == 1:
        return schemas[0]
    total = len(schemas)
    names = sorted({n for s in schemas for n in s.families})
    merged: dict[str, MetricFamily] = {}
    for name in names:
        fams = [s.families[name] for s in schemas if name in s.families]
        present = len(fams)
        intermittent: set[str] = set()
        for f in fams:
            intermittent.update(f.intermittent)
        if present < total:
            intermittent.add(FAMILY_INTERMITTENT)
        labels = sorted({k for f in fams for k in f.labels})
        for key in labels:
            if sum(1 for f in fams if key in f.labels) < present:
                intermittent.add(key)
        high = {k for f in fams for k in f.high_cardinality}
        values: dict[str, tuple[str, ...]] = {}
        for key in labels:
            if key in high:
                continue
            with_key = [f for f in fams if key in f.label_values]
            union = sorted({v for f in with_key for v in f.label_values[key]})
            if len(union) > LABEL_VALUE_CAP:
                high.add(key)
                continue
            if union:
                values[key] = tuple(union)
            for v in union:
                if sum(1 for f in with_key if v in f.label_values[key]) < len(with_key):
                    intermittent.add(f"{key}={v}")
        last = fams[-1]
        merged[name] = replace(
            last,
            labels=tuple(labels),
            label_values=values,
            high_cardinality=tuple(sorted(high)),
            buckets=tuple(sorted({b for f in fams for b in f.buckets})),
            quantiles=tuple(sorted({q for f in fams for q in f.quantiles})),
            series=max(f.series for f in fams),
            has_samples=any(f.has_samples for f in fams),
            intermittent=tuple(sorted(intermittent)),
        )
    errors: list[str] = []
    for s in schemas:
        errors.extend(e for e in s.errors if e not in errors)
    return MetricsSchema(
        families=merged, content_type=schemas[-1].content_type, errors=tuple(errors)
    )
