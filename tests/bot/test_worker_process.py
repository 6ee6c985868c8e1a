"""``raporto worker`` as a process: killed mid-send, its rows go to the next worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import build_services
from bot.delivery import LEASE
from bot.settings import SettingsError
from bot.worker import LEASE_ENV, lease_from_env
from storage.models import Message, utcnow
from tests.conftest import TEST_FERNET_KEYS, TEST_HASH_KEY
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioAPI
from tests.helpers import say
from tests.webhooks.channel_support import PUBLIC_BASE_URL, SMS_FROM, channel_settings, delivery

RAPORTO = Path(sys.executable).with_name("raporto")


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    """The fake Twilio REST API."""
    with FakeTwilioAPI() as fake:
        yield fake


def worker_env(database_url: str, tmp_path: Path, tw: FakeTwilioAPI, lease: str) -> dict[str, str]:
    """The environment ``load_settings`` reads, pointed at the test database and the fake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "TWILIO_"))}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY="test-secret-key",
        RAPORTO_ENCRYPTION_KEYS=",".join(TEST_FERNET_KEYS),
        RAPORTO_HASH_KEY=TEST_HASH_KEY,
        RAPORTO_INSTANCE_DIR=str(tmp_path / "instance"),
        RAPORTO_STORAGE_DIR=str(tmp_path / "attachments"),
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        TWILIO_FROM_NUMBER=SMS_FROM,
        TWILIO_API_BASE_URL=tw.base_url,
        **{LEASE_ENV: lease},
    )
    return env


def test_worker_killed_mid_send_leaves_its_rows_to_the_next_one(
    postgres_url: str, tmp_path: Path, tw: FakeTwilioAPI
) -> None:
    services = build_services(channel_settings(postgres_url, tmp_path, tw=tw))
    try:
        say(services, "hello")  # the language menu waits in the outbox
        with services.uow() as session:
            queued = session.scalars(select(Message).where(Message.direction == "out")).one()
        tw.delay_next(60)  # the send hangs: the kill lands while it is in flight
        process = subprocess.Popen(
            [str(RAPORTO), "worker"],
            env=worker_env(postgres_url, tmp_path, tw, lease="3"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            tw.wait_for(lambda: len(tw.requests()) == 1, timeout=60)  # a hang guard only
            seen = utcnow()
            process.send_signal(signal.SIGKILL)
        finally:
            _, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, stderr.decode(errors="replace")

        with services.uow() as session:
            held = session.get(Message, queued.id)
            assert held is not None
        # Claimed, not sent, and leased for RAPORTO_WORKER_LEASE_SECONDS (not the default 60).
        assert (held.status, held.attempts) == ("queued", 1)
        assert held.locked_until is not None
        assert held.locked_until <= seen + timedelta(seconds=3)
        assert tw.sent_messages() == []

        lease_ends = held.locked_until
        with delivery(services) as worker:
            worker.set_clock(lambda: lease_ends - timedelta(milliseconds=1))
            assert worker.run_once() == 0  # still leased to the dead worker
            worker.set_clock(lambda: lease_ends + timedelta(milliseconds=1))
            assert worker.run_once() == 1  # the lease ran out: picked up again
        with services.uow() as session:
            done = session.get(Message, queued.id)
            assert done is not None
        assert (done.status, done.attempts) == ("sent", 2)
        (sent,) = tw.sent_messages()
        assert sent["Body"] == held.body
        assert done.channel_message_id == sent["Sid"]
    finally:
        services.engine.dispose()


@pytest.mark.parametrize(
    ("value", "lease"),
    [("", LEASE), ("  ", LEASE), ("2", timedelta(seconds=2)), ("0.5", timedelta(seconds=0.5))],
)
def test_lease_from_env(value: str, lease: timedelta) -> None:
    assert lease_from_env({LEASE_ENV: value}) == lease
    assert lease_from_env({}) == LEASE


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_bad_lease_is_a_settings_error(value: str) -> None:
    with pytest.raises(SettingsError, match=LEASE_ENV):
        lease_from_env({LEASE_ENV: value})
