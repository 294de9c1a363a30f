"""A client for OpenAI-compatible chat-completions endpoints that retries what is worth retrying.

    client = ChatClient(api_base="https://api.openai.com/v1", model="gpt-4", api_key=os.environ["OPENAI_API_KEY"])
    text = client.complete([{"role": "user", "content": "Hi"}], temperature=0.0, max_tokens=2048)

Rate limits (429), server errors (5xx), timeouts, dropped connections and malformed bodies are retried
with exponential backoff and jitter, honouring a Retry-After header, each retry logged as a warning
(what failed, attempt n/N, the wait); any other 4xx (a bad key, a bad request) is raised at once, since
retrying it would only burn time. So is an endpoint that cannot be connected to (refused, unknown
host) `connect_failures` times in a row: nothing listens there, and waiting minutes would not help.
One client is safe to share between threads; stop() makes every request give up instead of retrying.
APIArgs holds the arguments of the commands that pay for requests (judge, api_answer) and makes their
client.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import warnings
from dataclasses import dataclass, field

import httpx

from mt_bench.cli import UsageError

log = logging.getLogger(__name__)


class JudgeAPIError(UsageError):
    """The endpoint refused the request, or kept failing past the retry limit."""


class EndpointUnreachable(JudgeAPIError):
    """Connecting to the endpoint failed (refused, unknown host) connect_failures times in a row."""


class Stopped(JudgeAPIError):
    """The request gave up instead of retrying because stop() was called."""


@dataclass
class ChatClient:
    api_base: str  # e.g. https://api.openai.com/v1 (the path /chat/completions is appended)
    model: str  # model name sent in every request
    api_key: str | None = None  # sent as a Bearer token when set
    timeout: float = 120.0  # seconds for one HTTP request
    max_retries: int = 8  # retries after the first attempt
    backoff: float = 2.0  # seconds before the first retry, doubled after each
    max_backoff: float = 60.0  # ceiling of one wait
    connect_failures: int = 3  # failed connections in a row that end a request at once

    def __post_init__(self):
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.url = self.api_base.rstrip("/") + "/chat/completions"
        self._http = httpx.Client(timeout=self.timeout, headers=headers)
        self._stopped = threading.Event()

    def complete(self, messages: list[dict], temperature: float = 0.0, max_tokens: int = 2048) -> str:
        """The assistant message's text for a list of {"role", "content"} messages."""
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        attempts, refused = self.max_retries + 1, 0
        for attempt in range(attempts):
            if self._stopped.is_set():
                raise Stopped(f"{self.url}: stopped before attempt {attempt + 1}")
            wait = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            try:
                response = self._http.post(self.url, json=body)
            except httpx.ConnectError as e:  # refused, unknown host (a connect timeout is not one)
                reason, refused = f"{type(e).__name__}: {e}", refused + 1
                if refused >= self.connect_failures:
                    raise EndpointUnreachable(
                        f"cannot connect to {self.url} ({reason}), {refused} times in a row: check --api_base "
                        "(API_BASE for the scripts) and that the server is up"
                    ) from None
            except httpx.TransportError as e:  # timeouts, dropped connections
                reason, refused = f"{type(e).__name__}: {e}", 0
            else:
                refused = 0
                if response.status_code == 200:
                    try:
                        return _message_text(response.json())
                    except ValueError as e:
                        reason = f"malformed body ({e}): {response.text[:200]!r}"
                elif response.status_code == 429 or response.status_code >= 500:
                    reason = f"HTTP {response.status_code}: {response.text[:200]!r}"
                    wait = max(wait, _retry_after(response))
                else:
                    raise JudgeAPIError(f"{self.url}: HTTP {response.status_code}: {response.text[:500]}")
            if attempt + 1 < attempts:
                log.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.1fs", self.url, attempt + 1, attempts, reason, wait
                )
                if self._stopped.wait(wait):
                    raise Stopped(f"{self.url}: stopped after attempt {attempt + 1} ({reason})")
        raise JudgeAPIError(f"{self.url}: gave up after {attempts} attempts, last: {reason}")

    def stop(self) -> None:
        """Requests in flight still finish, but none is retried or started any more."""
        self._stopped.set()

    def close(self) -> None:
        self._http.close()


def _message_text(payload: object) -> str:
    # Raises ValueError (json errors are ValueErrors too) for any body that is not a chat completion.
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("no choices[0].message.content") from None
    if not isinstance(content, str):
        raise ValueError("message content is not a string")
    return content


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", 0)), 600.0)
    except ValueError:  # an HTTP date instead of seconds: fall back to our own backoff
        return 0.0


@dataclass(kw_only=True)
class APIArgs:
    """The endpoint and how to ask it: the arguments every command that pays for requests shares."""

    api_base: str = field(default="https://api.openai.com/v1", metadata={"help": "OpenAI-compatible base URL"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding the API key"})
    parallel: int = field(default=4, metadata={"help": "requests at once"})
    timeout: float = field(default=120.0, metadata={"help": "seconds for one request"})
    max_retries: int = field(
        default=8,
        metadata={
            "help": "retries of one request on 429/5xx/timeouts/bad bodies (3 failed connections in a row stop the run)"
        },
    )
    backoff: float = field(default=2.0, metadata={"help": "seconds before the first retry, doubled after each"})

    def __post_init__(self):  # checked before anything is loaded or sent
        for name, low in (("parallel", 1), ("max_retries", 0), ("backoff", 0)):
            if getattr(self, name) < low:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least {low}")
        if self.timeout <= 0:
            raise UsageError(f"--timeout {self.timeout}: must be more than 0 seconds")
        try:
            url = httpx.URL(self.api_base)
        except httpx.InvalidURL as e:
            raise UsageError(f"--api_base {self.api_base!r}: not a URL ({e})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(
                f"--api_base {self.api_base!r}: needs http:// or https:// and a host, e.g. https://api.openai.com/v1"
            )

    def client(self, model: str) -> ChatClient:
        """A client asking `model`, with the key from the environment (required for OpenAI's endpoint)."""
        api_key = os.environ.get(self.api_key_env)
        if not api_key and httpx.URL(self.api_base).host == "api.openai.com":
            raise UsageError(
                f"${self.api_key_env} is not set: export it with your OpenAI API key (or name the "
                "variable that holds it with --api_key_env)"
            )
        if not api_key:  # a local server (vLLM, the fake judge) may well need none
            warnings.warn(f"${self.api_key_env} is not set: sending requests without an API key", stacklevel=2)
        return ChatClient(self.api_base, model, api_key, self.timeout, self.max_retries, self.backoff)
