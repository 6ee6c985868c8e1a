"""A local fake of the Telegram Bot API that the real python-telegram-bot ``Bot`` can talk to.

Recipe::

    with FakeTelegramAPI() as tg:
        bot = telegram.Bot(TOKEN, base_url=tg.base_url, base_file_url=tg.base_file_url)
        async with bot:                      # runs getMe against the fake
            await bot.send_message(42, "hi")
        assert tg.sent_messages()[0]["text"] == "hi"

Wire format notes (python-telegram-bot 22, ``HTTPXRequest``): every call is a POST to
``<base_url><token>/<method>``; parameters travel as ``application/x-www-form-urlencoded``
(multipart/form-data when a file is uploaded). Non-string values (ints, bools, reply markups,
lists) are JSON-encoded strings; strings are sent as-is. The fake also accepts JSON bodies and
query-string parameters (as the real API does). A ``RetryAfter`` is raised by PTB from
``parameters.retry_after`` of an error body; 400 -> ``BadRequest``, 403 -> ``Forbidden``,
401/404 -> ``InvalidToken``, 409 -> ``Conflict``, anything else (500, 502) -> ``NetworkError``.
Under ``filterwarnings = error`` set ``PTB_TIMEDELTA=true`` before a 429 is handled: PTB 22.2+
emits a ``PTBDeprecationWarning`` inside ``RetryAfter.__init__`` otherwise.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes._http import FakeServer, RawRequest, Reply, UploadedFile, parse_body

__all__ = [
    "DEFAULT_TOKEN",
    "FakeTelegramAPI",
    "TelegramCall",
    "callback_query_update",
    "message_update",
    "photo_message_update",
]

DEFAULT_TOKEN = "123456789:AAFakeTokenForRaportoTests_0123456789"
MAX_FILE_DOWNLOAD = 20 * 1024 * 1024

# Parameters PTB sends as raw strings; every other form value is JSON (numbers, bools, objects).
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "callback_query_id",
        "file_id",
        "url",
        "secret_token",
        "inline_message_id",
        "query",
        "description",
        "short_description",
        "name",
        "title",
        "parse_mode",
        "emoji",
        "language_code",
        "ip_address",
        "photo",
        "document",
        "audio",
        "video",
        "voice",
        "animation",
        "sticker",
        "certificate",
        "action",
    }
)

_CANONICAL_METHODS = [
    "getMe",
    "logOut",
    "close",
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendChatAction",
    "answerCallbackQuery",
    "deleteMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "getUpdates",
    "getFile",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
]
_BY_LOWER = {name.lower(): name for name in _CANONICAL_METHODS}

_API_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z_]+)/?$")
_FILE_PATH = re.compile(r"^/file/bot(?P<token>[^/]+)/(?P<path>.+)$")

_update_ids = itertools.count(500_000_001)
_message_ids = itertools.count(10_001)
_callback_ids = itertools.count(4_000_000_000_000_000_001)


# --------------------------------------------------------------------------------------------
# Update builders (also handy for webhook tests: ``telegram.Update.de_json(message_update(..)))``)
# --------------------------------------------------------------------------------------------
def _user(user_id: int, first_name: str, language_code: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if language_code:
        user["language_code"] = language_code
    return user


def _private_chat(chat_id: int, first_name: str) -> dict[str, Any]:
    return {"id": chat_id, "type": "private", "first_name": first_name}


def message_update(
    chat_id: int,
    text: str,
    *,
    update_id: int | None = None,
    message_id: int | None = None,
    user_id: int | None = None,
    first_name: str = "Test",
    language_code: str | None = "sq",
    date: int | None = None,
) -> dict[str, Any]:
    """Build the JSON of an Update carrying a private text message (``/start x`` gets an entity)."""
    message: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": _user(user_id if user_id is not None else chat_id, first_name, language_code),
        "chat": _private_chat(chat_id, first_name),
        "date": date if date is not None else int(time.time()),
        "text": text,
    }
    command = re.match(r"^/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
    if command:
        length = len(command.group(0).encode("utf-16-le")) // 2
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "message": message,
    }


def photo_message_update(
    chat_id: int,
    file_id: str,
    *,
    caption: str | None = None,
    file_unique_id: str | None = None,
    width: int = 1280,
    height: int = 960,
    file_size: int = 123_456,
    update_id: int | None = None,
    message_id: int | None = None,
    user_id: int | None = None,
    first_name: str = "Test",
    language_code: str | None = "sq",
) -> dict[str, Any]:
    """Build an Update with a photo message; the biggest size carries ``file_id``."""
    unique = file_unique_id or f"AQAD{file_id[-8:]}"
    sizes = [
        {
            "file_id": f"{file_id}-thumb",
            "file_unique_id": f"{unique}-t",
            "width": max(1, width // 14),
            "height": max(1, height // 14),
            "file_size": max(1, file_size // 40),
        },
        {
            "file_id": file_id,
            "file_unique_id": unique,
            "width": width,
            "height": height,
            "file_size": file_size,
        },
    ]
    message: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": _user(user_id if user_id is not None else chat_id, first_name, language_code),
        "chat": _private_chat(chat_id, first_name),
        "date": int(time.time()),
        "photo": sizes,
    }
    if caption is not None:
        message["caption"] = caption
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "message": message,
    }


def callback_query_update(
    chat_id: int,
    data: str,
    *,
    message_id: int,
    message_text: str = "…",
    bot_id: int = 123456789,
    bot_username: str = "raporto_test_bot",
    callback_id: str | None = None,
    update_id: int | None = None,
    user_id: int | None = None,
    first_name: str = "Test",
    language_code: str | None = "sq",
) -> dict[str, Any]:
    """Build an Update for an inline-button press on the bot's message ``message_id``."""
    bot_user = {"id": bot_id, "is_bot": True, "first_name": "Raporto", "username": bot_username}
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "callback_query": {
            "id": callback_id or str(next(_callback_ids)),
            "from": _user(user_id if user_id is not None else chat_id, first_name, language_code),
            "message": {
                "message_id": message_id,
                "from": bot_user,
                "chat": _private_chat(chat_id, first_name),
                "date": int(time.time()),
                "text": message_text,
            },
            "chat_instance": f"-{abs(chat_id) * 7919}",
            "data": data,
        },
    }


