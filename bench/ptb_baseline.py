"""The baseline: the same dialog as a python-telegram-bot ``ConversationHandler``.

This is what a Python developer would build instead of our engine: one ``ConversationHandler``
with ``PicklePersistence``, as many states as the engine has, and a simple handler per state
that keeps the answer in ``context.user_data`` and replies. It is fed the same messages as
``Update`` objects through ``Application.process_update`` in one event loop.

Fairness: handlers build the reply text and hand it to an in-memory list; nothing goes over the
network (the bot's request backend answers ``getMe`` locally and refuses anything else). The
baseline understands digits, buttons and exact language names only: no typo-tolerant option
words, no municipality matching, no translations, no encryption. It does less work per message
than our engine, which favours it.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import time
import warnings
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)
from telegram.ext import ContextTypes as PTBContextTypes
from telegram.request import BaseRequest, RequestData
from telegram.warnings import PTBUserWarning

from bench.conversations import Script
from dialogs import options as opt
from dialogs.complaint_dialog import State
from dialogs.messages import LANGUAGE_NAMES, LANGUAGES, Choice

TOKEN = "123:ABC"
BOT_USER = {"id": 123, "is_bot": True, "first_name": "Raporto", "username": "raporto_bench_bot"}
SENT: deque[tuple[int, str]] = deque(maxlen=1_000)
"""Replies the handlers built: where a real bot would call ``reply_text``."""

# One state per engine state that waits for an answer (NEW and IDLE are "no conversation").
STATES: tuple[str, ...] = tuple(s.value for s in State if s not in (State.NEW, State.IDLE))

CHOICES: dict[str, tuple[Choice, ...]] = {
    "consent": opt.YES_NO,
    "danger": opt.YES_NO,
    "area": opt.AREAS,
    "ground": opt.GROUNDS,
    "perpetrator": opt.PERPETRATORS,
    "municipality_confirm": opt.YES_NO,
    "when": opt.WHEN,
    "stakes": opt.STAKES,
    "contact": opt.CONTACT_SMS,
    "legal": opt.YES_NO,
    "sharing": opt.SHARING,
    "review": opt.REVIEW,
    "change": opt.CHANGE,
    "delete_confirm": opt.YES_NO,
    "cleanup": opt.YES_NO,
}

QUESTIONS: dict[str, str] = {
    "language": "Choose your language:",
    "consent": "May we record your report?",
    "danger": "Are you in danger right now?",
    "area": "Where did it happen?",
    "ground": "Why were you treated unfairly?",
    "ground_other": "Please write the reason in a few words.",
    "perpetrator": "Who did it?",
    "municipality": "In which municipality? Write its name, or 0 if outside Kosovo.",
    "municipality_confirm": "Did you mean %s?",
    "when": "When did it happen?",
    "description": "Tell us what happened. Send 0 when you are done.",
    "evidence": "Do you have photos or documents? Send them now, then 0. Or send 0 to skip.",
    "stakes": "Is any of this true? Send all numbers that apply, e.g. 1 3.",
    "contact": "May we contact you about this report?",
    "contact_phone": "Write the phone number, e.g. 044 123 456.",
    "legal": "Do you want free legal support?",
    "sharing": "May we pass your report to the competent institution?",
    "review": "Your report: %s. Send it?",
    "change": "Which answer do you want to change?",
    "delete_confirm": "Delete all your data and withdraw your open reports?",
    "cleanup": "On a shared phone? We can remove this chat from your screen. Remove it?",
}

NEXT: dict[str, str] = {
    "language": "consent",
    "consent": "danger",
    "danger": "area",
    "area": "ground",
    "ground": "perpetrator",
    "ground_other": "perpetrator",
    "perpetrator": "municipality",
    "municipality": "municipality_confirm",
    "municipality_confirm": "when",
    "when": "description",
    "description": "evidence",
    "evidence": "stakes",
    "stakes": "contact",
    "contact": "legal",
    "contact_phone": "legal",
    "legal": "sharing",
    "sharing": "review",
}

_LANGUAGE_BY_NAME = {name.casefold(): lang for lang, name in LANGUAGE_NAMES.items()}
_COMMANDS = re.compile(r"^\s*(back|restart|help|delete my data)\s*$", re.IGNORECASE)
_END: int = ConversationHandler.END
_NUMBERS = re.compile(r"\d+")

Callback = Callable[[Update, PTBContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, object]]


class OfflineRequest(BaseRequest):
    """A Bot API backend that answers ``getMe`` locally and refuses every other call."""

    @property
    def read_timeout(self) -> float | None:
        """No network, no timeout."""
        return None

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """``getMe`` from memory; any other call is a bug in the benchmark."""
        if url.endswith("/getMe"):
            return 200, json.dumps({"ok": True, "result": BOT_USER}).encode()
        raise RuntimeError(f"the baseline must not call the Bot API ({url.rsplit('/', 1)[-1]})")


def _question(state: str, ud: dict[str, Any]) -> str:
    """The question of a state with its numbered options, as the reply text."""
    text = QUESTIONS[state]
    if state == "municipality_confirm":
        text = text % ud.get("municipality", "")
    elif state == "review":
        keys = ("area", "ground", "perpetrator", "municipality", "when")
        text = text % "; ".join(str(ud.get(k, "-")) for k in keys)
    if state == "language":
        options = [LANGUAGE_NAMES[lang] for lang in LANGUAGES]
    else:
        options = [c.label.msgid for c in CHOICES.get(state, ())]
    return "\n".join([text, *(f"{i} {label}" for i, label in enumerate(options, 1))])


def _reply(update: Update, text: str) -> None:
    """Hand a reply to the in-memory sink instead of the Bot API."""
    chat = update.effective_chat
    SENT.append((chat.id if chat else 0, text))


def _read(update: Update) -> tuple[str, str | None]:
    """The typed text and the pressed button's value of an update."""
    query = update.callback_query
    if query is not None:
        return "", (query.data or "").partition(":")[2]
    message = update.effective_message
    return (message.text or "") if message else "", None


