"""A local fake of the Twilio REST API (Messages resource) for the real ``twilio.rest.Client``.

Recipe::

    with FakeTwilioAPI() as fake, twilio_client(fake) as client:
        msg = client.messages.create(to="+38344123456", from_="+15005550006", body="Hi",
                                     status_callback="https://example.org/sms/status")
        assert fake.sent_messages()[0]["Body"] == "Hi"

The twilio 9 ``Client`` has no base-URL option. The clean hook is ``http_client=``: every
request passes through ``HttpClient.request(method, url, ...)`` with an absolute
``https://api.twilio.com/...`` URL (or ``https://api.<edge>.<region>.twilio.com/...``), so a
``TwilioHttpClient`` subclass that swaps scheme and host (:class:`RedirectingTwilioHttpClient`)
reaches the fake for every Twilio domain, while auth, serialisation and error parsing stay the
library's own. (Setting ``client.api.base_url`` also works, but only for the ``api`` domain.)
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from tests.fakes._http import FakeServer, RawRequest, Reply, parse_body

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FakeTwilioAPI",
    "RedirectingTwilioHttpClient",
    "TwilioRequest",
    "client_for",
    "count_segments",
    "twilio_client",
]

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake_auth_token_0123456789abcdef"
API_VERSION = "2010-04-01"

_MESSAGES = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(
    rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# GSM 03.38 basic character set (1 septet each) and extension table (2 septets each).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def count_segments(body: str) -> int:
    """Return the SMS segment count: GSM-7 160/153 septets, otherwise UCS-2 70/67 units."""
    if not body:
        return 1
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        units = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def _now_rfc2822() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        headers,
    )


_DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    400: (21211, "Invalid 'To' Phone Number"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


@dataclass(frozen=True)
class TwilioRequest:
    """One REST call received by the fake (form fields by Twilio name, last value wins)."""

    method: str
    path: str
    params: dict[str, str]
    params_lists: dict[str, list[str]]
    auth: tuple[str, str] | None
    raw: RawRequest


@dataclass(frozen=True)
class _Fault:
    status: int
    code: int
    message: str
    headers: dict[str, str]


class FakeTwilioAPI(FakeServer):
    """Fake Twilio REST API: Messages create/fetch, media downloads, Basic auth, faults."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Create the fake; requests must authenticate as ``account_sid:auth_token``."""
        super().__init__(host, port)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._credentials: dict[str, str] = {account_sid: auth_token}
        self._requests_log: list[TwilioRequest] = []
        self._messages: dict[str, dict[str, Any]] = {}
        self._sent: list[dict[str, Any]] = []
        self._faults: deque[_Fault] = deque()
        self._delays: deque[float] = deque()
        self._opted_out: set[str] = set()
        self._media: dict[str, tuple[bytes, str, bool]] = {}
        self._media_lock = threading.Lock()

    # -- addresses -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:PORT`` (stands in for ``https://api.twilio.com``)."""
        return self.origin

    @property
    def messages_path(self) -> str:
        """Return ``/2010-04-01/Accounts/<sid>/Messages.json``."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    # -- test controls ---------------------------------------------------------------------
    def add_api_key(self, key_sid: str, secret: str) -> None:
        """Also accept ``Client(key_sid, secret, account_sid)`` (API key authentication)."""
        with self._lock:
            self._credentials[key_sid] = secret

    def fail_next(
        self,
        status: int = 500,
        code: int | None = None,
        message: str | None = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` REST calls answer ``status`` with Twilio's error JSON."""
        default_code, default_message = _DEFAULT_ERRORS.get(status, (status, f"Error {status}"))
        fault = _Fault(
            status,
            default_code if code is None else code,
            default_message if message is None else message,
            dict(headers or {}),
        )
        with self._lock:
            self._faults.extend([fault] * times)

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` REST calls wait ``seconds`` before answering."""
        with self._lock:
            self._delays.extend([seconds] * times)

    def opt_out(self, number: str) -> None:
        """From now on, sending to ``number`` fails with 21610 (as after the user sent STOP)."""
        with self._lock:
            self._opted_out.add(number)

    def opt_in(self, number: str) -> None:
        """Undo :meth:`opt_out` (as after START)."""
        with self._lock:
            self._opted_out.discard(number)

    def add_media(
        self,
        path: str,
        content: bytes,
        content_type: str = "image/jpeg",
        *,
        require_auth: bool = False,
    ) -> str:
        """Serve ``content`` at ``GET path`` (for inbound ``MediaUrl0``); returns the full URL."""
        if not path.startswith("/"):
            path = "/" + path
        with self._media_lock:
            self._media[path] = (content, content_type, require_auth)
        return f"{self.origin}{path}"

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> dict[str, Any]:
        """Change a stored message's status (seen by fetch); returns its JSON."""
        with self._lock:
            message = self._messages[sid]
            message["status"] = status
            message["error_code"] = error_code
            message["date_updated"] = _now_rfc2822()
            if status in ("sent", "delivered") and message["date_sent"] is None:
                message["date_sent"] = message["date_updated"]
            return dict(message)

    def status_callback_params(
        self, sid: str, status: str, error_code: int | None = None
    ) -> dict[str, str]:
        """Return the form fields Twilio POSTs to the message's StatusCallback URL."""
        with self._lock:
            message = dict(self._messages[sid])
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": message["account_sid"],
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message["to"],
            "From": message["from"] or "",
            "ApiVersion": API_VERSION,
        }
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    # -- accessors -------------------------------------------------------------------------
    def requests(self) -> list[TwilioRequest]:
        """Return every REST call received (media downloads excluded), oldest first."""
        with self._lock:
            return list(self._requests_log)

    def sent_messages(self) -> list[dict[str, Any]]:
        """Return accepted creates: form fields (``MediaUrl`` a list), ``Sid``, ``Status``..."""
        with self._lock:
            return [dict(m) for m in self._sent]

    def message(self, sid: str) -> dict[str, Any]:
        """Return the Message JSON the fake stores for ``sid``."""
        with self._lock:
            return dict(self._messages[sid])

    def wait_for(
        self,
        count_or_predicate: int | Callable[[], bool] = 1,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were accepted (or ``predicate()`` holds); return them."""
        if callable(count_or_predicate):
            predicate = count_or_predicate
            what = "predicate"
        else:
            count = count_or_predicate

            def predicate() -> bool:
                return len(self._sent) >= count

            what = f"{count} accepted message(s)"
        self._wait_until(predicate, timeout, what)
        return self.sent_messages()

    # -- dispatch --------------------------------------------------------------------------
    def _dispatch(self, request: RawRequest) -> Reply:
        self._record(request)
        with self._media_lock:
            media = self._media.get(request.path)
        if media is not None and request.method in ("GET", "HEAD"):
            content, content_type, require_auth = media
            if require_auth and self._authenticate(request) is None:
                return _error(401, 20003, "Authenticate")
            return Reply(200, content, content_type)

        try:
            body = parse_body(request)
        except ValueError:
            return _error(400, 20001, "Unable to parse request body")
        lists = {k: list(v) for k, v in request.query.items()}
        for key, values in body.fields.items():
            lists.setdefault(key, []).extend(values)
        auth = self._basic_auth(request)
        record = TwilioRequest(
            request.method,
            request.path,
            {k: v[-1] for k, v in lists.items()},
            lists,
            auth,
            request,
        )
        with self._changed:
            self._requests_log.append(record)
            self._changed.notify_all()

        with self._lock:
            delay = self._delays.popleft() if self._delays else None
            fault = self._faults.popleft() if self._faults else None
        if delay:
            self._sleep(delay)
        if fault is not None:
            return _error(fault.status, fault.code, fault.message, fault.headers)

        account = self._authenticate(request)
        if account is None:
            return Reply.json(
                401,
                {
                    "code": 20003,
                    "detail": "Your AccountSid or AuthToken was incorrect.",
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )

        match = _MESSAGES.match(request.path)
        if match and match.group("account") == self.account_sid and request.method == "POST":
            return self._create(record)
        match = _MESSAGE.match(request.path)
        if match and match.group("account") == self.account_sid and request.method == "GET":
            with self._lock:
                message = self._messages.get(match.group("sid"))
            if message is not None:
                return Reply.json(200, message)
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    @staticmethod
    def _basic_auth(request: RawRequest) -> tuple[str, str] | None:
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None

    def _authenticate(self, request: RawRequest) -> str | None:
        auth = self._basic_auth(request)
        if auth is None:
            return None
        with self._lock:
            expected = self._credentials.get(auth[0])
        if expected is None or not secrets.compare_digest(expected, auth[1]):
            return None
        return self.account_sid

    def _create(self, record: TwilioRequest) -> Reply:
        p = record.params
        to = p.get("To", "")
        from_ = p.get("From") or None
        service = p.get("MessagingServiceSid") or None
        body = p.get("Body", "")
        media_urls = record.params_lists.get("MediaUrl", [])
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body and not media_urls and not p.get("ContentSid"):
            return _error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not to.startswith("whatsapp:") and not _E164.match(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        with self._lock:
            opted_out = to in self._opted_out
        if opted_out:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")

        sid = "SM" + secrets.token_hex(16)
        now = _now_rfc2822()
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": str(len(media_urls)),
            "num_segments": str(count_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": to,
            "uri": f"{base}.json",
        }
        sent: dict[str, Any] = dict(p)
        if media_urls:
            sent["MediaUrl"] = list(media_urls)
        sent.update(Sid=sid, Status=message["status"], NumSegments=int(message["num_segments"]))
        with self._changed:
            self._messages[sid] = message
            self._sent.append(sent)
            self._changed.notify_all()
        return Reply.json(201, message)


# --------------------------------------------------------------------------------------------
# Pointing the real client at the fake
# --------------------------------------------------------------------------------------------
class RedirectingTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """``TwilioHttpClient`` that sends every ``https://*.twilio.com`` request to ``base_url``.

    Reference for the production ``http_client``: it keeps path, query, body, auth and
    timeouts untouched and only swaps scheme and host, before ``requests`` sees the URL.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        """Wrap ``TwilioHttpClient(**kwargs)``; ``base_url`` like ``http://127.0.0.1:8080``."""
        super().__init__(**kwargs)
        target = urlsplit(base_url)
        self._scheme = target.scheme
        self._netloc = target.netloc
        self._prefix = target.path.rstrip("/")

    def rewrite(self, url: str) -> str:
        """Return ``url`` with a ``*.twilio.com`` origin replaced by the configured base URL."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url
        return urlunsplit(
            (self._scheme, self._netloc, self._prefix + parts.path, parts.query, parts.fragment)
        )

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request to the rewritten URL through the stock implementation."""
        return super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )

    def close(self) -> None:
        """Close the pooled ``requests`` session (avoids unclosed-socket ResourceWarnings)."""
        if self.session is not None:
            self.session.close()


def client_for(
    fake: FakeTwilioAPI,
    *,
    username: str | None = None,
    password: str | None = None,
    account_sid: str | None = None,
    timeout: float | None = 10.0,
) -> Client:
    """Return a real ``twilio.rest.Client`` whose HTTP goes to ``fake`` (see ``twilio_client``)."""
    http_client = RedirectingTwilioHttpClient(fake.base_url, timeout=timeout)
    return Client(
        username if username is not None else fake.account_sid,
        password if password is not None else fake.auth_token,
        account_sid=account_sid,
        http_client=http_client,
    )


@contextmanager
def twilio_client(fake: FakeTwilioAPI, **kwargs: Any) -> Iterator[Client]:
    """Yield :func:`client_for` ``(fake, **kwargs)`` and close its HTTP session afterwards."""
    client = client_for(fake, **kwargs)
    try:
        yield client
    finally:
        http_client = client.http_client
        if isinstance(http_client, RedirectingTwilioHttpClient):
            http_client.close()
