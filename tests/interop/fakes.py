"""Loopback stand-ins for what the interop apps talk to: an OpenAI-compatible API, and a recording
proxy in front of the receiver's OTLP/HTTP port. Standard library only (the traceloop app runs in a
venv of its own, but both servers run in the test process).

FakeOpenAI answers like the real API, deterministically:
- ``POST /v1/chat/completions``: a text answer; a tool call when ``tools`` are offered and no tool
  result is in the messages yet; the dated model name as ``model`` (``gpt-4o-mini`` →
  ``gpt-4o-mini-2024-07-18``); ``usage`` tokens from ``USAGE``.
- ``POST /v1/embeddings``: one small vector per input, as floats or base64 (``encoding_format``).
- Error mode: the model ``FAIL_MODEL`` gets OpenAI's 400 ``context_length_exceeded`` body.
Every request is logged in ``served`` with its time, so a test can match each LLM span to the call
it made (the span that was open when the request arrived) and know the tokens it must report.
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAIL_MODEL = "gpt-4o-fail"
FAIL_MESSAGE = ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
                "131072 tokens. Please reduce the length of the messages.")
DATED = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}
# (prompt, completion) tokens by kind of answer.
USAGE = {"text": (120, 30), "tool_call": (95, 17), "after_tool": (160, 24)}
EMBEDDING_TOKENS_PER_INPUT = 6
EMBEDDING_DIMS = 8


@dataclass
class Served:
    """One request the fake API answered."""
    at_ns: int
    path: str
    status: int
    request_model: str | None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    kind: str = ""
    body: dict[str, Any] = field(default_factory=dict)


class FakeOpenAI:
    def __init__(self) -> None:
        self.served: list[Served] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                at = time.time_ns()
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                status, answer, served = fake.answer(self.path, body, at)
                with fake._lock:
                    fake.served.append(served)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-request-id", f"req_{at}")
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def served_between(self, start_ns: int, end_ns: int) -> list[Served]:
        with self._lock:
            return [s for s in self.served if start_ns <= s.at_ns <= end_ns]

    def answer(self, path: str, body: dict[str, Any], at: int) -> tuple[int, dict[str, Any], Served]:
        path = urlsplit(path).path
        model = body.get("model")
        if path.endswith("/chat/completions") or path.endswith("/embeddings"):
            if model == FAIL_MODEL:
                return 400, {"error": {"message": FAIL_MESSAGE, "type": "invalid_request_error",
                                       "param": "messages", "code": "context_length_exceeded"}}, \
                    Served(at, path, 400, model, kind="error", body=body)
        if path.endswith("/chat/completions"):
            return self._chat(body, at, path)
        if path.endswith("/embeddings"):
            return self._embeddings(body, at, path)
        return 404, {"error": {"message": f"Unknown path {path}", "type": "invalid_request_error"}}, \
            Served(at, path, 404, model, body=body)

    def _chat(self, body: dict[str, Any], at: int, path: str) -> tuple[int, dict[str, Any], Served]:
        model = str(body.get("model"))
        served_model = DATED.get(model, model)
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        has_tool_result = any(m.get("role") == "tool" for m in messages if isinstance(m, dict))
        if tools and not has_tool_result:
            kind = "tool_call"
            fn = tools[0].get("function", {})
            props = (fn.get("parameters") or {}).get("properties") or {}
            args = {name: "A-1001" for name in props}
            message: dict[str, Any] = {
                "role": "assistant", "content": None, "refusal": None,
                "tool_calls": [{"id": "call_fake_1", "type": "function",
                                "function": {"name": fn.get("name", "tool"), "arguments": json.dumps(args)}}],
            }
            finish = "tool_calls"
        else:
            kind = "after_tool" if has_tool_result else "text"
            text = ("Order A-1001 shipped on Monday." if has_tool_result
                    else "You can return items within 30 days of delivery for a full refund.")
            message = {"role": "assistant", "content": text, "refusal": None}
            finish = "stop"
        prompt, completion = USAGE[kind]
        answer = {
            "id": f"chatcmpl-fake{at}", "object": "chat.completion", "created": at // 1_000_000_000,
            "model": served_model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        return 200, answer, Served(at, path, 200, model, served_model, prompt, completion, kind, body)

    def _embeddings(self, body: dict[str, Any], at: int, path: str) -> tuple[int, dict[str, Any], Served]:
        model = str(body.get("model"))
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, _ in enumerate(inputs):
            vector = [round(0.1 * (i + 1) + 0.01 * d, 4) for d in range(EMBEDDING_DIMS)]
            embedding: Any = (base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                              if as_base64 else vector)
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = EMBEDDING_TOKENS_PER_INPUT * len(inputs)
        answer = {"object": "list", "data": data, "model": model,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return 200, answer, Served(at, path, 200, model, model, tokens, None, "embedding", body)


@dataclass
class Forwarded:
    method: str
    path: str
    status: int
    content_type: str
    reply: bytes


class RecordingProxy:
    """Forwards every request to ``target`` (the receiver's HTTP port) and records what it answered:
    what a user's app would see from the receiver, whatever the library does with the answer."""

    def __init__(self, target: str) -> None:
        self.requests: list[Forwarded] = []
        self._lock = threading.Lock()
        parts = urlsplit(target)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn = http.client.HTTPConnection(host, port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, reply_headers = resp.status, resp.getheaders()
                finally:
                    conn.close()
                with proxy._lock:
                    proxy.requests.append(Forwarded(self.command, urlsplit(self.path).path, status,
                                                    self.headers.get("Content-Type", ""), data[:500]))
                self.send_response(status)
                for k, v in reply_headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def since(self, mark: int) -> list[Forwarded]:
        with self._lock:
            return list(self.requests[mark:])

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)
