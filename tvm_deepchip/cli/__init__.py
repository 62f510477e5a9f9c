"""`deepchip` command line: one module per sub-command in this package.

Each module defines `register(subparsers)` that adds its parser and sets `func=run`; `main`
discovers them, so adding a command never edits a shared list.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import signal
import sys

from .. import interrupts
from ..errors import DeepChipError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepchip", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    with interrupts.handled("deepchip") as on_signal:
        try:
            args = build_parser().parse_args(argv)
            on_signal.prefix = f"deepchip {args.command}"
            logging.basicConfig(
                level=logging.DEBUG if args.verbose else logging.INFO,
                format="%(levelname)s %(name)s: %(message)s",
            )
            return int(args.func(args) or 0)
        except BaseException as err:
            signum = interrupts.signal_of(err)
            if signum is not None:  # SIGINT/SIGTERM: one line, exit 130/143 (interrupts.py)
                logging.disable(logging.INFO)  # no libraries' shutdown chatter after that line
                return on_signal.report(signum)
            if isinstance(err, DeepChipError):
                print(f"{on_signal.prefix}: error: {err}", file=sys.stderr)
                return 2
            raise


if __name__ == "__main__":
    sys.exit(main())


def console() -> None:
    """The `deepchip` command (and `python -m tvm_deepchip`): main's exit status. After a signal
    (130, 143: the line is printed, temporaries removed) the process ends at once: in the
    interpreter's shutdown, which runs library finalizers and resets SIGINT to its default, a
    measured 1 run in 4 of the suite's SIGINT test ended killed by the signal (-2) instead."""
    code = main()
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
