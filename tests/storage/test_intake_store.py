"""The intake's prepared statements on SQLite and PostgreSQL: types, errors, lost connections."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from bot.app import Services, build_services
from bot.delivery import NOTIFY_CHANNEL
from storage.intake_store import IntakeStore
from storage.models import Contact, Conversation, Message, utcnow
from tests.conftest import make_settings
from tests.helpers import conversation, say, texts


def test_a_stored_conversation_reads_back_with_its_types(services: Services) -> None:
    conversation(services, ["hello", "7", "1", "2"])  # English, consent, not in danger
    now = utcnow()
    with services.uow.core() as unit:
        store = IntakeStore(unit)
        loaded = store.load("sms", "+38344123456")
        assert loaded is not None
        contact, row = loaded
        assert contact.language == "en"
        assert contact.plain_letters is False
        assert contact.opted_out_at is None
        assert row is not None
        assert row.state == "area"
        assert row.answers == {"consent": True, "danger": False}
        assert isinstance(row.flow, dict)
        assert row.updated_at.tzinfo is not None
        assert now - row.updated_at < timedelta(minutes=1)
        assert store.load("sms", "+38344999999") is None


def test_a_redelivered_id_records_nothing(services: Services) -> None:
    now = utcnow()
    with services.uow.core() as unit:
        store = IntakeStore(unit)
        contact, _, first = store.arrive(
            "sms", "+38344000001", "SM-1", "hello", chat_message_id=None, is_test=False, now=now
        )
        again_contact, _, again = store.arrive(
            "sms", "+38344000001", "SM-1", "hello", chat_message_id=None, is_test=False, now=now
        )
    assert isinstance(first, int)
    assert again is None
    assert again_contact.id == contact.id
    with services.uow() as session:
        logged = session.get(Message, first)
        assert logged is not None
        assert logged.body == "hello"  # encrypted on the way in, decrypted on the way out
        assert logged.contact_id == contact.id  # a first message is tied to its new contact


def test_writes_wait_for_write_and_return_the_queued_ids(services: Services) -> None:
    now = utcnow()
    with services.uow.core() as unit:
        store = IntakeStore(unit)
        contact, row, _ = store.arrive(
            "sms", "+38344000003", "SM-3", "hi", chat_message_id=None, is_test=False, now=now
        )
        assert row is None
        first = store.queue(
            contact_id=contact.id,
            channel="sms",
            to_address="+38344000003",
            body="one",
            reply_markup=None,
            now=now,
        )
        store.save_conversation(
            contact.id, None, state="area", answers={"a": 1}, flow={}, campaign=None, now=now
        )
        second = store.queue(
            contact_id=contact.id,
            channel="sms",
            to_address="+38344000003",
            body="two",
            reply_markup={"k": 1},
            now=now,
        )
        ids = store.write()
        assert (first, second) == (0, 1)
        assert store.write() == []
    with services.uow() as session:
        bodies = [session.get(Message, i).body for i in ids]  # type: ignore[union-attr]
        assert bodies == ["one", "two"]
        stored = session.scalars(select(Conversation)).one()
        assert stored.answers == {"a": 1}


def test_a_conversation_changed_meanwhile_is_stale(services: Services) -> None:
    say(services, "hello")
    with services.uow() as session:
        session.execute(update(Conversation).values(version=Conversation.version + 1))
    with pytest.raises(StaleDataError), services.uow.core() as unit:
        store = IntakeStore(unit)
        loaded = store.load("sms", "+38344123456")
        assert loaded is not None
        contact, row = loaded
        assert row is not None
        stale = type(row)(**{**row.__dict__, "version": row.version - 1})
        store.save_conversation(
            contact.id, stale, state="area", answers={}, flow={}, campaign=None, now=utcnow()
        )
        store.write()


def test_driver_errors_come_out_as_sqlalchemy_errors_and_roll_back(services: Services) -> None:
    now = utcnow()
    with pytest.raises(IntegrityError), services.uow.core() as unit:
        store = IntakeStore(unit)
        contact, _, _ = store.arrive(
            "sms", "+38344000002", "SM-2", "x", chat_message_id=None, is_test=False, now=now
        )
        # No such contact: the foreign key refuses the row (sent with the other writes).
        store.queue(
            contact_id=987_654,
            channel="sms",
            to_address="+38344000002",
            body="x",
            reply_markup=None,
            now=now,
        )
        store.write()
    with services.uow() as session:
        assert session.scalars(select(Contact)).all() == []
        assert session.scalars(select(Message)).all() == []


def test_listeners_see_the_prepared_statements(services: Services) -> None:
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(services.engine, "before_cursor_execute", count)
    try:
        say(services, "hello")
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
    assert seen.count("INSERT") >= 3  # contact, inbound, reply (and the new conversation)
    assert "SELECT" in seen


@pytest.mark.postgres
def test_a_connection_lost_to_a_restart_costs_no_message(postgres_url: str, tmp_path: Path) -> None:
    """Without pool_pre_ping, the first statement on a dead connection fails and is retried."""
    # Named, so that only this test's connections are cut (other suites may share the server).
    joiner = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{joiner}application_name=raporto-restart-test"
    services = build_services(make_settings(url, tmp_path))
    try:
        say(services, "hello")  # the pool now holds one open connection
        with services.engine.connect() as other:
            other.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'raporto-restart-test'"
                )
            )
        result = say(services, "7")  # English
        assert not result.duplicate
        assert texts(result)
        with services.uow() as session:
            contact = session.scalars(select(Contact)).one()
            assert contact.language == "en"
    finally:
        services.engine.dispose()


@pytest.mark.postgres
def test_a_queued_reply_wakes_the_delivery_workers(postgres_url: str, tmp_path: Path) -> None:
    services = build_services(make_settings(postgres_url, tmp_path))
    listener = psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True)
    try:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        say(services, "hello")
        woken = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in woken] == [NOTIFY_CHANNEL]
        say(services, "hello", is_test=True, sender="+38344000009")  # answered on screen only
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    finally:
        listener.close()
        services.engine.dispose()


def test_replies_reuse_the_senders_stored_address_and_hash(services: Services) -> None:
    conversation(services, ["hello", "7"])  # English: the welcome and the consent question
    with services.uow() as session:
        contact = session.scalars(select(Contact)).one()
        raw = session.execute(
            text("SELECT address, address_hash FROM contact WHERE id = :id"), {"id": contact.id}
        ).one()
        replies = session.execute(
            text("SELECT to_address, recipient_key FROM message WHERE direction = 'out'")
        ).all()
    assert len(replies) >= 2
    # The token the contact holds, not a new encryption of the same number for every reply.
    assert {bytes(r.to_address) for r in replies} == {bytes(raw.address)}
    assert {r.recipient_key for r in replies} == {raw.address_hash}
    assert b"38344123456" not in bytes(raw.address)


def test_a_pending_sms_ack_is_found_through_its_own_index(services: Services) -> None:
    delete = (
        "DELETE FROM message WHERE coalesce_key = 'ack:1' "
        "AND status = 'queued' AND locked_until IS NULL AND attempts = 0"
    )
    with services.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {delete}").all()
        else:  # an empty table is scanned anyway: ask whether the index can serve at all
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = conn.exec_driver_sql(f"EXPLAIN {delete}").all()
    assert any("ix_message_coalesce" in str(row[-1]) for row in plan), plan


@pytest.mark.postgres
def test_a_connection_lost_at_commit_is_a_retryable_error(
    postgres_url: str, tmp_path: Path
) -> None:
    """The server going away between the writes and the commit: SQLAlchemy's error, and the
    broken connection is not handed out again."""
    joiner = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{joiner}application_name=raporto-commit-test"
    services = build_services(make_settings(url, tmp_path))
    try:
        with pytest.raises(OperationalError), services.uow.core() as unit:
            store = IntakeStore(unit)
            store.arrive(
                "sms",
                "+38344000077",
                "SM-77",
                "hello",
                chat_message_id=None,
                is_test=False,
                now=utcnow(),
            )
            with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as other:
                other.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() "
                    "AND application_name = 'raporto-commit-test'"
                )
        result = say(services, "hello", sender="+38344000077")  # a fresh connection
        assert texts(result)
    finally:
        services.engine.dispose()
