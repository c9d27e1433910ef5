"""``python -m compatcheck.serve``: the hook without the rest of the CLI (same flags as
``compatcheck serve``), for a minimal container entry point."""

from __future__ import annotations

from compatcheck.cli import Parser, run
from compatcheck.serve import add_serve_arguments, cmd_serve


def main() -> int:
    parser = Parser(prog="compatcheck serve", description="run the compatcheck policy hook")
    add_serve_arguments(parser)
    args = parser.parse_args()
    return run(lambda: cmd_serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
