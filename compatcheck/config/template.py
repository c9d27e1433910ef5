"""``compatcheck init``: a first ``compatcheck.yaml``, written from the declaration.

The file is valid as written (``compatcheck config --validate`` accepts it) and lists every
optional section commented out, each key with its default and meaning, so that the template can
never offer a key the loader would refuse.
"""

from __future__ import annotations

import json
import re

from compatcheck.config.declaration import CONFIG, Key

#: The sections written out as they are (the rest is commented out).
_ACTIVE = ("service", "old", "new")


def _line(prefix: str, key: Key) -> str:
    """``# <prefix>name: default  # meaning`` (no default: the key alone)."""
    value = f" {key.default}" if key.default is not None and not key.keys else ""
    return f"# {prefix}{key.name}:{value}  # {key.doc}"


def _commented(key: Key) -> list[str]:
    """One commented-out top-level key: its meaning, then its sub-keys with their defaults."""
    lines = [_line("", key)]
    if key.type == "sections":
        first, *rest = key.keys
        lines += [_line("  - ", first), *(_line("    ", k) for k in rest)]
    else:
        lines += [_line("  ", k) for k in key.keys]
    return lines


def render_template(service: str) -> str:
    """The text of a new ``compatcheck.yaml`` for ``service``."""
    module = re.sub(r"\W", "_", service) or "app"
    target = [
        "  # Exactly one of: command, url, snapshot, exposition, stored.",
        f'  command: ["{{python}}", "-m", "{module}", "--port", "{{port}}"]',
        "  # cwd: releases/{role}  # the release tree the command runs in",
    ]
    lines = [
        f"# compatcheck.yaml for {service}: how to reach the release rolled back to (old) and the",
        "# release running now (new), and what to compare. Check it with",
        "# `compatcheck config --validate`; `compatcheck config --schema` describes every key.",
        f"service: {json.dumps(service)}",
    ]
    for role in ("old", "new"):
        lines += [f"{role}:", f"  label: {role}", *(t.replace("{role}", role) for t in target)]
    for key in CONFIG.keys:
        if key.name not in _ACTIVE:
            lines += _commented(key)
    return "\n".join(line.rstrip() for line in lines) + "\n"
