"""Entry point of ``art-denoise``: subcommands, and one-line errors with exit codes.

Exit codes: 0 success, 2 usage error (bad argument, unknown name, invalid data),
1 failure (missing or corrupt files, a failed write, an attack that misbehaved).
Every error is one line, ``art-denoise <command>: error: ...`` (usage) or
``art-denoise <command>: failed: ...``, naming the option and the value at fault. Each
subcommand checks all its options before it loads data or trains anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from art_denoise import __version__
from art_denoise.cli import demo, evaluate_cmd, reproduce_cmd, spectrum_cmd, train_cmd

__all__ = ["build_parser", "main"]

#: Subcommand name -> module with ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "demo": demo,
    "train": train_cmd,
    "evaluate": evaluate_cmd,
    "spectrum": spectrum_cmd,
    "reproduce": reproduce_cmd,
}


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line like the commands' own errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _one_line(message: object) -> str:
    """A message on one line (a library's multi-line message joined with "; ")."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="art-denoise",
        description="Defenses for ART, evaluated across ART, torchattacks and foolbox.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by ``sys.exit``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help / --version (0), or a usage error already printed
        if not done.code:
            raise
        return done.code if isinstance(done.code, int) else 2
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("art-denoise: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError) as err:
        print(f"art-denoise {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        print(f"art-denoise {args.command}: failed: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # a model file's own error types, etc.
        if type(err).__module__.startswith("art_denoise"):
            print(f"art-denoise {args.command}: failed: {_one_line(err)}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
