"""Published JSON Schemas for the snapshot and report documents, and a validator.

The schemas are part of the public contract: other tools (conftest/OPA policies, dashboards of
verdicts) are written against them, and every report the tests produce is validated here.

Validation runs where someone waits (the snapshot gate reads two stored snapshots), so a valid
document is accepted by a compiled validator (fastjsonschema turns the schema into Python code:
about 100 times faster than interpreting it), and only a document it rejects is judged again by
jsonschema, whose verdict stands and whose ``best_match`` gives the one-line message. The
compiled validator can therefore only save time, never change an outcome; the schemas use no
keyword whose meaning differs between the two (``tests/test_schemas.py`` checks both agree).

Compiling a schema takes longer than the snapshot gate may spend on validating (fastjsonschema's
import and code generation: about 30 ms), so the compiled code is kept in the user's cache
(``$XDG_CACHE_HOME/compatcheck``, else ``~/.cache/compatcheck``) as a marshalled code object,
named by the digest of the schema it was made from and the interpreter's bytecode tag, and
checked by its own digest before it runs: a changed schema, another Python or a damaged file
costs one compilation, never a wrong verdict. Where the cache cannot be written (a read-only
home) every run compiles. The cached code imports neither fastjsonschema nor :mod:`decimal`
(together a tenth of the gate's start-up): its rejections are plain ``ValueError`` subclasses,
and its ``Decimal`` is a class nothing is an instance of (``json.loads`` makes none; were a
caller's document to hold one, the fast path would reject it and jsonschema would judge it).
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_FILES = {"snapshot": "snapshot.schema.json", "report": "report.schema.json"}
#: fastjsonschema's imports in the code it generates, and what the cached code has instead.
_STANDINS = {
    "from decimal import Decimal\n": "class Decimal:\n    pass\n",
    "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n": (
        "class JsonSchemaValueException(ValueError):\n"
        "    def __init__(self, message, value=None, name=None, definition=None, rule=None):\n"
        "        super().__init__(message)\n"
        "        self.message, self.value, self.name = message, value, name\n"
        "        self.definition, self.rule = definition, rule\n\n\n"
        "class JsonSchemaValuesException(ValueError):\n"
        "    def __init__(self, errors):\n"
        "        super().__init__(errors)\n"
        "        self.errors = errors\n"
    ),
}


def _schema_bytes(name: str) -> bytes:
    return (SCHEMA_DIR / SCHEMA_FILES[name]).read_bytes()


def _digest(name: str) -> str:
    """The digest of schema ``name`` as it is now: what its compiled code records and its cache
    file is named by (not cached: a changed schema file must get a new one)."""
    return hashlib.sha256(_schema_bytes(name)).hexdigest()


@cache
def load_schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_schema_bytes(name))
    return data


def render_validator(name: str) -> str:
    """The source of the compiled validator of schema ``name`` (fastjsonschema's code, its
    imports replaced by stand-ins), defining ``SCHEMA_SHA256`` and ``validate``."""
    import fastjsonschema

    code = fastjsonschema.compile_to_code(load_schema(name))
    for line, standin in _STANDINS.items():
        # Replaced only as we know it: a fastjsonschema that imports otherwise fails here, loudly.
        assert code.count(line) == 1, f"fastjsonschema's code no longer says {line!r}"
        code = code.replace(line, standin)
    digest = _digest(name)
    # fastjsonschema defines the schema's own function first, then one per $defs entry.
    root = re.search(r"^def (validate\w*)\(", code, re.MULTILINE)
    assert root is not None, "fastjsonschema's code defines no validate function"
    return f'SCHEMA_SHA256 = "{digest}"\n{code}\n\nvalidate = {root[1]}\n'


def cache_path(name: str, digest: str | None = None) -> Path | None:
    """Where the compiled validator of schema ``name`` (whose digest is ``digest``, when the
    caller has it already) is kept (None: no home to keep it in)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry (a bare container user)
            return None
    digest = digest or _digest(name)
    tag = sys.implementation.cache_tag or "python"
    return Path(base) / "compatcheck" / f"{name}-validator-{digest[:24]}.{tag}.bin"


def _run(code: Any, digest: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # our own compiled schema code, checked by digest before it runs
    if namespace.get("SCHEMA_SHA256") != digest:
        raise ValueError("made from another schema")
    return namespace["validate"]


def _load(path: Path, digest: str) -> Any:
    """The validator kept at ``path``, or None when it is missing, damaged or not this schema's."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    check, payload = data[:32], data[32:]
    if hashlib.sha256(payload).digest() != check:
        return None  # torn, truncated or altered: marshal must never see such bytes
    try:
        return _run(marshal.loads(payload), digest)
    except Exception:  # another interpreter's code object, or not ours: compile anew
        return None


def _store(path: Path, code: Any) -> None:
    """Keep ``code`` at ``path`` (atomically: a reader sees the old file or the whole new one)."""
    payload = marshal.dumps(code)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only or full cache: the next run compiles again


@cache
def _compiled(name: str) -> Any:
    digest = _digest(name)  # read and hashed once on a cache hit (the snapshot gate)
    path = cache_path(name, digest)
    if path is not None and (kept := _load(path, digest)) is not None:
        return kept
    code = compile(render_validator(name), f"<compatcheck {name} schema validator>", "exec")
    if path is not None:
        _store(path, code)
    return _run(code, digest)


def accepts(document: Any, name: str) -> bool:
    """True when the compiled validator accepts ``document``: then it is valid. False means
    "judge it with :func:`validate`", not "invalid"."""
    try:
        _compiled(name)(document)
        return True
    except ValueError:  # fastjsonschema's rejections, and the cached code's
        return False


def validate(document: Any, name: str) -> str | None:
    """Return ``None`` when ``document`` is valid, else one line: the JSON path and the problem."""
    if accepts(document, name):
        return None
    # Judged again: jsonschema decides and words the message.
    # Imported here: it takes ~0.1 s to import and is needed only to word a rejection.
    import jsonschema

    schema = load_schema(name)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {path}: {error.message}"
