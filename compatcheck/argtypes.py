"""Command-line value types shared by the subcommands: numbers with bounds, durations, ratios.

argparse calls a ``type`` with the raw text; each one here turns a bad value into an
``ArgumentTypeError`` whose message argparse prints after the flag's name, so every command words
a bad number the same way and exits 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)


def number(
    convert: Callable[[str], T], expected: str, ok: Callable[[T], bool], problem: str
) -> Callable[[str], T]:
    """A ``type`` that converts with ``convert`` and accepts what ``ok`` accepts.

    ``expected`` is the message for text that does not convert and ``problem`` for a value out of
    bounds; both are formatted with ``text``, ``value`` and (for ``expected``) ``exc``.
    """

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(expected.format(text=text, exc=exc)) from None
        if not ok(value):
            raise argparse.ArgumentTypeError(problem.format(text=text, value=value))
        return value

    return parse


def _duration_seconds(text: str) -> float:
    # Imported here: compatcheck.config loads the whole config machinery, and every command
    # builds its parser with these types.
    from compatcheck.config import parse_duration

    return parse_duration(text)


positive_int = number(
    int, "expected an integer, got {text!r}", lambda v: v >= 1, "must be at least 1, got {value}"
)
port = number(
    int,
    "expected a port number, got {text!r}",
    lambda v: 0 <= v <= 65535,
    "port must be 0-65535, got {value}",
)
seconds = number(
    float, "expected seconds, got {text!r}", lambda v: v > 0, "must be positive, got {text}"
)
ratio = number(
    float,
    "expected a ratio like 0.015, got {text!r}",
    lambda v: 0 <= v <= 1,
    "must be between 0 and 1, got {text}",
)
duration = number(_duration_seconds, "{exc}", lambda v: v > 0, "must be positive, got {text!r}")
