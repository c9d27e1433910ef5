"""The config file as a YAML document with readers for the declared value types.

:class:`Loader` adds what ``compatcheck.yaml`` needs to the generic validators of
:class:`~compatcheck.yamlfile.YamlDocument`: HTTP paths, durations, a section's declared keys, and
:meth:`Loader.plain`, which reads any key whose declared type says all there is to check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compatcheck.config.declaration import Key
from compatcheck.config.model import parse_duration
from compatcheck.yamlfile import YamlDocument


class Loader(YamlDocument):
    """Config-specific validators on top of the generic ones (HTTP paths, durations)."""

    def http_path(self, value: Any, where: tuple[Any, ...]) -> str:
        text = self.string(value, where)
        if not text.startswith("/"):
            raise self.error(where, f"`{self.dotted(where)}` must start with `/` (got {text!r})")
        return text

    def duration(self, value: Any, where: tuple[Any, ...]) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(where, f"`{self.dotted(where)}`: {exc}") from None

    def section(self, raw: Any, where: tuple[Any, ...], decl: Key) -> dict[str, Any]:
        """``raw`` as a mapping of the keys ``decl`` declares (an unknown key is an error)."""
        return self.mapping(raw, where, decl.names())

    def plain(self, data: Mapping[str, Any], where: tuple[Any, ...], key: Key) -> Any:
        """A key whose type says all there is to check: its value, or its declared default."""
        if key.name not in data:
            return parse_duration(key.default) if key.type == "duration" else key.default
        return _PLAIN[key.type](self, data[key.name], (*where, key.name), key)

    def paths(self, value: Any, where: tuple[Any, ...]) -> tuple[Path, ...]:
        items = self.string_list(value, where)
        return tuple(self.path_in(v, (*where, i), self.path.parent) for i, v in enumerate(items))

    def consumer_sources(self, value: Any, where: tuple[Any, ...]) -> tuple[Path | str, ...]:
        """Paths (relative to the config file), and ``prometheus:URL`` kept as written."""
        from compatcheck.consumers.live import check_live, is_live
        from compatcheck.errors import InputError

        out: list[Path | str] = []
        for i, v in enumerate(self.string_list(value, where)):
            if not is_live(v):
                out.append(self.path_in(v, (*where, i), self.path.parent))
                continue
            try:
                check_live(v)
            except InputError:
                raise self.error(
                    (*where, i),
                    f"`{self.dotted((*where, i))}`: expected prometheus:http(s)://HOST:PORT",
                ) from None
            out.append(v)
        return tuple(out)


#: How each plain type is read (types that need more context are read by their section).
_PLAIN: dict[str, Callable[[Loader, Any, tuple[Any, ...], Key], Any]] = {
    "string": lambda ld, v, w, k: ld.string(v, w),
    "http_path": lambda ld, v, w, k: ld.http_path(v, w),
    "duration": lambda ld, v, w, k: ld.duration(v, w),
    "integer": lambda ld, v, w, k: ld.integer(v, w, k.minimum or 0),
    "path": lambda ld, v, w, k: ld.path_in(v, w, ld.path.parent),
    "paths": lambda ld, v, w, k: ld.paths(v, w),
    "consumer_sources": lambda ld, v, w, k: ld.consumer_sources(v, w),
}
