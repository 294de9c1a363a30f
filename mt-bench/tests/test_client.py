"""The chat client against a real HTTP server on 127.0.0.1 that injects failures."""

import pytest

from mt_bench.client import ChatClient, JudgeAPIError
from mt_bench.fake_judge import FakeJudge, fake_rating

MESSAGES = [{"role": "system", "content": "You are a judge."}, {"role": "user", "content": "Rate this."}]


def client(judge, **kw):
    kw = {"timeout": 0.5, "max_retries": 5, "backoff": 0.01, **kw}
    return ChatClient(judge.api_base, "gpt-4", api_key="sk-test", **kw)


def test_retries_through_429_500_slow_and_malformed_replies():
    with FakeJudge(faults=["429", "500", "slow", "malformed"], slow_seconds=1.5) as judge:
        text = client(judge).complete(MESSAGES)
    assert text.endswith(f"Rating: [[{fake_rating('Rate this.')}]]")
    assert [fault for fault, _ in judge.log] == ["429", "500", "slow", "malformed", "ok"]


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


def test_unreachable_server_is_retried_then_reported():
    with FakeJudge() as judge:
        pass  # stopped: its port now refuses connections
    with pytest.raises(JudgeAPIError, match="gave up after 2 attempts, last: ConnectError"):
        client(judge, max_retries=1).complete(MESSAGES)
