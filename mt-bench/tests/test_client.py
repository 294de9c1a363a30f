"""The chat client against a real HTTP server on 127.0.0.1 that injects failures."""

import logging
import threading
import time

import pytest

from mt_bench.client import ChatClient, EndpointUnreachable, JudgeAPIError, Stopped
from mt_bench.fake_judge import FakeJudge, fake_rating

MESSAGES = [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": "Rate this."}]


def client(judge, **kw):
    kw = {"timeout": 0.5, "max_retries": 5, "backoff": 0.01, **kw}
    return ChatClient(judge.api_base, "gpt-4", api_key="sk-test", **kw)


def test_retries_through_429_500_slow_and_malformed_replies(caplog):
    with FakeJudge(faults=["429", "500", "slow", "malformed"], slow_seconds=1.5) as judge:
        with caplog.at_level(logging.WARNING, logger="mt_bench.client"):
            text = client(judge).complete(MESSAGES)
    assert text.endswith(f"Rating: [[{fake_rating('Rate this.')}]]")
    assert [fault for fault, _ in judge.log] == ["429", "500", "slow", "malformed", "ok"]
    # Each retry is shown as it happens: what failed, attempt n/N, the wait.
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 4
    for n, (line, what) in enumerate(zip(retries, ["HTTP 429", "HTTP 500", "ReadTimeout", "malformed body"]), 1):
        assert (
            line.startswith(f"{judge.api_base}/chat/completions: attempt {n}/6 failed ({what}")
            and "retrying in" in line
        )


def test_gives_up_after_max_retries():
    with FakeJudge(faults=["500"] * 10) as judge:
        with pytest.raises(JudgeAPIError, match="gave up after 3 attempts, last: HTTP 500"):
            client(judge, max_retries=2).complete(MESSAGES)
    assert len(judge.log) == 3


def test_client_errors_are_not_retried():
    with FakeJudge(faults=["401"]) as judge:
        with pytest.raises(JudgeAPIError, match="HTTP 401.*injected 401"):
            client(judge).complete(MESSAGES)
    assert len(judge.log) == 1


def test_refused_connections_fail_fast(caplog):
    with FakeJudge() as judge:
        pass  # stopped: its port now refuses connections
    start = time.monotonic()
    with pytest.raises(
        EndpointUnreachable,
        match=f"cannot connect to {judge.api_base}/chat/completions .*Connect"
        r"Error.*3 times in a row: check --api_base \(API_BASE",
    ):
        client(judge, max_retries=8).complete(MESSAGES)
    assert time.monotonic() - start < 2
    assert len(caplog.records) == 2 and "attempt 2/9 failed (ConnectError" in caplog.records[1].getMessage()
    with pytest.raises(JudgeAPIError, match="gave up after 2 attempts, last: ConnectError"):
        client(judge, max_retries=1).complete(MESSAGES)  # fewer attempts than that: the usual end


def test_stop_ends_a_request_waiting_to_retry():
    with FakeJudge(faults=["500"] * 10) as judge:
        c = client(judge, backoff=30.0)
        stopped = []

        def ask():
            try:
                c.complete(MESSAGES)
            except Stopped as e:
                stopped.append(e)

        thread = threading.Thread(target=ask)
        thread.start()
        while not judge.log:
            time.sleep(0.01)
        c.stop()
        thread.join(timeout=5)
    assert not thread.is_alive() and stopped and len(judge.log) == 1  # gave up at once, asked once
