"""Paid API requests run concurrently, keeping every reply that was paid for when the run stops.

    run_jobs(client, jobs, parallel=4, desc="judging (gpt-4)", noun="judgments", where=judgment_file)

Each job makes its requests with `client` and records what they bring itself, on its worker thread:
signals interrupt only the main thread, so a reply that arrived is never lost between its arrival
and its line in a file. A job failing with a JudgeAPIError (the endpoint refused, or kept failing) is
a failure: the others go on, and once all are done one JudgeAPIError says how many failed (a rerun
asks for them again). On Ctrl-C or SIGTERM (raised as Interrupted) or an unreachable endpoint nothing
new is sent, and the jobs in flight are awaited, their replies recorded, before the error is raised.
The client is closed when run_jobs returns or raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mt_bench.cli import Interrupted
from mt_bench.client import ChatClient, EndpointUnreachable, JudgeAPIError

log = logging.getLogger(__name__)


def run_jobs(
    client: ChatClient, jobs: list[Callable[[], None]], parallel: int, desc: str, noun: str, where: Path
) -> None:
    """Run the jobs, `parallel` at once (see the module docstring)."""
    try:
        failures = _run(client, jobs, parallel, desc, noun, where)
    finally:
        client.close()
    if failures:
        raise JudgeAPIError(
            f"{len(failures)} of {len(jobs)} {noun} failed (rerun to ask for them again); first: {failures[0]}"
        )


def _run(client: ChatClient, jobs: list[Callable[[], None]], parallel: int, desc: str, noun: str, where: Path):
    failures: list[str] = []
    with (
        logging_redirect_tqdm(),
        ThreadPoolExecutor(max_workers=parallel) as pool,
        tqdm(total=len(jobs), desc=desc) as bar,
    ):
        futures = []
        try:
            for job in jobs:
                futures.append(pool.submit(job))
            for future in as_completed(futures):
                bar.update()
                try:
                    future.result()
                except EndpointUnreachable:
                    raise
                except JudgeAPIError as e:
                    failures.append(str(e))
                    log.warning("request failed, a rerun will ask again: %s", e)
        except BaseException as e:
            # Requests already sent are paid for: stop sending new ones, keep what the sent ones bring.
            client.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            await_in_flight([f for f in futures if not f.cancelled()])
            if not isinstance(e, KeyboardInterrupt):
                raise
            done = sum(f.done() and not f.cancelled() and f.exception() is None for f in futures)
            raise Interrupted(
                f"interrupted: {done} of the {len(jobs)} {noun} to ask for were recorded in {where}, "
                "the requests in flight awaited; a rerun of the same command continues where it stopped"
            ) from None
    return failures


def await_in_flight(futures: list[Future]) -> None:
    """Wait for every future, whatever signals come meanwhile: the requests in flight are paid for.

    A wait on the futures, not a join of the pool's threads: Python 3.11 may take a join interrupted
    by a signal for a finished thread, and then exit before the reply is written."""
    while True:
        try:
            wait(futures)
            return
        except KeyboardInterrupt:
            log.warning("still waiting for the requests in flight (at most --timeout seconds each)")
