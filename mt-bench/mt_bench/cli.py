"""The error boundary every mt-bench command runs in, and its argument parsers.

    def main(argv: list[str]) -> ...:         # does the work, raises on errors
        args = cli.parse_args(MyArgs, argv)   # or cli.argument_parser(...) for plain argparse
        ...

    if __name__ == "__main__":
        cli.run(main)

Expected errors print one line on stderr, `error: <which file, line or parameter: what to do>`, and
exit with status 2, without a traceback: a UsageError (our own checks: bad arguments, bad input
files, an endpoint that refuses or fails), a bad argument for the parser, a missing or unreadable
file (OSError), a file that is not UTF-8 or not JSON. Anything else is a bug and keeps its traceback.
Ctrl-C, and SIGTERM (turned into the same KeyboardInterrupt, so both stop alike), print one line
(an Interrupted's message says what was kept and how to continue) and exit with 128 + the signal's
number. `--debug`, accepted by every command, or BADAM_DEBUG=1 lets every error through with its
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
DEBUG_HELP = "show the traceback of an error instead of one line (or set BADAM_DEBUG=1)"


class UsageError(Exception):
    """An error the user can fix; the message names the file, line or parameter and what to do."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM after the command saved what it could; the message says what a rerun does."""


def run(main: Callable[[list[str]], T], argv: list[str] | None = None) -> T:
    """main(argv) (default: the command line) inside the error boundary described above."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("BADAM_DEBUG") == "1"
    signals = []

    def on_sigterm(signum, frame):
        signals.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return main(argv)
    except KeyboardInterrupt as e:
        if debug:
            raise
        status = 128 + (signals[-1] if signals else signal.SIGINT)  # as a shell reports a signal's end
        _exit(str(e) if isinstance(e, Interrupted) else "interrupted", status)
    except Exception as e:
        message = describe(e)
        if debug or message is None:
            raise
        _exit(f"error: {message}", 2)
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe(e: Exception) -> str | None:
    """The one-line message for an expected error; None for anything else (a bug)."""
    if isinstance(e, UsageError):
        message = str(e)
    elif isinstance(e, UnicodeDecodeError):  # carries no file name: our readers name it themselves
        message = f"a file is not UTF-8 text ({e.reason} at byte {e.start}); --debug shows which"
    elif isinstance(e, json.JSONDecodeError):
        message = f"a file is not valid JSON ({e.msg}, line {e.lineno}); --debug shows which"
    elif isinstance(e, OSError):
        message = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    else:
        return None
    return re.sub(r"\s*\n\s*", " ", message.strip())


def argument_parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser whose errors are UsageErrors, with --debug."""
    return _prepare(argparse.ArgumentParser(description=description))


def parse_args(dataclass_type: type[T], argv: list[str]) -> T:
    """argv parsed into dataclass_type by HfArgumentParser (a field's metadata may hold help, choices);
    bad or unknown arguments, and a UsageError from the dataclass's __post_init__, are UsageErrors."""
    from transformers import HfArgumentParser  # a slow import, only for the commands that need it

    args, *_, rest = _prepare(HfArgumentParser(dataclass_type)).parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if rest:
        _usage_error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def _prepare(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)  # read by run(), from argv
    parser.error = _usage_error  # argparse would print the whole usage, then exit
    return parser


def _usage_error(message: str):
    raise UsageError(f"{message} (see --help)")


def _exit(message: str, status: int):
    sys.stdout.flush()  # what the command printed comes before its last word
    print(message, file=sys.stderr)
    raise SystemExit(status)
