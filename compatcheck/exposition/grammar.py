"""The line grammar of Prometheus text format 0.0.4 and OpenMetrics 1.0, exactly.

Names, label sets, escapes, values, timestamps and exemplars as Prometheus's own parsers accept
them, and the one-line error that names what is wrong. The reader's fast path relies on the
patterns here to accept only lines that are certainly valid; :func:`parse_sample` is the slow
path's tokenizer, which decides every other line.
"""

from __future__ import annotations

import re

from compatcheck.errors import ExpositionError

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
# Values as Prometheus' Go parser (strconv.ParseFloat) and OpenMetrics accept them; Python's
# float() is laxer (``1_0``, Unicode digits, odd whitespace), so it is never the validator.
_NUMBER = r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf(?:inity)?|nan))"
_TS_TEXT = r"[+-]?[0-9]+"  # 0.0.4: integer milliseconds
_TS_OM = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"  # OpenMetrics: float seconds

_NAME_RE = re.compile(_NAME)
#: A HELP or TYPE line with a legacy metric name: what the general tokenizer of
#: :func:`parse_comment` would make of it, in one match (anything else goes to that tokenizer).
_METADATA_RE = re.compile(rf"#[ \t]+(HELP|TYPE)[ \t]+({_NAME})(?:[ \t]+(.*))?\Z")
LEGACY_NAME_RE = re.compile(_NAME + r"\Z")
_LABEL_RE = re.compile(_LABEL)
_NUMBER_RE = re.compile(_NUMBER + r"\Z")
TS_TEXT_RE = re.compile(_TS_TEXT + r"\Z")
TS_OM_RE = re.compile(_TS_OM + r"\Z")
_QUOTED_RE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_WS_RE = re.compile(r"[ \t]*")
_TOKEN_RE = re.compile(r"[^ \t]*")
#: One ``key="value`` piece of a label body split on ``",`` (no escapes: those go the slow way).
PIECE_RE = re.compile(_LABEL + r'="[^"\\\n]*\Z')
#: What follows the closing brace (or the name) of an ordinary sample line.
TAIL_TEXT_RE = re.compile(rf"[ \t]+{_NUMBER}(?:[ \t]+{_TS_TEXT})?[ \t]*\Z")
TAIL_OM_RE = re.compile(rf"[ \t]+{_NUMBER}(?:[ \t]+{_TS_OM})?[ \t]*\Z")
_ESCAPE_RE = re.compile(r'\\[\\n"]')
_HELP_ESCAPE_TEXT_RE = re.compile(r"\\[\\n]")
_OM_MARKER_RE = re.compile(
    r"^#[ \t]+(?:EOF[ \t]*\r?$|UNIT[ \t]"
    r"|TYPE[ \t]+\S+[ \t]+(?:info|stateset|gaugehistogram|unknown)[ \t]*\r?$)",
    re.MULTILINE,
)


def _unescape(text: str) -> str:
    r"""Label values, quoted names: ``\\``, ``\"``, ``\n``; other escapes stay as they are."""
    if "\\" not in text:
        return text
    return _ESCAPE_RE.sub(lambda m: {"\\\\": "\\", "\\n": "\n", '\\"': '"'}[m.group()], text)


def _unescape_help(text: str, openmetrics: bool) -> str:
    r"""HELP text: 0.0.4 escapes only ``\\`` and ``\n``; OpenMetrics also ``\"``."""
    if "\\" not in text:
        return text
    if openmetrics:
        return _unescape(text)
    return _HELP_ESCAPE_TEXT_RE.sub(lambda m: "\\" if m.group() == "\\\\" else "\n", text)


def show(token: str, limit: int = 40) -> str:
    """A token for an error message: control characters escaped, long ones cut."""
    shown = token if token.isprintable() else token.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def is_number(text: str) -> bool:
    return _NUMBER_RE.match(text) is not None


