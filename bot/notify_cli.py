"""``raporto webhooks …``: endpoints, failed deliveries, replays and test events.

Nothing here prints a payload or a stored secret; a secret is shown once, when it is made.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import click
from flask.cli import with_appcontext
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.app import services
from bot.notify import (
    EVENT_TYPES,
    RESERVED_NAMES,
    TEST,
    Target,
    WebhookSender,
    check_url,
    envelope,
    iso,
    new_event_id,
    new_secret,
    notify_webhooks,
    parse_secrets,
)
from storage.events import WebhookDelivery, WebhookEndpoint, WebhookEvent
from storage.models import utcnow


@click.group("webhooks")
def webhooks() -> None:
    """Outbound webhooks: endpoints, failed deliveries, replays."""


def _endpoint(session: Session, name: str) -> WebhookEndpoint:
    found = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.name == name)
    ).one_or_none()
    if found is None:
        raise click.ClickException(f"no endpoint named {name!r} (see: raporto webhooks list)")
    return found


def _when(moment: datetime | None) -> str:
    return iso(moment) if moment else "-"


@webhooks.command("new-secret")
def new_secret_command() -> None:
    """Print a new whsec_ signing secret (for NOTIFY_*_SECRET or --secret)."""
    click.echo(new_secret())


@webhooks.command("list")
@with_appcontext
def list_endpoints() -> None:
    """Every endpoint: state, events, and how many deliveries are pending, retrying, dead."""
    with services().uow() as session:
        counts = {
            row.endpoint_id: row
            for row in session.execute(
                select(
                    WebhookDelivery.endpoint_id,
                    func.count().filter(WebhookDelivery.status == "delivered").label("delivered"),
                    func.count().filter(WebhookDelivery.status == "pending").label("pending"),
                    func.count()
                    .filter((WebhookDelivery.status == "pending") & (WebhookDelivery.attempts > 0))
                    .label("retrying"),
                    func.count().filter(WebhookDelivery.status == "dead").label("dead"),
                ).group_by(WebhookDelivery.endpoint_id)
            )
        }
        endpoints = list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.name)))
        if not endpoints:
            click.echo("no endpoints (set NOTIFY_*_URL, or: raporto webhooks add NAME URL)")
            return
        for e in endpoints:
            c = counts.get(e.id)
            state = "enabled" if e.enabled else f"DISABLED ({e.disabled_reason or 'by staff'})"
            click.echo(f"{e.name}  {state}")
            click.echo(f"  url: {e.url}")
            click.echo(
                f"  events: {', '.join(e.event_types)}"
                + ("  (legal cases only)" if e.legal_only else "")
            )
            click.echo(f"  secrets: {len(e.secrets)}  source: {e.source}")
            click.echo(
                f"  delivered: {c.delivered if c else 0}  pending: {c.pending if c else 0}"
                f"  retrying: {c.retrying if c else 0}  dead: {c.dead if c else 0}"
            )


@webhooks.command("list-failed")
@click.option("--endpoint", "endpoint_name", help="Only this endpoint.")
@click.option("--retrying/--dead-only", default=True, show_default=True,
              help="Also show deliveries that failed and wait to be retried.")  # fmt: skip
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def list_failed(endpoint_name: str | None, retrying: bool, limit: int) -> None:
    """Dead-lettered deliveries (and those waiting to retry), newest first, without payloads."""
    with services().uow() as session:
        query = (
            select(WebhookDelivery, WebhookEvent.event_id, WebhookEvent.type, WebhookEndpoint.name)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .order_by(WebhookDelivery.last_attempt_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
        if retrying:
            query = query.where(
                (WebhookDelivery.status == "dead")
                | ((WebhookDelivery.status == "pending") & (WebhookDelivery.attempts > 0))
            )
        else:
            query = query.where(WebhookDelivery.status == "dead")
        if endpoint_name:
            query = query.where(WebhookEndpoint.name == endpoint_name)
        rows = session.execute(query).all()
        if not rows:
            click.echo("no failed deliveries")
            return
        for delivery, event_id, event_type, name in rows:
            nxt = "" if delivery.status == "dead" else f"  next: {_when(delivery.next_attempt_at)}"
            click.echo(
                f"{event_id}  {event_type}  → {name}  {delivery.status}  "
                f"attempts: {delivery.attempts}  last: {_when(delivery.last_attempt_at)}  "
                f"{delivery.last_error or ''}{nxt}"
            )


@webhooks.command("replay")
@click.argument("event_id", required=False)
@click.option("--endpoint", "endpoint_name", help="Only to this endpoint (added if missing).")
@click.option("--all-dead", is_flag=True, help="Every dead-lettered delivery (of --endpoint).")
@with_appcontext
def replay(event_id: str | None, endpoint_name: str | None, all_dead: bool) -> None:
    """Send an event again (same webhook-id), or every dead delivery with --all-dead."""
    if bool(event_id) == all_dead:
        raise click.UsageError("give an EVENT_ID or --all-dead")
    svc = services()
    now = utcnow()
    fresh = {"status": "pending", "attempts": 0, "next_attempt_at": now, "locked_until": None,
             "locked_by": None, "last_error": None, "last_status": None}  # fmt: skip
    with svc.uow() as session:
        endpoint = _endpoint(session, endpoint_name) if endpoint_name else None
        if all_dead:
            query = update(WebhookDelivery).where(WebhookDelivery.status == "dead")
            if endpoint is not None:
                query = query.where(WebhookDelivery.endpoint_id == endpoint.id)
            result = session.execute(query.values(**fresh))
            count = int(getattr(result, "rowcount", 0) or 0)
        else:
            event = session.scalars(
                select(WebhookEvent).where(WebhookEvent.event_id == event_id)
            ).one_or_none()
            if event is None:
                raise click.ClickException(f"no event {event_id} (it may be past retention)")
            deliveries = [
                d for d in event.deliveries if endpoint is None or d.endpoint_id == endpoint.id
            ]
            if endpoint is not None and not deliveries:
                delivery = WebhookDelivery(endpoint_id=endpoint.id, next_attempt_at=now)
                event.deliveries.append(delivery)
                deliveries = [delivery]
            for delivery in deliveries:
                for key, value in fresh.items():
                    setattr(delivery, key, value)
            count = len(deliveries)
        if count:
            notify_webhooks(session)
    click.echo(f"queued {count} deliver{'y' if count == 1 else 'ies'} again")


@webhooks.command("test")
@click.argument("name")
@with_appcontext
def test_endpoint(name: str) -> None:
    """Send a signed webhook.test event to an endpoint now and show the answer."""
    svc = services()
    with svc.uow() as session:
        endpoint = _endpoint(session, name)
        target = Target.of(endpoint.id, endpoint.name, endpoint.url, endpoint.secrets)
    now = utcnow()
    event_id = new_event_id()
    body = envelope(
        TEST, event_id, now, {"endpoint": name, "message": "A test event from Raporto."}
    )

    async def go() -> None:
        async with WebhookSender(allow_private=svc.settings.notify_allow_private) as sender:
            outcome = await sender.send(event_id, body, target, now)
        if outcome.ok:
            click.echo(f"{name}: delivered (HTTP {outcome.status}), webhook-id {event_id}")
        else:
            raise click.ClickException(f"{name}: failed: {outcome.error}")

    asyncio.run(go())


@webhooks.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--event", "events", multiple=True, type=click.Choice(EVENT_TYPES),
              help="An event to send (repeat); default all.")  # fmt: skip
@click.option("--legal-only", is_flag=True, help="Only events about legal-support cases.")
@click.option("--secret", help="A whsec_ secret the receiver already has; default a new one.")
@with_appcontext
def add(name: str, url: str, events: tuple[str, ...], legal_only: bool, secret: str | None) -> None:
    """Add an endpoint; the new secret is printed once (give it to the receiver)."""
    if name in RESERVED_NAMES:
        raise click.ClickException(f"{name!r} is configured by NOTIFY_* settings")
    svc = services()
    try:
        url = check_url(url, allow_private=svc.settings.notify_allow_private)
        found = parse_secrets(secret) if secret else [new_secret()]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    with svc.uow() as session:
        exists = session.scalars(
            select(WebhookEndpoint.id).where(WebhookEndpoint.name == name)
        ).first()
        if exists is not None:
            raise click.ClickException(f"an endpoint named {name!r} exists")
        session.add(
            WebhookEndpoint(
                name=name,
                url=url,
                secrets=found,
                event_types=list(events or EVENT_TYPES),
                legal_only=legal_only,
                source="cli",
            )
        )
    click.echo(f"added {name}: {', '.join(events or EVENT_TYPES)}")
    if not secret:
        click.echo(f"signing secret (shown once): {found[0]}")


@webhooks.command("remove")
@click.argument("name")
@click.confirmation_option(prompt="Remove the endpoint and its delivery history?")
@with_appcontext
def remove(name: str) -> None:
    """Remove an endpoint and its deliveries (events stay for the others)."""
    with services().uow() as session:
        endpoint = _endpoint(session, name)
        session.delete(endpoint)
    note = ""
    if name in RESERVED_NAMES:
        note = " (it comes back at start-up while its NOTIFY_*_URL is set)"
    click.echo(f"removed {name}{note}")


def _set_enabled(name: str, enabled: bool) -> None:
    with services().uow() as session:
        endpoint = _endpoint(session, name)
        endpoint.enabled = enabled
        endpoint.disabled_reason = None if enabled else "disabled by staff"
        endpoint.updated_at = utcnow()
        if enabled:
            notify_webhooks(session)


@webhooks.command("disable")
@click.argument("name")
@with_appcontext
def disable(name: str) -> None:
    """Stop delivering to an endpoint; new events are not queued for it while disabled."""
    _set_enabled(name, False)
    click.echo(f"disabled {name}")


@webhooks.command("enable")
@click.argument("name")
@with_appcontext
def enable(name: str) -> None:
    """Deliver to an endpoint again (its queued deliveries resume)."""
    _set_enabled(name, True)
    click.echo(f"enabled {name}")


@webhooks.command("rotate-secret")
@click.argument("name")
@click.option("--secret", help="The new whsec_ secret; default a new one.")
@with_appcontext
def rotate_secret(name: str, secret: str | None) -> None:
    """Sign with a new secret beside the current one until drop-old-secret."""
    if name in RESERVED_NAMES:
        raise click.ClickException(
            "set the endpoint's NOTIFY_*_SECRET to 'NEW OLD' and restart instead"
        )
    try:
        fresh = parse_secrets(secret)[0] if secret else new_secret()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    with services().uow() as session:
        endpoint = _endpoint(session, name)
        endpoint.secrets = [fresh, endpoint.secrets[0]]
        endpoint.updated_at = utcnow()
    click.echo(f"{name} now signs with two secrets; the new one (shown once): {fresh}")
    click.echo(f"once the receiver uses it: raporto webhooks drop-old-secret {name}")


@webhooks.command("drop-old-secret")
@click.argument("name")
@with_appcontext
def drop_old_secret(name: str) -> None:
    """Sign with the newest secret only."""
    with services().uow() as session:
        endpoint = _endpoint(session, name)
        endpoint.secrets = endpoint.secrets[:1]
        endpoint.updated_at = utcnow()
    click.echo(f"{name} signs with one secret")
