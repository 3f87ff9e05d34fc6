"""A minimal real HTTP server that speaks the OpenAI chat-completions JSON (or, on purpose,
fails to), in a thread, for tests of the question writer and judge (:mod:`tpo.models.textlm`)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

MODEL_ID = "stub-model"
MODES = ("ok", "garbage", "wrong-json", "error")


class ChatServer:
    """``ChatServer(reply)`` answers every chat completion with ``reply(prompt)``.

    ``mode``: ``ok``; ``garbage`` (HTTP 200, an HTML page); ``wrong-json`` (HTTP 200, JSON
    without ``choices``); ``error`` (HTTP 500 with an OpenAI-style error message).
    ``GET /v1/models`` lists :data:`MODEL_ID` in every mode. ``prompts`` collects what was
    asked; :meth:`close` stops it, so that its port refuses connections.
    """

    def __init__(self, reply: Callable[[str], str] = lambda prompt: "A question?",
                 mode: str = "ok"):
        assert mode in MODES
        self.reply, self.mode, self.prompts = reply, mode, []
        self.bodies: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    listing = {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]}
                    self._send(200, json.dumps(listing).encode(), "application/json")
                else:
                    self._send(404, b'{"error": {"message": "no such route"}}', "application/json")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "no such route"}}', "application/json")
                    return
                prompt = body["messages"][-1]["content"]
                server.prompts.append(prompt)
                if server.mode == "garbage":
                    self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
                elif server.mode == "wrong-json":
                    self._send(200, b'{"result": "not a chat completion"}', "application/json")
                elif server.mode == "error":
                    error = {"error": {"message": "the model is overloaded",
                                       "type": "server_error"}}
                    self._send(500, json.dumps(error).encode(), "application/json")
                else:
                    answer = {"id": "c1", "object": "chat.completion", "model": MODEL_ID,
                              "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                  "role": "assistant", "content": server.reply(prompt)}}]}
                    self._send(200, json.dumps(answer).encode(), "application/json")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def closed_port_url() -> str:
    """The URL of a local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
