"""Entry point of ``art-denoise``: subcommands, and one-line errors with exit codes.

Exit codes: 0 success, 2 usage error (bad argument, unknown name, invalid data),
1 failure (missing or corrupt files, an attack that misbehaved).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from art_denoise import __version__
from art_denoise.cli import demo, evaluate_cmd, spectrum_cmd, train_cmd

__all__ = ["build_parser", "main"]

#: Subcommand name -> module with ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = {
    "demo": demo,
    "train": train_cmd,
    "evaluate": evaluate_cmd,
    "spectrum": spectrum_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("art-denoise: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError) as err:
        print(f"art-denoise {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        print(f"art-denoise {args.command}: failed: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a model file's own error types, etc.
        if type(err).__module__.startswith("art_denoise"):
            print(f"art-denoise {args.command}: failed: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
