"""The error boundary of every command-line entry point: one line for what the user can fix.

    if __name__ == "__main__":
        run_cli(main)

Expected errors (bad flags, configs, data files, a model that cannot be found, a run directory that
belongs to other settings) print `error: <message>` and exit with status 2, without a traceback;
`--debug` (anywhere on the command line) or BADAM_DEBUG=1 shows the traceback instead. A run stopped
by SIGTERM or SIGINT (badam.preemption) prints where its checkpoint is and exits with 128 + the
signal number; a second Ctrl-C, which aborts at once, exits 130.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from badam.preemption import Preempted

# What bad input raises here (UnicodeDecodeError and JSONDecodeError are ValueErrors). Anything else
# is a bug, and keeps its traceback.
EXPECTED = (ValueError, OSError, ImportError)
DEBUG_FLAG = "--debug"
DEBUG_HELP = f"{DEBUG_FLAG}: on an error, show its traceback (or set BADAM_DEBUG=1)"


def check_choice(setting: str, value: str, choices: dict[str, str]) -> str:
    """`value` if it is one of the setting's choices, else an error listing them with what each is."""
    if value not in choices:
        known = "; ".join(f"{key} ({text})" for key, text in choices.items())
        raise ValueError(f"--{setting} {value!r}: choose one of {known}")
    return value


def run_cli(main: Callable[[list[str]], Any], argv: list[str] | None = None) -> Any:
    """Call `main(argv)` (argv without --debug), turning expected errors into one line and exit 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = DEBUG_FLAG in argv or os.environ.get("BADAM_DEBUG", "") not in ("", "0")
    try:
        return main([a for a in argv if a != DEBUG_FLAG])
    except Preempted as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        print(
            "interrupted: stopped at once, without a checkpoint; rerunning the same command resumes from the "
            "newest complete checkpoint",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGINT)
    except EXPECTED as e:
        if debug:
            raise
        message = " ".join(str(e).split())  # one line, whatever the library's message looked like
        print(f"error: {message} ({DEBUG_FLAG} shows the traceback)", file=sys.stderr)
        sys.exit(2)
