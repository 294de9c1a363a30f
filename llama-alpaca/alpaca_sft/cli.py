"""The error boundary of the command-line entry points: one line for what the user can fix, exit 2.

    def main() -> None:
        run_cli(train)

Expected errors (bad arguments, files, data, configs, a model that cannot be found, an incompatible
checkpoint) print `error: <message>` and exit with status 2; a run stopped by SIGTERM or SIGINT
prints where its checkpoint is and how to resume, and exits with 128 + the signal number. Set
BADAM_DEBUG=1 to see the traceback instead (`--debug` is the Trainer's own flag here).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from badam.preemption import Preempted

EXPECTED = (ValueError, FileNotFoundError, ImportError, OSError)


def run_cli(main: Callable[[], Any]) -> Any:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        return main()
    except Preempted as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except EXPECTED as exc:
        if os.environ.get("BADAM_DEBUG", "") not in ("", "0"):
            raise
        print(f"error: {exc} (BADAM_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(2)
