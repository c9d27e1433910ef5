"""``python -m compatcheck`` is the same as the ``compatcheck`` console script."""

from compatcheck.entry import entry

entry()
