"""The finding catalogue (``rules/default.yaml``): every kind, its default severity and its docs.

One central catalogue, as oasdiff keeps ``checker/rules.go``: the CLI's ``rules``/``explain``, the
README table and the policy layer all read it, and a test checks that the code emits exactly the
kinds it lists.

Every verdict needs the default severities, and PyYAML alone takes longer to import than the
snapshot gate may spend on everything else, so ``python -m compatcheck.docs`` also writes the
catalogue's decoded form beside this module (``_catalogue.json``, stamped with the digest of the
YAML it came from). It is used only while that digest matches the YAML in use, so a stale or
missing copy costs time, never a wrong severity: the YAML is read as before.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from compatcheck.errors import UsageError
from compatcheck.records import record_json

SEVERITIES = ("off", "info", "warning", "error")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_DOC_KEYS = ("summary", "why", "example", "fix")
#: The catalogue decoded, written by ``python -m compatcheck.docs`` (see the module's docstring).
DECODED_PATH = Path(__file__).resolve().parent / "_catalogue.json"


def normalize_severity(value: Any) -> Any:
    """Map YAML's reading of a bare ``off`` back to the severity name.

    Trap: YAML 1.1 (PyYAML) reads an unquoted ``off`` as ``False``, so ``severity: off`` arrives
    as a boolean. Anything else is returned unchanged for the caller to validate.
    """
    return "off" if value is False else value


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One catalogue entry; its JSON (``compatcheck rules --format json``) is its fields in this
    order."""

    kind: str
    severity: str
    #: Severity when consumer files were given and none uses the finding's object; None = same.
    without_consumers: str | None = None
    summary: str
    why: str
    example: str
    fix: str
    #: Every key the finding's ``evidence`` may carry, with its meaning, in the catalogue's order
    #: (a finding carries a subset: a contract violation about a status has no JSON pointer).
    evidence: tuple[tuple[str, str], ...] = ()

    @property
    def area(self) -> str:
        return self.kind.split("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return record_json(self, evidence=dict)


def rules_path() -> Path:
    """Where ``default.yaml`` lives: in the wheel as ``_rules/``, or the repo's ``rules/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_rules" / "default.yaml", here.parent / "rules" / "default.yaml"):
        if candidate.is_file():
            return candidate
    raise UsageError("rules/default.yaml not found: the compatcheck installation is incomplete")


def _parse(data: Any, name: str) -> dict[str, Rule]:
    if not isinstance(data, Mapping) or not isinstance(data.get("kinds"), Mapping):
        raise UsageError(f"{name}: expected a mapping with a `kinds` key")
    out: dict[str, Rule] = {}
    for kind, entry in data["kinds"].items():
        if not isinstance(entry, Mapping):
            raise UsageError(f"{name}: {kind}: expected a mapping")
        sev = normalize_severity(entry.get("severity"))
        if sev not in SEVERITIES:
            raise UsageError(f"{name}: {kind}: severity must be one of {', '.join(SEVERITIES)}")
        wo = normalize_severity(entry.get("without_consumers"))
        if wo is not None and wo not in SEVERITIES:
            raise UsageError(f"{name}: {kind}: without_consumers must be a severity")
        missing = [k for k in _DOC_KEYS if not entry.get(k)]
        if missing:
            raise UsageError(f"{name}: {kind}: missing {', '.join(missing)}")
        docs = {k: str(entry[k]) for k in _DOC_KEYS}
        evidence = _evidence(entry.get("evidence"), f"{name}: {kind}")
        out[kind] = Rule(kind=kind, severity=sev, without_consumers=wo, evidence=evidence, **docs)
    return out


def _evidence(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The ``evidence`` mapping (key → meaning): required, so that no kind goes undocumented;
    ``{}`` for a kind whose findings carry none."""
    if not isinstance(value, Mapping):
        raise UsageError(f"{where}: evidence must be a mapping of key to meaning (`{{}}` for none)")
    bad = [str(k) for k, v in value.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise UsageError(f"{where}: evidence {', '.join(bad)}: the meaning must be a sentence")
    return tuple((str(k), v) for k, v in value.items())


def read_yaml_catalogue(text: str) -> Any:
    """The YAML as PyYAML decodes it (libyaml's loader where installed: the pure-Python one takes
    ~0.1 s on this file)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def render_decoded(raw: bytes) -> str:
    """The text of ``_catalogue.json`` for the catalogue YAML ``raw`` (its digest, its data)."""
    data = read_yaml_catalogue(raw.decode("utf-8"))
    _parse(data, "rules/default.yaml")  # never write down a catalogue that does not load
    document = {"source_sha256": hashlib.sha256(raw).hexdigest(), "catalogue": data}
    return json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n"


def _decoded(raw: bytes) -> Any:
    """The decoded catalogue of ``_catalogue.json`` if it was made from ``raw``, else None."""
    try:
        document = json.loads(DECODED_PATH.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("source_sha256") != hashlib.sha256(raw).hexdigest():
        return None
    return document.get("catalogue")


@lru_cache(maxsize=1)
def load_catalogue() -> Mapping[str, Rule]:
    """The catalogue, keyed by kind, in file order (areas grouped as the docs present them)."""
    path = rules_path()
    raw = path.read_bytes()
    data = _decoded(raw)
    if data is None:
        data = read_yaml_catalogue(raw.decode("utf-8"))
    return _parse(data, str(path))


def get_rule(kind: str) -> Rule:
    """The rule for ``kind``; an unknown kind is a usage error (a typo in a command or policy)."""
    catalogue = load_catalogue()
    if kind not in catalogue:
        hint = suggest_kind(kind)
        did = f"did you mean `{hint}`? " if hint else ""
        raise UsageError(f"unknown finding kind {kind!r}: {did}see `compatcheck rules`")
    return catalogue[kind]


def suggest_kind(text: str) -> str | None:
    """The kind someone probably meant: the same name without its area, or a close spelling."""
    kinds = list(load_catalogue())
    by_name = [k for k in kinds if k.split("/", 1)[1] == text]
    if len(by_name) == 1:
        return by_name[0]
    close = difflib.get_close_matches(text, kinds, n=1, cutoff=0.75)
    return close[0] if close else None


def render_markdown_table(catalogue: Mapping[str, Rule] | None = None) -> str:
    """The README's finding table, generated so that it can never drift from the catalogue."""
    cat = catalogue if catalogue is not None else load_catalogue()
    lines = [
        "| kind | default severity | what it means |",
        "|---|---|---|",
    ]
    for rule in cat.values():
        sev = rule.severity
        if rule.without_consumers:
            sev += f" ({rule.without_consumers} when nothing uses it)"
        summary = rule.summary.replace("|", "\\|")
        lines.append(f"| `{rule.kind}` | {sev} | {summary} |")
    return "\n".join(lines) + "\n"
