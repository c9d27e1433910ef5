"""Streaming reader of Prometheus text format 0.0.4 and OpenMetrics 1.0 into a metrics *schema*.

A rollback check needs what consumers of a service's metrics depend on — family names as PromQL
selects them, types, units, help, label keys, observed label values, histogram buckets, summary
quantiles, series counts — never the sample values. So this reader keeps per family only what
the schema holds; memory grows with the schema, not with the number of samples, and the input is
read in blocks of lines (``parse_stream`` decodes UTF-8 block by block as bytes arrive).

Where it sits: the first step of capture (an exposition, scraped or read from a file, becomes the
``MetricsSchema`` of a snapshot), before compare → checks → policy → report → reporters.

The modules, in the order a byte meets them:

* :mod:`~compatcheck.exposition.stream` — entry points; bytes or text into blocks of whole lines,
  UTF-8 decoding, the line-length cap, format detection at the start (and end) of the input;
* :mod:`~compatcheck.exposition.reader` — the state machine over lines: the fast path for ordinary
  sample lines, the slow path for everything else, metadata (``# HELP``/``# TYPE``/``# UNIT``)
  and the ``# HELP`` cap;
* :mod:`~compatcheck.exposition.grammar` — the exact line grammar of both formats (names, label
  sets, escapes, values, timestamps, exemplars) and the error messages naming what is wrong;
* :mod:`~compatcheck.exposition.families` — what is kept per family, and its assembly into the
  schema with the rules that make both formats give the same entries.

Traps (each handled in these modules, each tested):

* PromQL names differ from metadata names. In OpenMetrics ``# TYPE foo counter`` has samples
  ``foo_total`` — PromQL selects ``foo_total``; in 0.0.4 ``# TYPE foo_total counter`` names the
  samples directly. ``prometheus_client`` strips ``_total`` from counter family names (and renames
  0.0.4 samples to ``_total``), so its family names are *not* what PromQL selects.
* OpenMetrics ``info`` family ``foo`` has samples ``foo_info``; histograms and summaries fold
  ``_bucket``/``_sum``/``_count``/``_created`` into the base name; gauge histograms
  ``_bucket``/``_gcount``/``_gsum``. In 0.0.4 ``_created`` is *not* folded: clients expose it as
  a family of its own there (``# TYPE foo_created gauge``).
* ``le="1"``, ``le="1.0"`` and ``le="1e0"`` are the same bound: bounds are compared as floats.
* Label values may contain ``}``, ``,``, ``=`` and (escaped) quotes; the fast path only relies on
  ``"`` never appearing unescaped inside a value, and leaves any backslash to the slow path.
* Series are counted without per-series sets: in a valid exposition every series has exactly one
  sample per sample name (and per bucket bound / quantile), so the number of series of a family
  is the largest count of lines over its sample names and bounds. (Duplicate series are invalid
  and dropped by Prometheus; they would be counted twice here.)
"""

from compatcheck.exposition.grammar import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    is_openmetrics,
)
from compatcheck.exposition.stream import (
    MAX_LINE_BYTES,
    parse_stream,
    parse_text,
    read_exposition_file,
)

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "MAX_LINE_BYTES",
    "is_openmetrics",
    "parse_stream",
    "parse_text",
    "read_exposition_file",
]
