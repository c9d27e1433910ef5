"""How the text format 0.0.4 spells a histogram's or a summary's series, for the generators of
expositions: the property tests' (drawn, small, every spelling) and the parse benchmark's
(seeded, tens of megabytes, realistic). Each chooses its labels and values; the sample names, the
``le``/``quantile`` label and the lines' order are written here once.

Plain Python (no Hypothesis): ``bench/parse.py`` imports it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

#: A series' label set as written, with one more label (``le``/``quantile``) or none (None).
Labels = Callable[[tuple[str, str] | None], str]


def series_lines(
    name: str,
    kind: str,
    labels: Labels,
    points: Iterable[tuple[str, str]],
    totals: tuple[str, str] | None,
) -> Iterator[str]:
    """The sample lines of one series of the histogram or summary ``name``: one per
    ``(bound or quantile, value)`` of ``points``, then ``_sum`` and ``_count`` with the values
    ``totals`` (None: a histogram written without them)."""
    sample, key = (f"{name}_bucket", "le") if kind == "histogram" else (name, "quantile")
    for point, value in points:
        yield f"{sample}{labels((key, point))} {value}"
    if totals is not None:
        yield f"{name}_sum{labels(None)} {totals[0]}"
        yield f"{name}_count{labels(None)} {totals[1]}"
