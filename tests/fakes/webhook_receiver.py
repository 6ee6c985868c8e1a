"""A local webhook receiver that checks Standard Webhooks signatures the way a real one would.

Recipe::

    with WebhookReceiver(secret) as receiver:
        receiver.script(Answer(500), Answer(429, {"Retry-After": "120"}))  # then 204s
        ... run the worker against receiver.url ...
        assert receiver.accepted()[0].payload["type"] == "complaint.submitted"

Every request is verified with ``standardwebhooks.Webhook(secret).verify(body, headers)``
(any of the receiver's secrets, as during a rotation); a bad signature is answered 401. Scripted
answers are used in order, then the default answer (204). ``delay`` makes an answer slow.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fakes._http import FakeServer, RawRequest, Reply

__all__ = ["Answer", "Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Answer:
    """What the receiver answers to one request."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    webhook_id: str | None
    timestamp: str | None
    signature: str | None
    body: bytes
    verified: bool
    status: int  # what the receiver answered
    payload: Any = None

    @property
    def accepted(self) -> bool:
        """Verified and answered 2xx: the event counts as delivered to this receiver."""
        return self.verified and 200 <= self.status < 300


class WebhookReceiver(FakeServer):
    """A threaded HTTP receiver on 127.0.0.1 for outbound-webhook tests."""

    def __init__(self, *secrets: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        if not secrets:
            raise ValueError("a receiver needs at least one secret")
        self.secrets = secrets  # as the endpoint is configured (space-separated if several)
        self.webhooks = [Webhook(s) for s in secrets]
        self.default = Answer()
        self._script: deque[Answer] = deque()
        self._received: list[Received] = []
        self._script_lock = threading.Lock()

    def start(self) -> WebhookReceiver:
        """Serve, with a listen backlog deep enough for a worker's burst of new connections."""
        super().start()
        assert self._server is not None
        # socketserver listens with a backlog of 5: a burst of 64 connections overflows it and
        # some are reset, which real receivers (behind nginx and the like) do not do.
        self._server.socket.listen(256)
        return self

    @property
    def url(self) -> str:
        """The URL to configure as the endpoint."""
        return self.origin + "/hooks"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order, then with the default."""
        with self._script_lock:
            self._script.extend(answers)

    def answer_always(self, answer: Answer) -> None:
        """Answer every request (after any scripted ones) with this."""
        self.default = answer

    def received(self) -> list[Received]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._received)

    def accepted(self, event_type: str | None = None) -> list[Received]:
        """Requests that were verified and answered 2xx (of one event type, if given)."""
        return [
            r
            for r in self.received()
            if r.accepted and (event_type is None or r.payload.get("type") == event_type)
        ]

    def wait_for_accepted(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least ``count`` events were accepted."""
        self._wait_until(
            lambda: sum(r.accepted for r in self._received) >= count,
            timeout,
            f"{count} accepted webhooks",
        )
        return self.accepted()

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` requests arrived (answered or not yet)."""
        self._wait_until(lambda: len(self._requests) >= count, timeout, f"{count} requests")

    def _next_answer(self) -> Answer:
        with self._script_lock:
            return self._script.popleft() if self._script else self.default

    def _verify(self, request: RawRequest) -> tuple[bool, Any]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        for webhook in self.webhooks:
            try:
                return True, webhook.verify(request.body, headers)
            except (WebhookVerificationError, ValueError):
                continue
        try:
            return False, json.loads(request.body)
        except ValueError:
            return False, None

    def _dispatch(self, request: RawRequest) -> Reply:
        self._record(request)
        answer = self._next_answer()
        if answer.delay:
            self._sleep(answer.delay)
        verified, payload = self._verify(request)
        status = answer.status if verified else 401
        with self._changed:
            self._received.append(
                Received(
                    path=request.path,
                    webhook_id=request.header("webhook-id"),
                    timestamp=request.header("webhook-timestamp"),
                    signature=request.header("webhook-signature"),
                    body=request.body,
                    verified=verified,
                    status=status,
                    payload=payload,
                )
            )
            self._changed.notify_all()
        return Reply(status, b"", "text/plain", dict(answer.headers))
