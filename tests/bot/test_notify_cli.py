"""``raporto webhooks``: endpoints, failed deliveries, replays and test events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select, update

from bot.app import Services, create_app
from bot.cli import cli
from bot.notify import WebhookSender, WebhookWorker, new_secret, parse_secrets
from bot.notify_cli import webhooks
from storage.events import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.conftest import make_settings
from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from tests.helpers import FULL_REPORT, say


@pytest.fixture
def desk_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app with private targets allowed (the receivers run on 127.0.0.1)."""
    flask_app = create_app(make_settings(database_url, tmp_path, notify_allow_private=True))
    yield flask_app
    flask_app.extensions["raporto"].engine.dispose()


def run(app: Flask, *args: str, input: str | None = None) -> Result:  # noqa: A002
    return app.test_cli_runner().invoke(webhooks, list(args), input=input)


def services_of(app: Flask) -> Services:
    found: Services = app.extensions["raporto"]
    return found


def add_receiver(app: Flask, receiver: WebhookReceiver, name: str = "desk", *extra: str) -> None:
    result = run(app, "add", name, receiver.url, "--secret", receiver.secrets[0], *extra)
    assert result.exit_code == 0, result.output


def test_the_group_is_registered_on_the_raporto_command() -> None:
    assert cli.commands["webhooks"] is webhooks


def test_new_secret_is_a_valid_whsec_secret(desk_app: Flask) -> None:
    result = run(desk_app, "new-secret")
    assert result.exit_code == 0
    assert parse_secrets(result.output.strip())


def test_add_list_disable_enable_remove(desk_app: Flask) -> None:
    with WebhookReceiver(new_secret()) as receiver:
        result = run(desk_app, "add", "ngo", receiver.url, "--event", "complaint.submitted",
                     "--legal-only")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "signing secret (shown once): whsec_" in result.output
        listed = run(desk_app, "list").output
        assert "ngo  enabled" in listed
        assert "events: complaint.submitted  (legal cases only)" in listed
        assert "whsec_" not in listed  # secrets are never listed
        assert run(desk_app, "add", "ngo", receiver.url).exit_code != 0  # name taken
        assert "DISABLED (disabled by staff)" in (
            run(desk_app, "disable", "ngo").output + run(desk_app, "list").output
        )
        run(desk_app, "enable", "ngo")
        assert "ngo  enabled" in run(desk_app, "list").output
        assert run(desk_app, "remove", "ngo", "--yes").exit_code == 0
        assert "no endpoints" in run(desk_app, "list").output


def test_add_refuses_reserved_names_bad_urls_and_bad_secrets(desk_app: Flask) -> None:
    for args, message in (
        (["prioritisation", "https://hooks.example.org/"], "NOTIFY_* settings"),
        (["x", "ftp://hooks.example.org/"], "must start with https://"),
        (["x", "https://hooks.example.org/", "--secret", "nope"], "whsec_"),
    ):
        result = run(desk_app, "add", *args)
        assert result.exit_code != 0
        assert message in result.output


def test_add_refuses_private_targets_in_production_set_ups(sqlite_only_url: str,
                                                           tmp_path: Path) -> None:  # fmt: skip
    app = create_app(make_settings(sqlite_only_url, tmp_path))
    try:
        result = run(app, "add", "x", "https://192.168.1.10/hooks")
        assert result.exit_code != 0
        assert "private, loopback or link-local" in result.output
    finally:
        services_of(app).engine.dispose()


def test_test_sends_a_signed_test_event(desk_app: Flask) -> None:
    with WebhookReceiver(new_secret()) as receiver:
        add_receiver(desk_app, receiver)
        result = run(desk_app, "test", "desk")
        assert result.exit_code == 0, result.output
        assert "delivered (HTTP 204)" in result.output
        [received] = receiver.accepted("webhook.test")
        assert received.payload["data"]["endpoint"] == "desk"
        receiver.answer_always(Answer(500))
        failed = run(desk_app, "test", "desk")
        assert failed.exit_code != 0
        assert "failed: HTTP 500" in failed.output
    assert run(desk_app, "test", "nobody").exit_code != 0


def _submit_and_kill(app: Flask) -> str:
    """A complaint whose delivery to 'desk' is dead-lettered; its event id."""
    services = services_of(app)
    for text in [*FULL_REPORT, "1"]:
        say(services, text)
    with services.uow() as session:
        session.execute(
            update(WebhookDelivery).values(status="dead", attempts=10, last_error="HTTP 500")
        )
        return session.scalars(
            select(WebhookEvent.event_id).where(WebhookEvent.type == "complaint.submitted")
        ).one()


def _drain(app: Flask) -> int:
    async def go() -> int:
        async with WebhookSender(allow_private=True) as sender:
            return await WebhookWorker(services_of(app).uow, sender).drain()

    return asyncio.run(go())


def test_list_failed_and_replay_an_event(desk_app: Flask) -> None:
    with WebhookReceiver(new_secret()) as receiver:
        add_receiver(desk_app, receiver)
        event_id = _submit_and_kill(desk_app)
        failed = run(desk_app, "list-failed").output
        assert event_id in failed
        assert "complaint.submitted  → desk  dead  attempts: 10" in failed
        assert "HTTP 500" in failed
        assert "back of the class" not in failed  # no payloads
        assert run(desk_app, "list-failed", "--endpoint", "other").output.strip() == (
            "no failed deliveries"
        )
        result = run(desk_app, "replay", event_id)
        assert result.output.strip() == "queued 1 delivery again"
        _drain(desk_app)
        [received] = receiver.accepted("complaint.submitted")
        assert received.webhook_id == event_id  # the same id as the first time
        assert event_id not in run(desk_app, "list-failed").output


def test_replay_all_dead_and_to_a_new_endpoint(desk_app: Flask) -> None:
    with WebhookReceiver(new_secret()) as first, WebhookReceiver(new_secret()) as second:
        add_receiver(desk_app, first)
        event_id = _submit_and_kill(desk_app)
        assert run(desk_app, "replay", "--all-dead").output.strip() == "queued 2 deliveries again"
        add_receiver(desk_app, second, "late")
        result = run(desk_app, "replay", event_id, "--endpoint", "late")
        assert result.output.strip() == "queued 1 delivery again"
        _drain(desk_app)
        assert len(first.accepted()) == 2  # complaint.submitted and legal_support.requested
        assert [r.webhook_id for r in second.accepted()] == [event_id]
    assert run(desk_app, "replay").exit_code != 0
    assert run(desk_app, "replay", "evt_unknown").exit_code != 0


def test_rotate_and_drop_old_secret(desk_app: Flask) -> None:
    old = new_secret()
    with WebhookReceiver(old) as receiver:
        add_receiver(desk_app, receiver)
        result = run(desk_app, "rotate-secret", "desk")
        assert result.exit_code == 0
        new = result.output.split("(shown once): ")[1].split()[0]
        with services_of(desk_app).uow() as session:
            endpoint = session.scalars(select(WebhookEndpoint)).one()
            assert endpoint.secrets == [new, old]
        assert run(desk_app, "test", "desk").exit_code == 0  # the old secret still verifies
    with WebhookReceiver(new) as receiver:
        with services_of(desk_app).uow() as session:
            session.execute(update(WebhookEndpoint).values(url=receiver.url))
        run(desk_app, "drop-old-secret", "desk")
        assert run(desk_app, "test", "desk").exit_code == 0
        assert receiver.received()[0].signature is not None
        assert len(receiver.received()[0].signature.split(" ")) == 1
    assert "NOTIFY_*_SECRET" in run(desk_app, "rotate-secret", "legal").output