def _pick(state: str, text: str, pressed: str | None) -> list[str] | None:
    """The option values an answer picks, by button or by number; None when it picks nothing."""
    choices = CHOICES[state]
    values = [c.value for c in choices]
    if pressed is not None:
        return [pressed] if pressed in values else None
    numbers = _NUMBERS.findall(text)
    if not numbers or (state != "stakes" and len(numbers) != 1):
        return None
    picked = []
    for number in numbers:
        index = int(number)
        if not 1 <= index <= len(values):
            return None
        picked.append(values[index - 1])
    return picked


def _go(update: Update, ud: dict[str, Any], state: str) -> str:
    """Enter a state: remember it for "back" and ask its question."""
    history: list[str] = ud.setdefault("history", [])
    if not history or history[-1] != state:
        history.append(state)
    _reply(update, _question(state, ud))
    return state


def _answer(state: str) -> Callback:
    """The handler of one state: keep the answer, reply with the next question."""

    async def callback(update: Update, context: PTBContextTypes.DEFAULT_TYPE) -> object:
        """Handle an answer to this state."""
        ud: dict[str, Any] = context.user_data if context.user_data is not None else {}
        text, pressed = _read(update)
        if state == "language":
            lang = _LANGUAGE_BY_NAME.get(text.strip().casefold())
            if text.strip().isdigit() and 1 <= int(text) <= len(LANGUAGES):
                lang = LANGUAGES[int(text) - 1]
            if lang is None:
                _reply(update, "Please send the number of your language.")
                return None
            ud["language"] = lang
            return _go(update, ud, "consent")
        if state in ("ground_other", "municipality", "contact_phone"):
            ud[state] = text.strip()[:500]
            return _go(update, ud, "review" if ud.get("editing") else NEXT[state])
        if state == "description":
            if text.strip() == "0":
                return _go(update, ud, "review" if ud.get("editing") else NEXT[state])
            ud.setdefault("description", []).append(text.strip())
            _reply(update, "Got it. Send more, or 0 when you are done.")
            return None
        if state == "evidence":
            if text.strip() != "0":
                _reply(update, "Send photos or documents, or 0 to go on.")
                return None
            return _go(update, ud, "review" if ud.get("editing") else NEXT[state])
        picked = _pick(state, text, pressed)
        if picked is None:
            _reply(update, "Sorry, I did not understand. Please answer with a number.")
            _reply(update, _question(state, ud))
            return None
        value = picked[0]
        ud[state] = picked if state == "stakes" else value
        if state == "consent" and value == "no":
            ud.clear()
            _reply(update, "We understand. Nothing was recorded.")
            return _END
        if state == "municipality_confirm" and value == "no":
            return _go(update, ud, "municipality")
        if state == "ground" and value == "other":
            return _go(update, ud, "ground_other")
        if state == "contact" and value == "other":
            return _go(update, ud, "contact_phone")
        if state == "review":
            return _review(update, ud, value)
        if state == "cleanup":
            _reply(update, "Thank you. Write to us again at any time.")
            return _END
        if state == "change":
            ud["editing"] = True
            return _go(update, ud, value)
        if state == "delete_confirm":
            if value == "yes":
                ud.clear()
                _reply(update, "Your data was deleted.")
                return _END
            return _go(update, ud, ud.pop("resume", "language"))
        return _go(update, ud, "review" if ud.get("editing") else NEXT[state])

    return callback


