"""The ``raporto`` command: Flask's CLI group with the project's own commands."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid

import click
from cryptography.fernet import Fernet
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import Table, select

from bot.app import create_app, services
from bot.channels.telegram import ALLOWED_UPDATES, make_bot
from bot.i18n_tools import i18n
from bot.notify_cli import webhooks
from bot.purge import purge as purge_cases
from bot.sms_report import MAX_SEGMENTS, sms_report
from bot.telegram_poll import poll_updates
from bot.worker import channel_report, run_worker
from dialogs.messages import Inbound
from staff.cli import staff as staff_cli
from storage import migrate
from storage.crypto import keyring
from storage.models import ENCRYPTED_COLUMNS


def _create_app() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def cli() -> None:
    """Raporto: discrimination complaint intake over Telegram and SMS."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema."""
    migrate.upgrade(services().settings.database_url, revision)
    click.echo("database is at " + revision)


@db.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Migrate the database schema down to REVISION."""
    migrate.downgrade(services().settings.database_url, revision)


@cli.group()
def keys() -> None:
    """Encryption keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key (put it first in RAPORTO_ENCRYPTION_KEYS to start using it)."""
    click.echo(Fernet.generate_key().decode())


@keys.command("rotate")
@click.option("--batch", default=500, show_default=True, help="Rows per transaction.")
@with_appcontext
def keys_rotate(batch: int) -> None:
    """Re-encrypt every personal-data column under the newest key."""
    ring = keyring()
    total = 0
    for model, columns in ENCRYPTED_COLUMNS.items():
        table = model.__table__
        if not isinstance(table, Table):  # pragma: no cover - every model maps a Table
            raise click.ClickException(f"{model.__name__} has no table")
        pk = table.c.id
        last = 0
        while True:
            with services().uow() as session:
                rows = session.execute(
                    select(pk, *[table.c[c] for c in columns])
                    .where(pk > last)
                    .order_by(pk)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                for row in rows:
                    values = {
                        c: ring.rotate(row[i + 1])
                        for i, c in enumerate(columns)
                        if row[i + 1] is not None
                    }
                    if values:
                        session.execute(table.update().where(pk == row[0]).values(**values))
                        total += 1
                last = rows[-1][0]
    click.echo(f"re-encrypted {total} rows under the newest key")


@cli.command("chat")
@click.option("--channel", type=click.Choice(["sms", "telegram"]), default="sms", show_default=True)
@click.option("--user", default="local", show_default=True, help="Who you are, to resume later.")
@with_appcontext
def chat(channel: str, user: str) -> None:
    """Talk to the bot in the terminal, as a complainant would on SMS or Telegram."""
    intake = services().intake
    sender = f"terminal:{user}"
    click.echo(
        f"Raporto chat ({channel} look). What you create is marked as test data. "
        "Type your answers; Ctrl-D to leave.\n"
    )
    first = True
    while True:
        if first:
            text = "hi"
            first = False
        else:
            try:
                text = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
            except (EOFError, click.Abort):
                click.echo()
                return
        inbound = Inbound(channel=channel, sender=sender, message_id=uuid.uuid4().hex, text=text)
        result = intake.handle(inbound, is_test=True)
        for reply in result.replies:
            click.echo(_show(reply.rendered.text, reply.rendered.reply_markup, channel))
        if result.complaint_reference:
            click.secho(f"(stored complaint {result.complaint_reference})", dim=True)
        sys.stdout.flush()


def _show(text: str, markup: dict[str, object] | None, channel: str) -> str:
    """A reply as the person would see it; Telegram buttons as bracketed, numbered choices."""
    lines = [f"bot> {text}"]
    rows = markup.get("inline_keyboard") if markup else None
    if isinstance(rows, list):
        for row in rows:
            lines.append("     " + "  ".join(f"[{button['text']}]" for button in row))
    return "\n".join(lines) + "\n"


@cli.command("purge")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=0),
    default=None,
    help="Retention period in days (default: RAPORTO_RETENTION_DAYS, 365).",
)
@with_appcontext
def purge(older_than_days: int | None) -> None:
    """Erase descriptions, message bodies and evidence of cases closed longer than the period."""
    from staff import audit

    svc = services()
    days = svc.settings.retention_days if older_than_days is None else older_than_days
    with svc.uow() as session:
        counts = purge_cases(session, older_than_days=days, storage_dir=svc.settings.storage_dir)
        audit.record(
            session,
            "retention.purge",
            email="cli",
            detail={"older_than_days": days, **counts.as_dict()},
        )
    click.echo(
        f"purged cases closed or withdrawn over {days} days ago: "
        f"{counts.complaints} complaints, {counts.messages} message bodies, "
        f"{counts.attachments} attachments ({counts.files} files deleted)"
    )


@cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run(host: str, port: int) -> None:
    """Serve the web app (webhooks, health, desk) on HOST:PORT, threaded, without reloader."""
    from flask import current_app
    from werkzeug.serving import run_simple

    _announce(port)
    run_simple(host, port, current_app._get_current_object(), threaded=True)  # type: ignore[attr-defined]


@cli.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def up(host: str, port: int) -> None:
    """Web and delivery worker together in one process (what `make run` starts)."""
    from flask import current_app
    from werkzeug.serving import run_simple

    svc = services()
    thread = threading.Thread(
        target=lambda: asyncio.run(run_worker(svc, handle_signals=False)),
        name="delivery-worker",
        daemon=True,
    )
    thread.start()
    _announce(port)
    click.echo("  delivery worker: running in this process")
    run_simple(host, port, current_app._get_current_object(), threaded=True)  # type: ignore[attr-defined]


@cli.command("worker")
@with_appcontext
def worker() -> None:
    """Send what the outbox holds, fetch evidence, remind and expire drafts (until SIGTERM)."""
    svc = services()
    for line in channel_report(svc):
        click.echo(line)
    asyncio.run(run_worker(svc))


@cli.group()
def telegram() -> None:
    """Telegram set-up."""


@telegram.command("set-webhook")
@with_appcontext
def telegram_set_webhook() -> None:
    """Point Telegram at PUBLIC_BASE_URL/webhooks/telegram, with the secret, for used updates."""
    settings = services().settings
    if not settings.telegram_enabled:
        raise click.ClickException("set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET first")
    url = settings.public_base_url + "/webhooks/telegram"

    async def go() -> None:
        async with make_bot(settings.telegram_bot_token, settings.telegram_api_base_url) as bot:
            await bot.set_webhook(
                url,
                secret_token=settings.telegram_webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
                max_connections=40,
            )

    asyncio.run(go())
    click.echo(f"webhook set to {url} for {', '.join(ALLOWED_UPDATES)}")


@telegram.command("poll")
@click.option("--worker/--no-worker", "with_worker", default=True, show_default=True)
@with_appcontext
def telegram_poll(with_worker: bool) -> None:
    """Fetch updates with getUpdates (pilots without public HTTPS); never in the web process."""
    svc = services()
    settings = svc.settings
    if not settings.telegram_bot_token:
        raise click.ClickException("set TELEGRAM_BOT_TOKEN first")
    click.echo("polling Telegram for updates; Ctrl-C to stop")
    asyncio.run(poll_updates(svc, with_worker=with_worker))


@i18n.command("sms-report")
def i18n_sms_report() -> None:
    """Every SMS prompt in every language: length, encoding, segments; fails over 3 segments."""
    rows = sms_report()
    click.echo(f"{'lang':8} {'enc':5} {'chars':>5} {'units':>5} {'seg':>3} {'plain':>5}  prompt")
    for row in rows:
        flag = "  <-- over 3 segments" if row.over_budget else ""
        click.echo(
            f"{row.language:8} {row.encoding:5} {row.characters:5} {row.units:5} "
            f"{row.segments:3} {row.plain_segments:5}  {row.name}{flag}"
        )
    over = [r for r in rows if r.over_budget]
    click.echo(f"{len(rows)} prompts measured, {len(over)} over {MAX_SEGMENTS} segments")
    if over:
        raise SystemExit(1)


cli.add_command(i18n)
cli.add_command(staff_cli)
cli.add_command(webhooks)


def _announce(port: int) -> None:
    settings = services().settings
    click.echo(f"Raporto is running on http://127.0.0.1:{port}  (health: /healthz)")
    click.echo(f"  database: {_safe_url(settings.database_url)}")
    for line in channel_report(services()):
        click.echo("  " + line)
    click.echo("  Try the bot in another terminal, as a complainant would:")
    click.echo("    .venv/bin/raporto chat --channel sms")
    click.echo("    .venv/bin/raporto chat --channel telegram")


def _safe_url(url: str) -> str:
    """A database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Entry point of the ``raporto`` console script."""
    cli.main(prog_name="raporto")
