"""A local HTTP server that answers with recorded JSON API responses, for APIs without emulators.

The real client libraries (google-cloud-bigquery, google-cloud-billing, …) talk to it over
HTTP on 127.0.0.1, so a test exercises their request building, paging and parsing for real.
Each :class:`Route` says which requests it answers — method, a regular expression for the
path, and optionally query parameters and a JSON subset the body must contain — and what to
answer: a JSON-able value or the name of a file in the server's data directory. Routes are
tried in order; the first match answers. A request no route matches gets a 404 in Google's
error shape naming the request, so a missing recording fails loudly.

The server records every request it received (:attr:`RecordedServer.requests`) so a test can
assert what the client sent, e.g. that a query's parameters were bound rather than formatted
into the SQL, and how many pages it asked for.

>>> with RecordedServer([Route("GET", "/v1/ping", {"ok": True})]) as server:  # doctest: +SKIP
...     requests.get(server.url + "/v1/ping").json()
{'ok': True}
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it is not JSON, or None when empty

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, else None."""
        values = self.query.get(name)
        return values[0] if values else None


Responder = Callable[[Received], "tuple[int, Any] | tuple[int, Any, Mapping[str, str]]"]
"""A callable answer: (status, body) or (status, body, extra headers such as Retry-After)."""


@dataclasses.dataclass(frozen=True)
class Raw:
    """A body sent as-is instead of as JSON, e.g. to test a client against malformed JSON."""

    text: str
    content_type: str = "application/json; charset=UTF-8"


@dataclasses.dataclass(frozen=True)
class Route:
    """Answer requests matching ``method`` and ``path`` (a regex matched against the whole path).

    ``response`` is a JSON-able value, the name of a ``.json`` file in the server's data
    directory, or a callable ``(Received) -> (status, body)`` for answers that depend on the
    request; it may return ``(status, body, headers)`` to add response headers (``Retry-After``),
    and a :class:`Raw` body is sent as its text, not as JSON. ``query`` lists query parameters
    that must be present with these values; ``body``
    is a JSON subset the request body must contain (dicts compared key by key, recursively).
    """

    method: str
    path: str
    response: Any
    query: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None
    status: int = 200

    def matches(self, request: Received) -> bool:
        if request.method != self.method.upper() or not re.fullmatch(self.path, request.path):
            return False
        if any(request.param(name) != value for name, value in self.query.items()):
            return False
        return self.body is None or _contains(request.body, self.body)


def _contains(actual: Any, expected: Any) -> bool:
    """Dicts: every expected key, recursively; lists: every expected item in some actual item."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and all(any(_contains(a, e) for a in actual) for e in expected)
    return actual == expected


class RecordedServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving :class:`Route` answers.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``url`` is
    ``http://127.0.0.1:PORT``.
    """

    def __init__(self, routes: Sequence[Route] = (), data_dir: str | Path | None = None) -> None:
        self.routes: list[Route] = list(routes)
        self.data_dir = Path(data_dir) if data_dir else None
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> RecordedServer:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="recorded-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> RecordedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- routes and what was received ----------------------------------------------------

    def use(self, routes: Sequence[Route]) -> None:
        """Replace the routes (e.g. to serve a later export of the same month)."""
        with self._lock:
            self.routes = list(routes)

    def clear(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self.requests.clear()

    def received(self, method: str | None = None, path: str | None = None) -> list[Received]:
        """Requests received, optionally only those with ``method`` and a path matching regex ``path``."""
        with self._lock:
            found = list(self.requests)
        return [
            r for r in found
            if (method is None or r.method == method.upper()) and (path is None or re.fullmatch(path, r.path))
        ]  # fmt: skip

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.received(method, path))

    def _answer(self, request: Received) -> tuple[int, Any, Mapping[str, str]]:
        with self._lock:
            self.requests.append(request)
            routes = list(self.routes)
        for route in routes:
            if route.matches(request):
                answer = self._body_of(route, request)
                return answer if len(answer) == 3 else (*answer, {})
        return 404, {
            "error": {
                "code": 404,
                "message": f"no recorded response for {request.method} {request.path}",
                "status": "NOT_FOUND",
                "errors": [{"message": "not recorded", "domain": "global", "reason": "notFound"}],
            }
        }, {}

    def _body_of(self, route: Route, request: Received) -> tuple:
        response = route.response
        if callable(response):
            return response(request)
        if isinstance(response, str) and response.endswith(".json"):
            if self.data_dir is None:
                raise RuntimeError(f"route {route.path} names {response} but the server has no data_dir")
            return route.status, json.loads((self.data_dir / response).read_text())
        return route.status, response


def _handler_for(server: RecordedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
            request = Received(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            status, answer, headers = server._answer(request)
            if isinstance(answer, Raw):
                payload, content_type = answer.text.encode(), answer.content_type
            else:
                payload, content_type = json.dumps(answer).encode(), "application/json; charset=UTF-8"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
            pass

    return Handler
