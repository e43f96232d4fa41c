"""The local HTTP server behind `insitu view`: the page, and the run store as JSON.

    GET /                 the page (one self-contained HTML file: no CDN, works offline)
    GET /api/runs         every run in the store, newest last
    GET /api/run/ID       run_document() of run ID
    GET /api/live         the newest run's document (what --live follows)

The store is opened afresh for every request (SQLite in WAL mode: a reader never blocks the
training process that writes), read only, and closed. Bound to 127.0.0.1 unless told
otherwise: the record of a lab's rig is not for the network at large.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from insitu.view import run_document, runs_document


def page() -> bytes:
    return resources.files("insitu.view").joinpath("page.html").read_bytes()


class _Reader:
    """Read-only access to the store for one request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        from insitu.store import RunStore

        if not self.path.exists():
            raise FileNotFoundError(f"no run store at {self.path}")
        self.store = RunStore(self.path)
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def make_handler(store_path: Path, initial: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    page_bytes = page()

    class Handler(BaseHTTPRequestHandler):
        server_version = "insitu-view"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the page polls every second: no access log on the terminal

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, fn: Callable[[Any], Any]) -> None:
            status, doc = HTTPStatus.OK, None
            try:
                with _Reader(store_path) as store:
                    doc = fn(store)
            except LookupError as exc:
                status, doc = HTTPStatus.NOT_FOUND, {"error": str(exc)}
            except (FileNotFoundError, sqlite3.Error, ValueError) as exc:
                status, doc = HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)}
            self._send(status, json.dumps(doc).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page_bytes, "text/html; charset=utf-8")
            elif path == "/api/config":
                self._send(HTTPStatus.OK, json.dumps(initial).encode(), "application/json")
            elif path == "/api/runs":
                self._json(runs_document)
            elif path == "/api/live":
                self._json(_newest)
            elif path.startswith("/api/run/"):
                rid = path.rsplit("/", 1)[1]
                self._json(lambda store: _run(store, rid))
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    return Handler


def _run(store: Any, rid: str) -> dict[str, Any]:
    from insitu.store import StoreError

    try:
        return run_document(store, int(rid))
    except (StoreError, ValueError) as exc:
        raise LookupError(str(exc)) from None


def _newest(store: Any) -> dict[str, Any]:
    runs = store.runs()
    if not runs:
        raise LookupError("the store has no runs yet")
    return run_document(store, int(runs[-1]["id"]))


class ViewServer:
    """The server on a background thread (tests, notebooks) or in the foreground (the CLI)."""

    def __init__(
        self, store_path: Path, host: str = "127.0.0.1", port: int = 8765,
        run: int | None = None, live: bool = False,
    ) -> None:  # fmt: skip
        initial = {"run": run, "live": live, "store": str(store_path)}
        self.httpd = ThreadingHTTPServer((host, port), make_handler(store_path, initial))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ViewServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ViewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
