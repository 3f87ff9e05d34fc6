"""The access rules the server keeps in front of Gradio: one ASGI middleware, :class:`AccessGuard`.

Gradio's own routes leave three holes that TPO Studio closes here, before a request reaches it:

* **Gradio's file route** (``/gradio_api/file=<path>``) serves every file under
  ``allowed_paths``. The guard lets it serve only Gradio's own cache folder: the copies of
  files that a handler returned to one browser (an export zip, a heatmap; each under a
  secret-seeded content hash) and uploads. Nothing under the data folder (the database, its
  WAL, job logs, other people's exports) is reachable by path.
* **The page of an anonymous visitor.** With log-ins, Gradio sends an empty config to a
  browser that is not logged in, but still embeds the API schema, whose parameter defaults
  are the components' values (video names, pair counts). The guard blanks that schema in
  any HTML answered to an anonymous visitor; the logged-in page reloads with the real one.
* **Log-in guessing.** :class:`LoginThrottle` backs off repeated failed log-ins per user
  name and per client address (HTTP 429 with ``Retry-After``); a success clears both.

State (the throttle's counters) lives on the objects a server builds, never in this module.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, MutableMapping

from gradio.route_utils import API_PREFIX
from gradio.routes import App as GradioApp
from starlette.requests import Request

Scope = MutableMapping
Message = MutableMapping
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGIN_PATHS = ("/login", "/login/")
FILE_PREFIXES = (f"{API_PREFIX}/file=", f"{API_PREFIX}/file/")
MAX_LOGIN_BODY = 64 * 1024  # a user name and a password; more is not a log-in
# Gradio's template: <script>window.gradio_api_info = {...};</script>. Its JSON escapes "<",
# so the first ";</script>" ends it.
API_INFO_SCRIPT = re.compile(rb"(<script>\s*window\.gradio_api_info\s*=\s*)(.*?)(;\s*</script>)",
                             re.DOTALL)
EMPTY_API_INFO = b'{"named_endpoints": {}, "unnamed_endpoints": {}}'


def current_user(ui: GradioApp, scope: Scope) -> str | None:
    """The logged-in name for this request: the same check as Gradio's own ``/user`` route
    (its login cookie names a live token); None when not logged in."""
    cookies = Request(scope).cookies
    token = (cookies.get(f"access-token-{ui.cookie_id}")
             or cookies.get(f"access-token-unsecure-{ui.cookie_id}"))
    return ui.tokens.get(token) if token else None


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    """Exponential back-off for failed log-ins, kept per user name and per client address.

    The first ``free`` failures within ``window_s`` cost nothing; each failure from then on
    locks the name (and the address) for ``base_s``, then twice as long, and so on up to
    ``max_s``. A locked name or address is refused without checking the password, so a
    guesser learns nothing while locked. A success clears both counters.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, free: int = 5,
                 window_s: float = 900.0, base_s: float = 30.0, max_s: float = 900.0,
                 max_keys: int = 10_000) -> None:
        self.clock = clock
        self.free, self.window_s, self.base_s, self.max_s = free, window_s, base_s, max_s
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], _Failures] = {}

    @staticmethod
    def _keys(user: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", user), ("address", address)

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until this user name and address may try again; 0 when they may now."""
        now = self.clock()
        waits = [self._failures[k].locked_until - now for k in self._keys(user, address)
                 if k in self._failures]
        return max([0.0, *waits])

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        for key in self._keys(user, address):
            entry = self._failures.setdefault(key, _Failures())
            if now - entry.last > self.window_s and now >= entry.locked_until:
                entry.count = 0  # an old streak is forgiven
            entry.count += 1
            entry.last = now
            if entry.count >= self.free:
                lock = min(self.base_s * 2 ** (entry.count - self.free), self.max_s)
                entry.locked_until = now + lock
        self._prune(now)

    def succeeded(self, user: str, address: str) -> None:
        for key in self._keys(user, address):
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        # Guessed names must not grow the table without bound: forget finished streaks first,
        # then the oldest ones.
        if len(self._failures) <= self.max_keys:
            return
        for key, entry in list(self._failures.items()):
            if now - entry.last > self.window_s and now >= entry.locked_until:
                del self._failures[key]
        if len(self._failures) > self.max_keys:
            oldest = sorted(self._failures, key=lambda k: self._failures[k].last)
            for key in oldest[:len(self._failures) - self.max_keys]:
                del self._failures[key]


class AccessGuard:
    """ASGI middleware in front of the whole server (Gradio and the media routes).

    ``throttle`` is None when the app has no log-ins (then there is nothing to guess and no
    anonymous visitor to hide the library from).
    """

    def __init__(self, app: ASGIApp, *, ui: GradioApp, throttle: LoginThrottle | None) -> None:
        self.app, self.ui, self.throttle = app, ui, throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = _route_path(scope)
        method = scope["method"]
        if method in ("GET", "HEAD") and path.startswith(FILE_PREFIXES):
            if not self._file_allowed(path):
                return await _send_json(send, 404, {"detail": "No such file."})
            return await self.app(scope, receive, send)
        if self.throttle is None:
            return await self.app(scope, receive, send)
        if method == "POST" and path in LOGIN_PATHS:
            return await self._login(scope, receive, send)
        if method == "GET" and current_user(self.ui, scope) is None:
            return await self._anonymous_get(scope, receive, send)
        return await self.app(scope, receive, send)

    # -- Gradio's file route ------------------------------------------------------------

    def _file_allowed(self, path: str) -> bool:
        asked = path[len(FILE_PREFIXES[0]):]  # both prefixes have the same length
        if "://" in asked:
            return False  # TPO never shows remote files; no fetching on a visitor's behalf
        # Resolved like Gradio does (relative to the working directory), then with links
        # followed, so a link in the cache cannot point out of it.
        real = os.path.realpath(os.path.abspath(asked))
        cache = os.path.realpath(self.ui.uploaded_file_dir)
        return real.startswith(cache.rstrip(os.sep) + os.sep)

    # -- log-ins --------------------------------------------------------------------------

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_LOGIN_BODY:
                return await _send_json(send, 413, {"detail": "A log-in is a name and a password; "
                                                              "this request is too large."})
        async with Request(scope, receive=_replay(body, receive)).form() as form:
            user = str(form.get("username") or "").strip()  # Gradio strips it too
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = self.throttle.retry_after(user, address)
        if wait > 0:
            seconds = math.ceil(wait)
            return await _send_json(
                send, 429,
                {"detail": f"Too many failed log-ins for this name or from this address: "
                           f"try again in {seconds} s."},
                headers=[(b"retry-after", str(seconds).encode())])

        async def noting_outcome(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    self.throttle.succeeded(user, address)
                elif message["status"] in (400, 401, 403):
                    self.throttle.failed(user, address)
            await send(message)

        await self.app(scope, _replay(body, receive), noting_outcome)

    # -- anonymous pages ------------------------------------------------------------------

    async def _anonymous_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Ask Gradio for an uncompressed answer, so that an HTML page can be read and blanked.
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        start: Message | None = None
        chunks: list[bytes] = []

        async def blanking(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if b"text/html" not in headers.get(b"content-type", b""):
                    return await send(message)  # not a page: passes as it is
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await _send_page(send, start, b"".join(chunks))

        await self.app(scope, receive, blanking)


async def _send_page(send: Send, start: Message, page: bytes) -> None:
    """Send an anonymous visitor's HTML page with the API schema blanked; refuse the page
    (500) rather than send a schema this code could not find and blank."""
    headers = [(k, v) for k, v in start.get("headers", [])]
    encoded = any(k.lower() == b"content-encoding" for k, _ in headers)
    blanked, n = API_INFO_SCRIPT.subn(lambda m: m.group(1) + EMPTY_API_INFO + m.group(3), page)
    if encoded or (b"gradio_api_info" in page and n == 0):
        return await _send_json(send, 500, {"detail": "TPO Studio cannot show its log-in page "
                                                      "safely with this Gradio version."})
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(blanked)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": blanked, "more_body": False})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out the already read ``body`` once, then waits on the client
    (for its disconnect) as the original would."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return replayed


def _route_path(scope: Scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


async def _send_json(send: Send, status: int, body: dict,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data, "more_body": False})