# --------------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------------
@dataclass
class TelegramCall:
    """One Bot API call received by the fake, with the answer it got."""

    method: str
    token: str
    http_method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    raw: RawRequest
    status: int | None = None
    response: Any = None

    @property
    def ok(self) -> bool:
        """Return True when the fake answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _Fault:
    status: int
    description: str
    parameters: dict[str, Any] | None
    body: bytes | None


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes


@dataclass
class _WebhookState:
    url: str = ""
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    max_connections: int = 40
    history: list[dict[str, Any]] = field(default_factory=list)


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


def _error_body(status: int, description: str, parameters: dict[str, Any] | None) -> Reply:
    payload: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return Reply.json(status, payload)


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _coerce(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class FakeTelegramAPI(FakeServer):
    """Fake Telegram Bot API server for the real python-telegram-bot ``Bot``."""

    def __init__(
        self,
        token: str | None = None,
        *,
        bot_username: str = "raporto_test_bot",
        bot_first_name: str = "Raporto",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Create the fake; with ``token`` set, any other token gets 401 Unauthorized."""
        super().__init__(host, port)
        self.token = token
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self._calls: list[TelegramCall] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, deque[float]] = {}
        self._results: dict[str, Any] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 700_000_001
        self._next_message_id = 1
        self._messages: dict[tuple[Any, int], dict[str, Any]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(0)
        self._blocked: set[Any] = set()
        self._webhook = _WebhookState()
        self._commands: list[Any] = []

    # -- addresses -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:PORT/bot`` for ``Bot(base_url=...)``; PTB appends the token."""
        return f"{self.origin}/bot"

    @property
    def base_file_url(self) -> str:
        """Return ``http://127.0.0.1:PORT/file/bot`` for ``Bot(base_file_url=...)``."""
        return f"{self.origin}/file/bot"

    # -- test controls ---------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        status: int = 500,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        body: bytes | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (``"*"``: any method) fail with ``status``.

        429 carries ``parameters.retry_after`` (default 1) and the description
        ``Too Many Requests: retry after N``; ``body`` replaces the JSON with raw bytes
        (e.g. an nginx HTML page for 502).
        """
        parameters: dict[str, Any] = {}
        if status == 429:
            retry_after = 1 if retry_after is None else retry_after
        if retry_after is not None:
            parameters["retry_after"] = retry_after
            if description is None:
                description = f"Too Many Requests: retry after {retry_after}"
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        if description is None:
            description = _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        fault = _Fault(status, description, parameters or None, body)
        with self._lock:
            queue = self._faults.setdefault(method.lower(), deque())
            queue.extend([fault] * times)

    def delay_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` (``"*"``: any) wait ``seconds`` first."""
        with self._lock:
            self._delays.setdefault(method.lower(), deque()).extend([seconds] * times)

    def set_result(self, method: str, result: Any) -> None:
        """Answer every later call of ``method`` with ``{"ok": true, "result": result}``."""
        with self._lock:
            self._results[method.lower()] = result

    def block_chat(self, chat_id: int | str) -> None:
        """From now on, sending to ``chat_id`` answers 403 "bot was blocked by the user"."""
        with self._lock:
            self._blocked.add(chat_id)

    def unblock_chat(self, chat_id: int | str) -> None:
        """Undo :meth:`block_chat`."""
        with self._lock:
            self._blocked.discard(chat_id)

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an Update for getUpdates; assigns ``update_id`` if missing and returns it."""
        update = dict(update)
        with self._changed:
            if "update_id" not in update:
                update["update_id"] = self._next_update_id
            self._next_update_id = max(self._next_update_id, int(update["update_id"])) + 1
            self._updates.append(update)
            self._updates.sort(key=lambda u: int(u["update_id"]))
            self._changed.notify_all()
        return int(update["update_id"])

    def pending_updates(self) -> list[dict[str, Any]]:
        """Return the queued updates not yet confirmed through a getUpdates offset."""
        with self._lock:
            return [dict(u) for u in self._updates]

    def add_file(
        self,
        file_id: str,
        content: bytes,
        *,
        file_path: str | None = None,
        file_unique_id: str | None = None,
    ) -> str:
        """Register downloadable bytes for getFile; returns the file_path (photos/file_N.jpg)."""
        with self._lock:
            path = file_path or f"photos/file_{next(self._file_counter)}.jpg"
            unique = file_unique_id or f"AQAD{abs(hash(file_id)) % 10**10:010d}"
            self._files[file_id] = _StoredFile(file_id, unique, path, content)
        return path

    @property
    def webhook(self) -> dict[str, Any]:
        """Return the current webhook configuration (url, secret_token, allowed_updates...)."""
        with self._lock:
            hook = self._webhook
            return {
                "url": hook.url,
                "secret_token": hook.secret_token,
                "allowed_updates": hook.allowed_updates,
                "max_connections": hook.max_connections,
            }

    # -- accessors -------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[TelegramCall]:
        """Return every call received (of ``method``, case-insensitive), oldest first."""
        with self._lock:
            if method is None:
                return list(self._calls)
            wanted = method.lower()
            return [c for c in self._calls if c.method.lower() == wanted]

    def sent_messages(self) -> list[dict[str, Any]]:
        """Return the successful sendMessage calls: params + ``message_id``, ``reply_markup``."""
        out: list[dict[str, Any]] = []
        with self._lock:  # status and response are set together under this lock
            for call in self.calls("sendMessage"):
                if not call.ok:
                    continue
                item = dict(call.params)
                item.setdefault("reply_markup", None)
                item["message_id"] = call.response["message_id"]
                out.append(item)
        return out

    def wait_for(
        self,
        count_or_predicate: int | Callable[[], bool] = 1,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` messages were sent (or ``predicate()`` holds); return them all."""
        if callable(count_or_predicate):
            predicate = count_or_predicate
            what = "predicate"
        else:
            count = count_or_predicate

            def predicate() -> bool:
                return len(self.sent_messages()) >= count

            what = f"{count} sendMessage call(s)"
        self._wait_until(predicate, timeout, what)
        return self.sent_messages()

    # -- dispatch --------------------------------------------------------------------------
    def _dispatch(self, request: RawRequest) -> Reply:
        self._record(request)
        file_match = _FILE_PATH.match(request.path)
        if file_match and request.method in ("GET", "HEAD"):
            return self._download(file_match.group("token"), file_match.group("path"))
        match = _API_PATH.match(request.path)
        if not match:
            return _error_body(404, "Not Found", None)
        sent_name = match.group("method")
        method = _BY_LOWER.get(sent_name.lower(), sent_name)
        try:
            body = parse_body(request)
        except ValueError as exc:
            return _error_body(400, f"Bad Request: can't parse request: {exc}", None)
        params: dict[str, Any] = {k: _coerce(k, v[-1]) for k, v in request.query.items()}
        params.update({k: _coerce(k, v[-1]) for k, v in body.fields.items()})
        if isinstance(body.json, dict):
            params.update(body.json)
        call = TelegramCall(
            method, match.group("token"), request.method, params, dict(body.files), request
        )
        with self._changed:
            self._calls.append(call)
        reply, result = self._answer(call)
        with self._changed:
            call.status = reply.status
            call.response = result
            self._changed.notify_all()
        return reply

    def _pop(self, table: dict[str, deque[Any]], method: str) -> Any:
        with self._lock:
            for key in (method.lower(), "*"):
                queue = table.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _answer(self, call: TelegramCall) -> tuple[Reply, Any]:
        delay = self._pop(self._delays, call.method)
        if delay:
            self._sleep(delay)
        fault: _Fault | None = self._pop(self._faults, call.method)
        if fault is not None:
            if fault.body is not None:
                return Reply(fault.status, fault.body, "text/html"), None
            return _error_body(fault.status, fault.description, fault.parameters), None
        if self.token is not None and call.token != self.token:
            return _error_body(401, "Unauthorized", None), None
        key = call.method.lower()
        with self._lock:
            custom = self._results.get(key, _MISSING)
        if custom is not _MISSING:
            result: Any = custom
        else:
            handler = getattr(self, f"_m_{key}", None)
            if handler is None:
                return _error_body(404, "Not Found", None), None
            try:
                result = handler(call)
            except _ApiError as err:
                return _error_body(err.status, err.description, None), None
        return Reply.json(200, {"ok": True, "result": result}), result

    def _download(self, token: str, path: str) -> Reply:
        if self.token is not None and token != self.token:
            return _error_body(404, "Not Found", None)
        with self._lock:
            stored = next((f for f in self._files.values() if f.file_path == path), None)
        if stored is None:
            return _error_body(404, "Not Found", None)
        return Reply(200, stored.content, "application/octet-stream")

    # -- helpers for method handlers -------------------------------------------------------
    def _bot_user(self, token: str) -> dict[str, Any]:
        prefix = token.split(":", 1)[0]
        bot_id = int(prefix) if prefix.isdigit() else 123456789
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    @staticmethod
    def _chat(chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, int) and chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Test"}
        if isinstance(chat_id, int):
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "type": kind, "title": "Test group"}
        username = str(chat_id).lstrip("@")
        return {"id": -1001000000001, "type": "channel", "title": username, "username": username}

    def _require(self, call: TelegramCall, *names: str) -> None:
        for name in names:
            value = call.params.get(name)
            if value is None or value == "":
                raise _ApiError(400, f"Bad Request: {name} is empty")

    def _check_chat(self, call: TelegramCall) -> None:
        self._require(call, "chat_id")
        with self._lock:
            blocked = call.params["chat_id"] in self._blocked
        if blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")

    @staticmethod
    def _check_markup(markup: Any) -> dict[str, Any] | None:
        """Validate an inline keyboard like Telegram does; other keyboards are not echoed."""
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return None
        for row in markup["inline_keyboard"]:
            for button in row:
                if not button.get("text"):
                    raise _ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup

    def _new_message(self, call: TelegramCall, **content: Any) -> dict[str, Any]:
        markup = self._check_markup(call.params.get("reply_markup"))
        with self._lock:
            message_id = self._next_message_id
            self._next_message_id += 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self._bot_user(call.token),
            "chat": self._chat(call.params["chat_id"]),
            "date": int(time.time()),
            **content,
        }
        if markup is not None:
            message["reply_markup"] = markup
        with self._lock:
            self._messages[(call.params["chat_id"], message_id)] = message
        return message

    def _upload(self, call: TelegramCall, field_name: str) -> tuple[str, str, int]:
        """Return (file_id, file_unique_id, size) for an uploaded file or a re-sent file_id."""
        upload = call.files.get(field_name)
        value = call.params.get(field_name)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = call.files.get(value.removeprefix("attach://"))
        if upload is not None:
            n = next(self._file_counter)
            file_id = f"AgAC-fake-{field_name}-{n}"
            self.add_file(file_id, upload.content, file_path=f"{field_name}s/file_{n}")
            return file_id, f"AQAD-{n}", len(upload.content)
        if isinstance(value, str) and value:
            return value, f"AQAD-{abs(hash(value)) % 10**8}", 0
        raise _ApiError(400, f"Bad Request: there is no {field_name} in the request")

    # -- method handlers (``_m_<lowercase method>``) ---------------------------------------
    def _m_getme(self, call: TelegramCall) -> Any:
        return {
            **self._bot_user(call.token),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_logout(self, call: TelegramCall) -> Any:
        return True

    def _m_close(self, call: TelegramCall) -> Any:
        return True

    def _m_sendmessage(self, call: TelegramCall) -> Any:
        self._check_chat(call)
        text = call.params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._new_message(call, text=text)

    def _m_sendphoto(self, call: TelegramCall) -> Any:
        self._check_chat(call)
        file_id, unique, size = self._upload(call, "photo")
        photo = [{"file_id": file_id, "file_unique_id": unique, "width": 800, "height": 800}]
        if size:
            photo[0]["file_size"] = size
        extra = {"caption": call.params["caption"]} if call.params.get("caption") else {}
        return self._new_message(call, photo=photo, **extra)

    def _m_senddocument(self, call: TelegramCall) -> Any:
        self._check_chat(call)
        file_id, unique, size = self._upload(call, "document")
        upload = call.files.get("document")
        document: dict[str, Any] = {"file_id": file_id, "file_unique_id": unique}
        if upload is not None:
            document["file_name"] = upload.filename or "document"
            document["mime_type"] = upload.content_type or "application/octet-stream"
        if size:
            document["file_size"] = size
        extra = {"caption": call.params["caption"]} if call.params.get("caption") else {}
        return self._new_message(call, document=document, **extra)

    def _m_sendchataction(self, call: TelegramCall) -> Any:
        self._check_chat(call)
        return True

    def _m_answercallbackquery(self, call: TelegramCall) -> Any:
        self._require(call, "callback_query_id")
        text = call.params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    def _m_deletemessage(self, call: TelegramCall) -> Any:
        self._require(call, "chat_id", "message_id")
        with self._lock:
            self._messages.pop((call.params["chat_id"], call.params["message_id"]), None)
        return True

    def _edit(self, call: TelegramCall, **changes: Any) -> Any:
        if call.params.get("inline_message_id"):
            return True
        self._check_chat(call)
        self._require(call, "message_id")
        key = (call.params["chat_id"], call.params["message_id"])
        markup = self._check_markup(call.params.get("reply_markup"))
        with self._lock:
            message = self._messages.get(key)
            if message is None:
                message = {
                    "message_id": key[1],
                    "from": self._bot_user(call.token),
                    "chat": self._chat(key[0]),
                    "date": int(time.time()),
                    "text": "…",
                }
            before = (message.get("text"), message.get("reply_markup"))
            updated = {k: v for k, v in message.items() if k != "reply_markup"}
            updated.update(changes)
            if markup is not None:
                updated["reply_markup"] = markup
            if key in self._messages and before == (updated.get("text"), markup):
                raise _ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            updated["edit_date"] = int(time.time())
            self._messages[key] = updated
        return updated

    def _m_editmessagetext(self, call: TelegramCall) -> Any:
        text = call.params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        return self._edit(call, text=text)

    def _m_editmessagereplymarkup(self, call: TelegramCall) -> Any:
        return self._edit(call)

    def _m_setwebhook(self, call: TelegramCall) -> Any:
        url = call.params.get("url") or ""
        if url and not str(url).startswith("https://"):
            raise _ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        with self._changed:
            hook = self._webhook
            hook.url = str(url)
            hook.secret_token = call.params.get("secret_token")
            hook.allowed_updates = call.params.get("allowed_updates")
            hook.max_connections = int(call.params.get("max_connections") or 40)
            hook.history.append(dict(call.params))
            if call.params.get("drop_pending_updates"):
                self._updates.clear()
        return True

    def _m_deletewebhook(self, call: TelegramCall) -> Any:
        with self._changed:
            self._webhook.url = ""
            self._webhook.secret_token = None
            if call.params.get("drop_pending_updates"):
                self._updates.clear()
        return True

    def _m_getwebhookinfo(self, call: TelegramCall) -> Any:
        with self._lock:
            hook = self._webhook
            info: dict[str, Any] = {
                "url": hook.url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
            if hook.url:
                info["max_connections"] = hook.max_connections
                info["ip_address"] = "127.0.0.1"
                if hook.allowed_updates is not None:
                    info["allowed_updates"] = hook.allowed_updates
        return info

    def _m_getupdates(self, call: TelegramCall) -> Any:
        with self._lock:
            if self._webhook.url:
                raise _ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
        offset = int(call.params.get("offset") or 0)
        limit = max(1, min(100, int(call.params.get("limit") or 100)))
        timeout = float(call.params.get("timeout") or 0)
        allowed = call.params.get("allowed_updates")
        deadline = time.monotonic() + timeout
        with self._changed:
            if offset < 0:
                self._updates = self._updates[offset:]
            elif offset > 0:
                self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]
            while True:
                batch = [
                    u
                    for u in self._updates
                    if not allowed or any(k in u for k in allowed if k != "update_id")
                ][:limit]
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0 or self._stopping.is_set():
                    return [dict(u) for u in batch]
                self._changed.wait(remaining)

    def _m_getfile(self, call: TelegramCall) -> Any:
        self._require(call, "file_id")
        with self._lock:
            stored = self._files.get(str(call.params["file_id"]))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if len(stored.content) > MAX_FILE_DOWNLOAD:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    def _m_setmycommands(self, call: TelegramCall) -> Any:
        with self._lock:
            self._commands = list(call.params.get("commands") or [])
        return True

    def _m_getmycommands(self, call: TelegramCall) -> Any:
        with self._lock:
            return list(self._commands)

    def _m_deletemycommands(self, call: TelegramCall) -> Any:
        with self._lock:
            self._commands = []
        return True


_MISSING: Any = object()
