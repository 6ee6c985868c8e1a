"""Shared plumbing for the fake vendor servers: a threaded stdlib HTTP server, clean shutdown."""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FakeServer",
    "RawRequest",
    "Reply",
    "UploadedFile",
    "parse_body",
]


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart/form-data body."""

    field: str
    filename: str | None
    content_type: str | None
    content: bytes


@dataclass(frozen=True)
class RawRequest:
    """One HTTP request exactly as the fake server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return a header value, looked up case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    @property
    def content_type(self) -> str:
        """Return the media type of the body, without parameters, lower-cased."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Reply:
    """What the fake answers: status, body bytes and headers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        """Build a JSON reply."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json", dict(headers or {}))


@dataclass(frozen=True)
class ParsedBody:
    """Form fields (every value, in order), uploaded files and a decoded JSON document."""

    fields: dict[str, list[str]]
    files: dict[str, UploadedFile]
    json: Any = None


def _header_params(raw_headers: bytes) -> Message:
    return BytesHeaderParser().parsebytes(raw_headers)


def _parse_multipart(content_type_header: str, body: bytes) -> ParsedBody:
    msg = Message()
    msg["Content-Type"] = content_type_header
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart body without boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, list[str]] = {}
    files: dict[str, UploadedFile] = {}
    chunks = body.split(delimiter)
    # chunks[0] is the preamble; the last chunk starts with "--" (the closing delimiter).
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without header separator")
        part_headers = _header_params(head + b"\r\n\r\n")
        name = part_headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("multipart part without a name")
        filename = part_headers.get_filename()
        if filename is None:
            charset = part_headers.get_content_charset() or "utf-8"
            fields.setdefault(name, []).append(content.decode(charset))
        else:
            ctype = part_headers.get("Content-Type")
            files[name] = UploadedFile(name, filename, ctype, content)
    return ParsedBody(fields, files)


def parse_body(request: RawRequest) -> ParsedBody:
    """Decode a JSON, url-encoded or multipart body (the query string is not included)."""
    ctype = request.content_type
    if not request.body:
        return ParsedBody({}, {})
    if ctype == "application/json" or ctype.endswith("+json"):
        return ParsedBody({}, {}, json.loads(request.body.decode("utf-8")))
    if ctype == "multipart/form-data":
        return _parse_multipart(request.header("Content-Type") or "", request.body)
    # application/x-www-form-urlencoded, or no content type at all.
    text = request.body.decode("utf-8")
    return ParsedBody(parse_qs(text, keep_blank_values=True, strict_parsing=False), {})


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers open connections so stop() can unblock them."""

    daemon_threads = True
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), which can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts in tests, shutdown) are normal; anything else is a bug
        # in the fake and is reported when the fake stops.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        if exc is not None:
            self.fake._internal_errors.append(exc)

    def drop_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.open_connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60  # seconds an idle keep-alive connection may stay open
    disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep test output quiet."""

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        raw = RawRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k: v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        fake = self.server.fake
        try:
            reply = fake._dispatch(raw)
        except Exception as exc:  # a bug in the fake itself: answer 500 and report it on stop
            fake._internal_errors.append(exc)
            reply = Reply.json(500, {"fake_server_error": repr(exc)})
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class FakeServer:
    """Base class: runs on 127.0.0.1 with a free port in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._requests: list[RawRequest] = []
        self._internal_errors: list[BaseException] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind the socket and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and the listening socket, join all threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.raise_internal_errors()

    def raise_internal_errors(self) -> None:
        """Raise if the fake itself crashed while handling a request (a bug in the fake)."""
        if self._internal_errors:
            first = self._internal_errors[0]
            raise AssertionError(
                f"{type(self).__name__} crashed on {len(self._internal_errors)} request(s)"
            ) from first

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """Return the bound TCP port (the server must be started)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """Return ``http://127.0.0.1:PORT``."""
        return f"http://{self._address[0]}:{self.port}"

    # -- recording -------------------------------------------------------------------------
    def raw_requests(self) -> list[RawRequest]:
        """Return a copy of every HTTP request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _record(self, request: RawRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{type(self).__name__}: timed out waiting for {what}")
                self._changed.wait(remaining)

    def _sleep(self, seconds: float) -> None:
        """Sleep in a handler thread, but wake up at once when the server stops."""
        self._stopping.wait(seconds)

    def _dispatch(self, request: RawRequest) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError
