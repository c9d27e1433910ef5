"""``python -m compatcheck.serve``: the hook without the rest of the CLI (same flags as
``compatcheck serve``), for a minimal container entry point."""

from __future__ import annotations

import sys

from compatcheck.errors import CompatcheckError
from compatcheck.interrupts import exit_status, sigterm_as_interrupt
from compatcheck.masking import mask_secrets


def main() -> int:
    from compatcheck.cli import _Parser, resource_error
    from compatcheck.serve import add_serve_arguments, cmd_serve

    parser = _Parser(prog="compatcheck serve", description="run the compatcheck policy hook")
    add_serve_arguments(parser)
    args = parser.parse_args()
    try:
        with sigterm_as_interrupt():
            return cmd_serve(args)
    except CompatcheckError as exc:
        print(f"compatcheck: error: {mask_secrets(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        code, line = exit_status(exc)
        print(line, file=sys.stderr)
        return code
    except (MemoryError, RecursionError) as exc:
        print(resource_error(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
