"""``python -m compatcheck`` is the same as the ``compatcheck`` console script."""

from compatcheck.cli import main

raise SystemExit(main())
