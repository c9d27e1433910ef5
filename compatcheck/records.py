"""Dataclasses whose JSON form is their fields, written and read in one place.

Many records of a report or a snapshot (a metric family, a verify check, a release binary, a
schema difference) are written as an object whose keys are their fields in declaration order.
Spelling that out as a dict literal per class means a second list of the fields to keep in step
with the first; :func:`record_json` reads the list from the dataclass, so the key order *is* the
declaration order and only the fields written another way are named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, Self, TypeVar

T = TypeVar("T")


#: Each class's fields, looked up once: a snapshot writes hundreds of families, and ``fields()``
#: builds its tuple anew on every call.
_FIELDS: dict[type, tuple[Field[Any], ...]] = {}


def _fields(cls: type) -> tuple[Field[Any], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = fields(cls)
    return found


def record_json(record: Any, **convert: Callable[[Any], Any]) -> dict[str, Any]:
    """The JSON object of the dataclass instance ``record``: every field in declaration order,
    its value as it is (None included) but a tuple as a list; ``convert[name]`` writes the
    field ``name`` instead (a list of records, bounds spelled as Prometheus spells them).

    Values must already be JSON values: a tuple's items are not converted.
    """
    out: dict[str, Any] = {}
    for f in _fields(type(record)):
        name = f.name
        value = getattr(record, name)
        if name in convert:
            value = convert[name](value)
        elif type(value) is tuple:
            value = list(value)
        out[name] = value
    return out


def record_from_json(cls: type[T], data: Mapping[str, Any], **convert: Callable[[Any], Any]) -> T:
    """An instance of the dataclass ``cls`` from its :func:`record_json` form, each value as it
    is but a list as a tuple; ``convert[name]`` reads the field ``name`` instead (a list of
    records), a null staying None. A field without a default must be in ``data`` (``KeyError``
    otherwise), one with a default takes it when its key is absent."""
    given: dict[str, Any] = {}
    for f in _fields(cls):
        if f.name in data:
            value = data[f.name]
            if value is not None and f.name in convert:
                value = convert[f.name](value)
            elif type(value) is list:
                value = tuple(value)
            given[f.name] = value
        elif f.default is MISSING and f.default_factory is MISSING:
            raise KeyError(f.name)
        # Absent with a default: the constructor supplies it (a fresh one from a factory).
    return cls(**given)


class Record:
    """A dataclass whose JSON is its fields in order, each a JSON value as it is: subclass it
    instead of writing ``to_json``/``from_json``; override only what is written otherwise."""

    def to_json(self) -> dict[str, Any]:
        return record_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return record_from_json(cls, data)