def is_openmetrics(content_type: str, first_bytes: str) -> bool:
    """Whether to read an exposition as OpenMetrics 1.0 rather than text 0.0.4.

    An explicit content type decides (``application/openmetrics-text`` → yes, ``text/plain`` → no,
    as Prometheus does). Otherwise the text is sniffed: a ``# EOF`` line, a ``# UNIT`` line or a
    type only OpenMetrics has. Pass the start of the exposition (and, when available, its last few
    hundred characters, where ``# EOF`` is): a large OpenMetrics stream without a content type and
    without ``# UNIT`` lines near its start is read as 0.0.4 — scrapers always know the type.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return True
    if media == "text/plain":
        return False
    return _OM_MARKER_RE.search(first_bytes) is not None


def parse_sample(
    text: str, openmetrics: bool, ts_re: re.Pattern[str]
) -> tuple[str, list[tuple[str, str]]]:
    """Tokenize one sample line exactly (the slow path). Returns the name and the labels.

    Raises :class:`ExpositionError` (without a line number; the caller adds it) naming what is
    wrong. ``text`` has no leading or trailing blanks.
    """
    pos, name = _sample_name(text)
    labels: list[tuple[str, str]] = []
    if pos < len(text) and text[pos] == "{":
        pos, name = _label_set(text, pos + 1, name, labels, openmetrics)
    if not name:
        raise ExpositionError("missing metric name")
    _value_and_rest(text, pos, name, openmetrics, ts_re)
    return name, labels


def _sample_name(text: str) -> tuple[int, str]:
    """The name before the label set and where it ends (none: the line starts with ``{``)."""
    if text[0] == "{":
        return 0, ""
    m = _NAME_RE.match(text)
    if m is None or (m.end() < len(text) and text[m.end()] not in " \t{"):
        token = re.match(r"[^ \t{]*", text)
        raise ExpositionError(f"invalid metric name `{show(token.group() if token else text)}`")
    return m.end(), m.group()


def _label_set(
    text: str, pos: int, name: str, labels: list[tuple[str, str]], openmetrics: bool
) -> tuple[int, str]:
    """Read the label set that starts at ``pos`` (just after ``{``) into ``labels``.

    Returns the position after the closing ``}`` and the metric name: ``name``, or the quoted
    name found inside the braces (``{"my.metric",le="1"}``).
    """
    n = len(text)
    seen: set[str] = set()
    first = True
    while True:
        pos = _skip_ws(text, pos)
        if pos >= n:
            raise ExpositionError("unterminated label set (missing `}`)")
        c = text[pos]
        if c == "}":
            if not first and openmetrics and text[pos - 1] == ",":
                raise ExpositionError("trailing comma in label set (not allowed in OpenMetrics)")
            return pos + 1, name
        if c == '"':
            m = _QUOTED_RE.match(text, pos)
            if m is None:
                raise ExpositionError("unterminated quoted name")
            term = _unescape(m.group(1))
            pos = _skip_ws(text, m.end())
            if pos < n and text[pos] == "=":
                key = term
            else:
                # `{"my.metric",le="1"}`: a quoted metric name inside the braces.
                if not first or name:
                    raise ExpositionError(f'quoted term "{show(term)}" is not a label')
                if not term:
                    raise ExpositionError("empty metric name")
                name = term
                first = False
                pos = _after_label(text, pos, openmetrics)
                continue
        else:
            m = _LABEL_RE.match(text, pos)
            if m is None:
                raise ExpositionError(f"invalid label name at `{show(text[pos : pos + 20])}`")
            key = m.group()
            pos = _skip_ws(text, m.end())
            if pos >= n or text[pos] != "=":
                raise ExpositionError(f"expected `=` after label name `{show(key)}`")
        pos = _skip_ws(text, pos + 1)
        if pos >= n or text[pos] != '"':
            raise ExpositionError(f"label value of `{show(key)}` is not quoted")
        m = _QUOTED_RE.match(text, pos)
        if m is None:
            raise ExpositionError(f"unterminated label value of `{show(key)}`")
        if key in seen:
            raise ExpositionError(f"duplicate label `{show(key)}`")
        if key == "__name__":
            raise ExpositionError("label `__name__` is not allowed in a sample")
        seen.add(key)
        labels.append((key, _unescape(m.group(1))))
        first = False
        pos = _after_label(text, m.end(), openmetrics)


def _value_and_rest(
    text: str, pos: int, name: str, openmetrics: bool, ts_re: re.Pattern[str]
) -> None:
    """Check what follows the name or label set: value, optional timestamp, optional exemplar
    (OpenMetrics)."""
    n = len(text)
    if pos >= n:
        raise ExpositionError(f"missing value for `{show(name)}`")
    if text[pos] not in " \t":
        raise ExpositionError(f"expected whitespace before the value of `{show(name)}`")
    pos = _skip_ws(text, pos)
    token = _TOKEN_RE.match(text, pos)
    value = token.group() if token else ""
    if not is_number(value):
        raise ExpositionError(f"invalid value `{show(value)}`")
    pos = _skip_ws(text, pos + len(value))
    if pos < n and text[pos] != "#":
        token = _TOKEN_RE.match(text, pos)
        stamp = token.group() if token else ""
        if ts_re.match(stamp) is None:
            raise ExpositionError(f"invalid timestamp `{show(stamp)}`")
        pos = _skip_ws(text, pos + len(stamp))
    if pos < n:
        if not openmetrics:
            raise ExpositionError(
                f"unexpected text after the value: `{show(text[pos:])}` "
                "(exemplars need OpenMetrics)"
            )
        _check_exemplar(text, pos, ts_re)


def parse_comment(text: str, openmetrics: bool) -> tuple[str, str, str] | None:
    """Tokenize a ``#`` line: ``(word, metric name, rest)`` of a metadata line.

    ``word`` is ``HELP`` (``rest`` is the help text, unescaped), ``TYPE`` or ``UNIT`` (OpenMetrics
    only; in 0.0.4 it is a comment), or ``EOF`` (OpenMetrics' end marker; name and rest empty).
    Any other comment is None. Raises :class:`ExpositionError` (without a line number) for a
    metadata line whose metric name is invalid. ``text`` has no leading or trailing blanks.
    """
    m = _METADATA_RE.match(text)
    if m is not None:  # the usual `# HELP name text` / `# TYPE name type`, in one match
        word, name, value = m.group(1, 2, 3)
        if word == "HELP":
            return word, name, _unescape_help(value or "", openmetrics)
        return word, name, value or ""
    return tokenize_comment(text, openmetrics)


def tokenize_comment(text: str, openmetrics: bool) -> tuple[str, str, str] | None:
    """:func:`parse_comment` for any ``#`` line, by the general tokenizer (a test checks that
    the one-match form agrees with it)."""
    rest = text[1:]
    stripped = rest.lstrip(" \t")
    if stripped == rest:  # `#HELP`: not metadata, a plain comment (as Prometheus)
        return None
    word, _, rest = stripped.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest if rest else more
    if word == "EOF" and not rest.strip(" \t"):
        return ("EOF", "", "") if openmetrics else None
    if word not in ("HELP", "TYPE", "UNIT") or (word == "UNIT" and not openmetrics):
        return None
    rest = rest.lstrip(" \t")
    if rest.startswith('"'):
        m = _QUOTED_RE.match(rest)
        if m is None:
            raise ExpositionError(f"unterminated quoted metric name in # {word}")
        name = _unescape(m.group(1))
    else:
        m = _NAME_RE.match(rest)
        if m is None or (m.end() < len(rest) and rest[m.end()] not in " \t"):
            token = _TOKEN_RE.match(rest)
            shown = token.group() if token else rest
            raise ExpositionError(f"invalid metric name `{show(shown)}` in # {word}")
        name = m.group()
    after = rest[m.end() :]
    if after and after[0] not in " \t":
        raise ExpositionError(f"expected whitespace after the metric name in # {word}")
    value = after.strip(" \t")
    if word == "HELP":
        value = _unescape_help(value, openmetrics)
    return word, name, value


def _skip_ws(text: str, pos: int) -> int:
    m = _WS_RE.match(text, pos)
    return m.end() if m else pos


def _after_label(text: str, pos: int, openmetrics: bool) -> int:
    """After one label (or a quoted name): a comma, or the closing brace (left in place)."""
    pos = _skip_ws(text, pos)
    if pos < len(text) and text[pos] == ",":
        return pos + 1
    if pos < len(text) and text[pos] == "}":
        return pos
    if pos >= len(text):
        raise ExpositionError("unterminated label set (missing `}`)")
    raise ExpositionError(f"expected `,` or `}}` in label set at `{show(text[pos : pos + 20])}`")


def _check_exemplar(text: str, pos: int, ts_re: re.Pattern[str]) -> None:
    """``# {trace_id="abc"} 1.0 [timestamp]``: validated and dropped (not part of a schema)."""
    if not text.startswith("# {", pos):
        raise ExpositionError(f"unexpected text after the value: `{show(text[pos:])}`")
    pos += 3
    n = len(text)
    while True:
        pos = _skip_ws(text, pos)
        if pos < n and text[pos] == "}":
            pos += 1
            break
        m = _LABEL_RE.match(text, pos) or _QUOTED_RE.match(text, pos)
        if m is None:
            raise ExpositionError("invalid exemplar label set")
        pos = _skip_ws(text, m.end())
        if pos >= n or text[pos] != "=":
            raise ExpositionError("invalid exemplar label set")
        pos = _skip_ws(text, pos + 1)
        m = _QUOTED_RE.match(text, pos)
        if m is None:
            raise ExpositionError("unterminated exemplar label value")
        pos = _skip_ws(text, m.end())
        if pos < n and text[pos] == ",":
            pos += 1
        elif pos >= n or text[pos] != "}":
            raise ExpositionError("invalid exemplar label set")
    rest = text[pos:].split()
    if not rest or not is_number(rest[0]):
        raise ExpositionError("exemplar without a valid value")
    if len(rest) > 2 or (len(rest) == 2 and ts_re.match(rest[1]) is None):
        raise ExpositionError(f"invalid exemplar timestamp `{show(' '.join(rest[1:]))}`")
