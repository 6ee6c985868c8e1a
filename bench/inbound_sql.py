"""How many SQL statements and transactions one inbound webhook costs, counted, not guessed.

The real app (``bot.app.create_app``) on the benchmark's database, driven through Flask's test
client with the same signed requests as the load, one person per script; SQLAlchemy's events
count every statement (the intake's prepared ones too), every pool check-out and every
commit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select

from bench.inbound_people import LOAD_SCRIPTS, Secrets, conversation
from bot.app import create_app, services
from bot.settings import load_settings
from storage.models import Message


@dataclass
class SqlCount:
    """Counts over the messages of one channel."""

    messages: int = 0
    statements: int = 0
    checkouts: int = 0
    commits: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    texts_queued: int = 0  # text replies put in the outbox (not callback answers or deletions)

    def per_message(self, value: int) -> float:
        """A count divided by the number of messages."""
        return value / self.messages if self.messages else 0.0


def count_sql(env: dict[str, str], secrets: Secrets, first_person: int) -> dict[str, SqlCount]:
    """Replay every load script once through the app; counts per channel."""
    app = create_app(load_settings(env))
    engine = services_of(app).engine
    current: list[SqlCount] = [SqlCount()]

    def on_statement(*args: Any) -> None:
        current[0].statements += 1
        current[0].kinds[kind(args[2])] += 1

    def on_checkout(*_args: Any) -> None:
        current[0].checkouts += 1

    def on_commit(*_args: Any) -> None:
        current[0].commits += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine, "commit", on_commit)
    counts: dict[str, SqlCount] = {}
    client = app.test_client()
    with engine.connect() as conn:
        first_id = conn.scalar(select(func.coalesce(func.max(Message.id), 0)))
    try:
        for n, script in enumerate(LOAD_SCRIPTS):
            current[0] = counts.setdefault(script.channel, SqlCount())
            for request in conversation(first_person + n, script, secrets):
                response = client.post(
                    request.path,
                    data=request.body,
                    headers=dict(request.headers),
                    base_url=secrets.public_base_url,
                )
                if response.status_code != 200:
                    raise RuntimeError(f"{request.path} answered {response.status_code}")
                current[0].messages += 1
        with engine.connect() as conn:
            queued = conn.execute(
                select(Message.channel, func.count())
                .where(Message.id > first_id, Message.direction == "out", Message.kind == "text")
                .group_by(Message.channel)
            )
            for channel, n in queued:
                counts.setdefault(channel, SqlCount()).texts_queued = int(n)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine.pool, "checkout", on_checkout)
        event.remove(engine, "commit", on_commit)
        engine.dispose()
    return counts


def kind(statement: str) -> str:
    """A statement's verb and table: ``INSERT message``, ``SELECT contact``, ``NOTIFY``."""
    words = statement.split()
    if not words:
        return "?"
    verb = words[0].upper()
    upper = [w.upper() for w in words]
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    if verb == "SELECT" and "FROM" in upper:
        table = words[upper.index("FROM") + 1]
        return f"SELECT {table}" + (" FOR UPDATE" if "UPDATE" in upper[-3:] else "")
    return verb


def services_of(app: Any) -> Any:
    """The app's services (outside a request)."""
    with app.app_context():
        return services()
