"""Running the delivery worker: senders built from settings, one long-lived event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from bot.app import Services
from bot.channels.telegram import make_bot
from bot.channels.twilio_sms import make_client
from bot.delivery import LEASE, DeliveryWorker
from bot.notify import run_webhook_worker
from bot.senders import Sender, TelegramSender, TwilioSender
from bot.settings import SettingsError
from dialogs.messages import Prompt
from storage.models import utcnow

log = logging.getLogger(__name__)

LEASE_ENV = "RAPORTO_WORKER_LEASE_SECONDS"
"""Optional: seconds a claimed outbox row stays with its worker (default 60). A worker killed
mid-send leaves its rows to others after this long; keep it above the longest send (15 s)."""


def lease_from_env(env: Mapping[str, str] | None = None) -> timedelta:
    """The outbox lease from RAPORTO_WORKER_LEASE_SECONDS, or the default."""
    raw = (os.environ if env is None else env).get(LEASE_ENV, "").strip()
    if not raw:
        return LEASE
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{LEASE_ENV} must be a number of seconds") from exc
    if not seconds > 0:
        raise SettingsError(f"{LEASE_ENV} must be more than 0")
    return timedelta(seconds=seconds)


@contextlib.asynccontextmanager
async def channel_senders(services: Services) -> AsyncIterator[dict[str, Sender]]:
    """The senders of every channel that has credentials, open for the loop's lifetime."""
    settings = services.settings
    senders: dict[str, Sender] = {}
    async with contextlib.AsyncExitStack() as stack:
        if settings.telegram_bot_token:
            bot = make_bot(settings.telegram_bot_token, settings.telegram_api_base_url)
            await stack.enter_async_context(bot)
            senders["telegram"] = TelegramSender(bot)
        if settings.twilio_enabled:
            client = make_client(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                settings.twilio_api_base_url,
            )
            session = getattr(client.http_client, "session", None)
            if session is not None:  # the pooled requests session: close its sockets at exit
                stack.callback(session.close)
            senders["sms"] = TwilioSender(
                client,
                from_number=settings.twilio_from_number,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                status_callback=settings.public_base_url + "/webhooks/twilio/status",
                media_base_url=settings.twilio_api_base_url,
            )
        yield senders


def channel_report(services: Services) -> list[str]:
    """One line per channel saying whether it is on, for start-up output."""
    settings = services.settings
    lines = []
    lines.append(
        "telegram: on"
        if settings.telegram_enabled
        else "telegram: off (set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET)"
    )
    lines.append(
        "sms: on"
        if settings.twilio_enabled
        else "sms: off (set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER "
        "or TWILIO_MESSAGING_SERVICE_SID)"
    )
    return lines


def make_worker(
    services: Services,
    senders: dict[str, Sender],
    *,
    clock: Callable[[], datetime] | None = None,
    lease: timedelta | None = None,
) -> DeliveryWorker:
    """A delivery worker wired to the app's database, renderer and storage folder.

    The lease is RAPORTO_WORKER_LEASE_SECONDS unless given; ``clock`` is for tests.
    """

    def render(
        prompt: Prompt, language: str, channel: str, plain: bool
    ) -> tuple[str, dict[str, object] | None]:
        rendered = services.renderer.render(prompt, language, channel, plain_letters=plain)
        return rendered.text, rendered.reply_markup

    return DeliveryWorker(
        services.uow,
        senders,
        storage_dir=services.settings.storage_dir,
        render_reminder=render,
        database_url=services.settings.database_url,
        clock=clock or utcnow,
        lease=lease if lease is not None else lease_from_env(),
    )


WORKER_THREADS = 32
"""Threads of the worker's event loop for blocking calls: database transactions, the two LISTEN
waits, SMS sends (the default, cores + 4, would queue them behind each other)."""


async def run_worker(services: Services, *, handle_signals: bool = True) -> None:
    """Run the delivery worker until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="raporto-worker")
    )
    stop = asyncio.Event()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    await deliver(services, stop)


async def deliver(services: Services, stop: asyncio.Event) -> None:
    """Send what the outboxes hold until ``stop`` is set: channel replies and outbound webhooks.

    `raporto worker`, `raporto up` and `raporto telegram poll` all run this.
    """
    async with channel_senders(services) as senders:
        worker = make_worker(services, senders)
        if not senders:
            log.warning("no channel has credentials: the worker only keeps house")
        # Outbound webhooks share this event loop (bot/notify.py).
        webhooks_stop = asyncio.Event()
        hooks = asyncio.create_task(
            run_webhook_worker(services.uow, services.settings, webhooks_stop)
        )
        hooks.add_done_callback(_report_crash)
        sending = asyncio.create_task(worker.run())
        stopped = asyncio.create_task(stop.wait())
        try:
            # Until asked to stop, or until the channel worker fails (its error is raised).
            await asyncio.wait({sending, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            worker.stop()
            webhooks_stop.set()
            stopped.cancel()
            with contextlib.suppress(Exception):  # already logged by _report_crash
                await hooks
            await sending


def _report_crash(task: asyncio.Task[None]) -> None:
    """Log a webhook worker that stopped with an error (the channel worker keeps going)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the webhook worker stopped", exc_info=task.exception())
