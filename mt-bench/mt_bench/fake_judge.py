"""A fake OpenAI-compatible judge on 127.0.0.1, for the tests and for dry runs of the scripts.

POST /v1/chat/completions answers like a judge: "... Rating: [[N]]" with N = fake_rating(user prompt), or
for a pairwise prompt (its system prompt asks for "[[A]]") "[[V]]" with V = fake_verdict(user prompt):
fixed functions of the prompt, so a test can tell what each judgment must say. Faults can be queued:
each request takes the next one ("ok" when the queue is empty):

    ok          a normal chat completion
    429, 500    that status with an OpenAI-style error body (429 with Retry-After: 0)
    slow        a normal completion after `slow_seconds` (longer than the client's timeout in tests)
    malformed   status 200 with a body that is not a chat completion
    unrated     a normal completion whose judgment has no rating (or verdict)
    401         an authentication error (not retryable)

    python -m mt_bench.fake_judge --port 8000   # then: judge.py --api_base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mt_bench import cli
from mt_bench.cli import UsageError

FAULTS = ("ok", "429", "500", "slow", "malformed", "unrated", "401")


def fake_rating(user_prompt: str) -> int:
    """The rating the fake judge gives a prompt: 1..10, fixed by the prompt's text."""
    return int(hashlib.sha256(user_prompt.encode()).hexdigest(), 16) % 10 + 1


def fake_verdict(user_prompt: str) -> str:
    """The pairwise verdict the fake judge gives a prompt: A, B or C (tie), fixed by the prompt's text."""
    return "ABC"[fake_rating(user_prompt) % 3]


def fake_judgment(messages: list[dict]) -> str:
    """The fake judge's reply to a request's messages: a verdict for a pairwise prompt (its system
    prompt asks for [[A]]), else a rating."""
    prompt = messages[-1]["content"]
    pairwise = "[[A]]" in messages[0]["content"]
    return "The answer is fine.\n\n" + (
        f"[[{fake_verdict(prompt)}]]" if pairwise else f"Rating: [[{fake_rating(prompt)}]]"
    )


class FakeJudge:
    """The server, run on a thread: `with FakeJudge(faults=[...]) as judge: ... judge.api_base ...`."""

    def __init__(self, faults: Iterable[str] = (), slow_seconds: float = 2.0, port: int = 0):
        self.faults = deque(faults)
        if set(self.faults) - set(FAULTS):
            raise ValueError(f"unknown faults {set(self.faults) - set(FAULTS)}; known: {FAULTS}")
        self.slow_seconds = slow_seconds
        self.log: list[tuple[str, str]] = []  # (fault served, user prompt) for every request
        self.requests: list[dict] = []  # the body of every request
        self.authorization: set[str] = set()  # Authorization headers seen
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def next_fault(self, request: dict, authorization: str) -> str:
        with self.lock:
            fault = self.faults.popleft() if self.faults else "ok"
            self.log.append((fault, request["messages"][-1]["content"]))
            self.requests.append(request)
            self.authorization.add(authorization)
        return fault

    def served(self, fault: str = "ok") -> list[str]:
        """The user prompts of the requests that were served `fault`."""
        with self.lock:
            return [p for f, p in self.log if f == fault]

    def __enter__(self) -> FakeJudge:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _completion(model: str, text: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _handler(judge: FakeJudge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
                pass

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self.reply(404, b'{"error": {"message": "not found"}}')
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            fault = judge.next_fault(request, self.headers.get("Authorization", ""))
            if fault in ("429", "500", "401"):
                error = json.dumps({"error": {"message": f"injected {fault}", "type": "fake"}}).encode()
                return self.reply(int(fault), error, {"Retry-After": "0"} if fault == "429" else {})
            if fault == "malformed":
                return self.reply(200, b'{"choices": [{"message": {"role": "assistant"')
            if fault == "slow":
                time.sleep(judge.slow_seconds)
            text = "The answer is fine." if fault == "unrated" else fake_judgment(request["messages"])
            self.reply(200, json.dumps(_completion(request.get("model", "fake"), text)).encode())

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = cli.argument_parser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free one)")
    port = parser.parse_args(argv).port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: must be from 0 to 65535")
    try:
        fake = FakeJudge(port=port)
    except OSError as e:
        raise UsageError(
            f"--port {port}: cannot listen on it ({e.strerror}): choose another port, or 0 for a free one"
        ) from None
    with fake:
        print(f"fake judge at {fake.api_base} (Ctrl-C or SIGTERM to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:  # the way to stop it, not an error
            pass


if __name__ == "__main__":
    cli.run(main)