def _review(update: Update, ud: dict[str, Any], value: str) -> object:
    """The review's answer: send (then offer to clear the chat), change or cancel."""
    ud["editing"] = False
    if value == "change":
        return _go(update, ud, "change")
    if value == "send":
        reports: list[dict[str, Any]] = ud.setdefault("reports", [])
        answers = {k: v for k, v in ud.items() if k not in ("history", "reports", "editing")}
        reports.append(answers)
        _reply(update, f"Thank you. Your report is sent. Code: RAE-{len(reports):06d}")
        _clear_answers(ud)
        return _go(update, ud, "cleanup")  # people share phones: offer to clear the chat
    _reply(update, "Your report was cancelled and deleted.")
    _clear_answers(ud)
    return _END


def _clear_answers(ud: dict[str, Any]) -> None:
    """Forget the answers of the finished report; keep the language and reports."""
    for key in [k for k in ud if k not in ("language", "reports")]:
        del ud[key]


async def _start(update: Update, context: PTBContextTypes.DEFAULT_TYPE) -> object:
    """Any message outside a conversation: the language menu, or the welcome."""
    ud: dict[str, Any] = context.user_data if context.user_data is not None else {}
    ud["history"] = []
    if "language" not in ud:
        return _go(update, ud, "language")
    _reply(update, "Raporto sends your report of discrimination ... In danger now? Call 112.")
    return _go(update, ud, "consent")


async def _command(update: Update, context: PTBContextTypes.DEFAULT_TYPE) -> object:
    """back, restart, help and delete my data, in any state."""
    ud: dict[str, Any] = context.user_data if context.user_data is not None else {}
    text, _ = _read(update)
    word = text.strip().casefold()
    history: list[str] = ud.setdefault("history", [])
    current = history[-1] if history else "language"
    if word == "back":
        if len(history) > 1:
            history.pop()
        return _go(update, ud, history[-1] if history else "language")
    if word == "restart":
        return await _start(update, context)
    if word == "delete my data":
        ud["resume"] = current
        _reply(update, _question("delete_confirm", ud))
        return "delete_confirm"
    _reply(update, "Answer with the number of your choice. You can also write: back, restart.")
    _reply(update, _question(current, ud))
    return None


def build_conversation() -> ConversationHandler[Any]:
    """The ConversationHandler: one state per engine state, a handler per state."""
    answer = filters.TEXT & ~filters.Regex(_COMMANDS)
    states: dict[object, list[Any]] = {
        state: [MessageHandler(answer, _answer(state)), CallbackQueryHandler(_answer(state))]
        for state in STATES
    }
    with warnings.catch_warnings():
        # "per_message=False: CallbackQueryHandler will not be tracked for every message":
        # buttons belong to the person's conversation, as in the engine.
        warnings.simplefilter("ignore", PTBUserWarning)
        return ConversationHandler(
            entry_points=[MessageHandler(filters.TEXT, _start), CallbackQueryHandler(_start)],
            states=states,
            fallbacks=[MessageHandler(filters.Regex(_COMMANDS), _command)],
            name="report",
            persistent=True,
        )


def build_application(pickle_path: Path) -> Application[Any, Any, Any, Any, Any, Any]:
    """The Application as a developer would build it, with a bot that never leaves the process."""
    persistence: PicklePersistence[Any, Any, Any] = PicklePersistence(filepath=pickle_path)
    application = (
        Application.builder()
        .token(TOKEN)
        .request(OfflineRequest())
        .get_updates_request(OfflineRequest())
        .persistence(persistence)
        .concurrent_updates(False)
        .updater(None)
        .build()
    )
    application.add_handler(build_conversation())
    return application


def update_dicts(script: Script, user_id: int, first_update_id: int) -> list[dict[str, Any]]:
    """The script as Telegram updates from one user, in Bot API JSON."""
    user = {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "sq"}
    chat = {"id": user_id, "type": "private", "first_name": "Bench"}
    date = 1_740_996_000
    out: list[dict[str, Any]] = []
    for i, say in enumerate(script.messages):
        update_id = first_update_id + i
        if say.choice is not None:
            message = {"message_id": update_id, "date": date, "chat": chat, "from": BOT_USER}
            message["text"] = "question"
            query = {
                "id": str(update_id),
                "from": user,
                "chat_instance": f"ci{user_id}",
                "data": say.choice,
                "message": message,
            }
            out.append({"update_id": update_id, "callback_query": query})
        else:
            message = {"message_id": update_id, "date": date, "chat": chat, "from": user}
            message["text"] = say.text
            out.append({"update_id": update_id, "message": message})
    return out


