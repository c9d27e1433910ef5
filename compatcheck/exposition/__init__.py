"""Reading Prometheus expositions (text 0.0.4, OpenMetrics 1.0) into a metrics schema."""

from compatcheck.exposition.reader import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    MAX_LINE_BYTES,
    is_openmetrics,
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
