"""The labelling web app: the standard library's ThreadingHTTPServer over :class:`Labelling`.

=========================  =====================================================
``GET /``                  the labelling page (asks the annotator's name once,
                           kept in a cookie; ``/?annotator=NAME`` sets it)
``GET /qa``                the QA page: agreement, disagreements to settle
``GET /api/info``          classes, keyboard shortcuts, k, progress
``GET /api/next``          ``?annotator=NAME[&after=ROW]``: the next event to label
``GET /api/event/ROW``     one event's identity and features
``GET /image/ROW.png``     its image, ``?zoom=Z`` (0.25-8)
``POST /api/label``        ``{"annotator", "event", "class"}``: save a label (409
                           when the event already has its k labels from others)
``POST /api/settle``       ``{"annotator", "event", "class"}``: the final label
``GET /api/qa``            the agreement figures as JSON
``GET /export.parquet``    the consensus table (as ``nudask label --export``)
=========================  =====================================================

Bad requests get a 4xx JSON answer ``{"error": "..."}``; an unexpected
failure a 500 with one line, never a traceback page.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .app import BadRequest, Labelling
from .pages import LABEL_PAGE, QA_PAGE

MAX_BODY = 1 << 16


class Handler(BaseHTTPRequestHandler):
    server: LabelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- answers -------------------------------------------------------------------
    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message, "status": status}, status)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        try:
            self._error(code, message or HTTPStatus(code).phrase)
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            route = ROUTES.get((method, url.path))
            if route is None:
                for (m, prefix), fn in PREFIX_ROUTES.items():
                    if m == method and url.path.startswith(prefix):
                        route = fn
                        query["_rest"] = unquote(url.path[len(prefix) :])
                        break
            if route is None:
                known = any(p == url.path for _, p in ROUTES) or any(
                    url.path.startswith(p) for _, p in PREFIX_ROUTES
                )
                raise BadRequest(405 if known else 404, f"no {method} {url.path}")
            route(self, query)
        except BadRequest as err:
            self._error(err.status, str(err))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # a bug: one line to the client, the traceback to the server's log
            traceback.print_exc(file=sys.stderr)
            self._error(500, f"internal error ({type(err).__name__}); see the server's log")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- request values ------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest(413, f"request body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadRequest(400, f"malformed JSON body ({err})") from None
        if not isinstance(value, dict):
            raise BadRequest(400, "the JSON body must be an object")
        return value

    def annotator(self, value: Any = None) -> str:
        if value is None:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
            value = unquote(cookie["annotator"].value) if "annotator" in cookie else None
        return self.server.app.check_annotator(value)


# -- routes -------------------------------------------------------------------------
def page_label(h: Handler, q: dict[str, str]) -> None:
    headers = {}
    if q.get("annotator"):
        name = h.annotator(q["annotator"])
        headers["Set-Cookie"] = f"annotator={quote(name)}; Path=/; SameSite=Strict; Max-Age=31536000"
    h._send(200, LABEL_PAGE.encode(), "text/html; charset=utf-8", headers)


def page_qa(h: Handler, q: dict[str, str]) -> None:
    h._send(200, QA_PAGE.encode(), "text/html; charset=utf-8")


def api_info(h: Handler, q: dict[str, str]) -> None:
    app = h.server.app
    who = q.get("annotator")
    h._json({"dataset": app.path, "role": app.role, "classes": list(app.classes), "shortcuts": app.keymap,
             "k": app.k, "progress": app.progress(app.check_annotator(who) if who else None)})  # fmt: skip


def api_next(h: Handler, q: dict[str, str]) -> None:
    app = h.server.app
    who = h.annotator(q.get("annotator"))
    after = app.row(q["after"]) if q.get("after") not in (None, "", "-1") else -1
    i = app.next_event(who, after)
    h._json({"done": i is None, **(app.event(i) if i is not None else {}), "progress": app.progress(who)})


def api_event(h: Handler, q: dict[str, str]) -> None:
    h._json(h.server.app.event(h.server.app.row(q["_rest"])))


def image(h: Handler, q: dict[str, str]) -> None:
    rest = q["_rest"]
    if not rest.endswith(".png"):
        raise BadRequest(404, "images are /image/ROW.png")
    app = h.server.app
    i = app.row(rest[: -len(".png")])
    try:
        zoom = float(q.get("zoom") or 1)
    except ValueError:
        raise BadRequest(400, f"zoom must be a number, not {q.get('zoom')!r}") from None
    h._send(200, app.png(i, zoom), "image/png")


def _labelling(h: Handler) -> tuple[int, str, str]:
    app = h.server.app
    body = h.body()
    who = h.annotator(body.get("annotator"))
    if "event" not in body:
        raise BadRequest(400, "missing event")
    return app.row(body["event"]), who, app.check_class(body.get("class"))


def api_label(h: Handler, q: dict[str, str]) -> None:
    i, who, label = _labelling(h)
    new = h.server.app.save(i, who, label)
    h._json({"saved": True, "updated": not new, "event": i, "annotator": who, "class": label})


def api_settle(h: Handler, q: dict[str, str]) -> None:
    i, who, label = _labelling(h)
    h.server.app.settle(i, who, label)
    h._json({"settled": True, "event": i, "annotator": who, "class": label})


def api_qa(h: Handler, q: dict[str, str]) -> None:
    h._json(h.server.app.qa())


def export(h: Handler, q: dict[str, str]) -> None:
    h._send(200, h.server.app.export_bytes(), "application/vnd.apache.parquet",
            {"Content-Disposition": 'attachment; filename="labels.parquet"'})  # fmt: skip


ROUTES = {
    ("GET", "/"): page_label,
    ("GET", "/qa"): page_qa,
    ("GET", "/api/info"): api_info,
    ("GET", "/api/next"): api_next,
    ("POST", "/api/label"): api_label,
    ("POST", "/api/settle"): api_settle,
    ("GET", "/api/qa"): api_qa,
    ("GET", "/export.parquet"): export,
}
PREFIX_ROUTES = {("GET", "/api/event/"): api_event, ("GET", "/image/"): image}


class LabelServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # annotators saving at the same moment: queued, not refused

    def __init__(self, app: Labelling, host: str = "127.0.0.1", port: int = 8765, *, verbose: bool = False):
        self.app, self.verbose = app, verbose
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread
