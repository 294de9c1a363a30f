"""A client for OpenAI-compatible chat-completions endpoints that retries what is worth retrying.

    client = ChatClient(api_base="https://api.openai.com/v1", model="gpt-4", api_key=os.environ["OPENAI_API_KEY"])
    text = client.complete([{"role": "user", "content": "Hi"}], temperature=0.0, max_tokens=2048)

Rate limits (429), server errors (5xx), timeouts, dropped connections and malformed bodies are retried
with exponential backoff and jitter, honouring a Retry-After header; any other 4xx (a bad key, a bad
request) is raised at once, since retrying it would only burn time. One client is safe to share
between threads.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx


class JudgeAPIError(RuntimeError):
    """The endpoint refused the request, or kept failing past the retry limit."""


@dataclass
class ChatClient:
    api_base: str                # e.g. https://api.openai.com/v1 (the path /chat/completions is appended)
    model: str                   # model name sent in every request
    api_key: str | None = None   # sent as a Bearer token when set
    timeout: float = 120.0       # seconds for one HTTP request
    max_retries: int = 8         # retries after the first attempt
    backoff: float = 2.0         # seconds before the first retry, doubled after each
    max_backoff: float = 60.0    # ceiling of one wait

    def __post_init__(self):
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.url = self.api_base.rstrip("/") + "/chat/completions"
        self._http = httpx.Client(timeout=self.timeout, headers=headers)

    def complete(self, messages: list[dict], temperature: float = 0.0, max_tokens: int = 2048) -> str:
        """The assistant message's text for a list of {"role", "content"} messages."""
        body = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TransportError as e:  # timeouts, refused or dropped connections
                reason = f"{type(e).__name__}: {e}"
            else:
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
            if attempt < self.max_retries:
                time.sleep(wait)
        raise JudgeAPIError(f"{self.url}: gave up after {self.max_retries + 1} attempts, last: {reason}")

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