class BaselineRun:
    """Timings of one baseline run, per message, and what its persistence wrote."""

    def __init__(self) -> None:
        """Nothing measured yet."""
        self.samples_ns: list[int] = []
        self.final_flush_ns = 0
        self.pickle_bytes = 0
        self.users = 0
        self.preloaded = 0


def past_user_data(n: int) -> dict[str, Any]:
    """What one person who sent a report earlier leaves in ``user_data``."""
    report = {
        "consent": "yes",
        "danger": "no",
        "area": "education",
        "ground": "ethnicity",
        "perpetrator": "school",
        "municipality": "Gjakova",
        "municipality_confirm": "yes",
        "when": "this_month",
        "description": [f"Report {n}: the teacher put my son at the back of the class."],
        "stakes": ["child", "job"],
        "contact": "this",
        "legal": "yes",
        "sharing": "after_talk",
    }
    return {"language": "en", "reports": [report]}


def preload(pickle_path: Path, people: int) -> None:
    """A pickle as PicklePersistence writes it, holding ``people`` earlier reporters."""
    data = {
        "conversations": {"report": {}},
        "user_data": {1_000_000 + n: past_user_data(n) for n in range(people)},
        "chat_data": {},
        "bot_data": {},
        "callback_data": None,
    }
    with pickle_path.open("wb") as fh:
        pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)


class BaselineSession:
    """One Application and its pickle, kept across rounds and fed the scripts on demand.

    The benchmark interleaves rounds of this baseline with rounds of ours, so that a slow
    spell of the (shared) machine falls on both alike.
    """

    def __init__(self, pickle_path: Path, *, durable: bool, preloaded: int = 0) -> None:
        if pickle_path.exists():
            pickle_path.unlink()
        if preloaded:
            preload(pickle_path, preloaded)
        self.pickle_path = pickle_path
        self.durable = durable
        self.run = BaselineRun()
        self.run.preloaded = preloaded
        self._update_id = 1
        self._user_id = 10_000
        self._loop = asyncio.new_event_loop()
        self._application = build_application(pickle_path)
        self._loop.run_until_complete(self._application.initialize())

    def replay(self, scripts: Sequence[Script], reps: int, *, timed: bool) -> None:
        """Every script ``reps`` times, each time by a new person; timed or as a warm-up."""
        self._loop.run_until_complete(self._feed(scripts, reps, timed))

    async def _feed(self, scripts: Sequence[Script], reps: int, timed: bool) -> None:
        application = self._application
        for _ in range(reps):
            for script in scripts:
                self._user_id += 1
                dicts = update_dicts(script, self._user_id, self._update_id)
                self._update_id += len(dicts)
                updates = [Update.de_json(d, application.bot) for d in dicts]
                for update in updates:
                    started = time.perf_counter_ns()
                    await application.process_update(update)
                    if self.durable:
                        await application.update_persistence()
                    elapsed = time.perf_counter_ns() - started
                    if timed:
                        self.run.samples_ns.append(elapsed)

    def close(self) -> BaselineRun:
        """Flush and shut the Application down; what the run measured."""
        application = self._application
        try:
            started = time.perf_counter_ns()
            self._loop.run_until_complete(application.update_persistence())
            self._loop.run_until_complete(application.persistence.flush())  # type: ignore[union-attr]
            self.run.final_flush_ns = time.perf_counter_ns() - started
        finally:
            self._loop.run_until_complete(application.shutdown())
            self._loop.close()
        self.run.users = self._user_id - 10_000
        path = self.pickle_path
        self.run.pickle_bytes = path.stat().st_size if path.exists() else 0
        return self.run


def measure(
    scripts: Sequence[Script],
    repetitions: int,
    warmup: int,
    pickle_path: Path,
    *,
    durable: bool,
    preloaded: int = 0,
) -> BaselineRun:
    """Per-message cost of ``process_update`` (plus ``update_persistence`` when ``durable``)."""
    session = BaselineSession(pickle_path, durable=durable, preloaded=preloaded)
    session.replay(scripts, warmup, timed=False)
    session.replay(scripts, repetitions, timed=True)
    return session.close()
