"""Alembic revision files read as source: the module-level facts Alembic reads, and two functions.

Every fact comes from the syntax tree (``ast``), never from importing the file (see
:mod:`.analyser` for why); a file is a :class:`~compatcheck.migrations.steps.Step` of the history.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

from compatcheck.errors import InputError
from compatcheck.migrations.sources.alembic.analyser import Analyser
from compatcheck.migrations.sources.alembic.operations import NOT_LITERAL, literal
from compatcheck.migrations.steps import Step


def _as_tuple(value: Any, path: Path, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list, set, frozenset)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"{path}: `{name}` is not a string, tuple or list of strings")


def _module_level(tree: ast.Module) -> tuple[dict[str, Any], dict[str, ast.FunctionDef]]:
    """Names bound at module level to literal values (or :data:`NOT_LITERAL`), and functions."""
    values: dict[str, Any] = {}
    functions: dict[str, ast.FunctionDef] = {}
    for stmt in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            # `revision: str = "abc"` and `down_revision: Union[str, None] = "x"` (new templates)
            targets, value = [stmt.target], stmt.value
        elif isinstance(stmt, ast.FunctionDef):
            functions[stmt.name] = stmt
        if value is None:
            continue
        # `depends_on = BASE_REV` after `BASE_REV = "abc"`: the name's literal (``(A, B)`` too).
        bound = _with_names(value, values)
        for target in targets:
            if isinstance(target, ast.Name):
                values[target.id] = bound
    return values, functions


def _with_names(value: ast.expr, values: dict[str, Any]) -> Any:
    """``value``'s literal, module-level names bound to literals substituted."""
    if isinstance(value, ast.Name) and value.id in values:
        return values[value.id]
    if isinstance(value, (ast.Tuple, ast.List)):
        items = [_with_names(v, values) for v in value.elts]
        if any(i is NOT_LITERAL for i in items):
            return NOT_LITERAL
        return tuple(items) if isinstance(value, ast.Tuple) else items
    return literal(value)


#: What could bind ``downgrade`` without spelling it: a star import, a module ``__getattr__``
#: (Alembic reads the function with ``getattr``), names made at run time.
_BINDS_UNSPELLED = re.compile(
    r"import\s*\*|__getattr__|__dict__|sys\.modules|\b(?:globals|locals|vars|setattr|exec)\s*\("
)


def cannot_define(source: str, name: str) -> bool:
    """Whether the module's ``source`` certainly leaves ``name`` unbound: it is spelled nowhere
    (code, comments or strings) and nothing in it could bind a name it does not spell."""
    return name not in source and _BINDS_UNSPELLED.search(source) is None


def read_revision_file(path: Path) -> Step | None:
    """Parse one revision file; None when it is not a revision (no ``revision`` assignment)."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    except SyntaxError as exc:
        raise InputError(f"{path}: syntax error on line {exc.lineno}: {exc.msg}") from exc
    values, functions = _module_level(tree)
    revision = values.get("revision")
    if revision is None or revision is NOT_LITERAL:
        return None
    if not isinstance(revision, str):
        raise InputError(f"{path}: `revision` is not a string")
    for key in ("down_revision", "branch_labels", "depends_on"):
        if values.get(key) is NOT_LITERAL:
            raise InputError(
                f"{path}: `{key}` is neither a literal nor a name bound to one in this file "
                "(compatcheck reads revisions as source, never importing them): write the "
                "revision ids there"
            )
    # Strings, and lists/tuples/dicts of literals: loops over them are unrolled (analyser).
    constants = {
        k: v for k, v in values.items() if isinstance(v, (str, list, tuple, dict, frozenset))
    }
    analyser = Analyser(functions, constants)
    return Step(
        id=revision,
        path=path,
        parents=_as_tuple(values.get("down_revision"), path, "down_revision"),
        labels=_as_tuple(values.get("branch_labels"), path, "branch_labels"),
        depends_on=_as_tuple(values.get("depends_on"), path, "depends_on"),
        up=analyser.function("upgrade"),
        down=analyser.function("downgrade"),
        down_absent=cannot_define(source, "downgrade"),
    )


def list_revision_files(versions: Path, recursive: bool = False) -> list[Path]:
    """The ``.py`` files Alembic would load from one version location, in the order it loads
    them (sorted by name; with ``recursive_version_locations``, each folder's files before its
    subfolders', subfolders sorted).

    Trap: the load order is the tie-break Alembic uses between independent branches when it orders
    a downgrade, so it must be reproduced exactly.
    """
    out: list[Path] = []
    for root, dirs, files in os.walk(versions):
        if Path(root).name.endswith("__pycache__"):
            dirs[:] = []
            continue
        out.extend(
            Path(root) / name
            for name in sorted(files)
            if name.endswith(".py") and not name.startswith((".#", "__init__"))
        )
        if not recursive:
            break
        dirs.sort()
    return out
