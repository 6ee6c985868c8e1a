"""Running the delivery worker: senders built from settings, one long-lived event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from bot.app import Services
from bot.channels.telegram import make_bot
from bot.channels.twilio_sms import make_client
from bot.delivery import DeliveryWorker
from bot.senders import Sender, TelegramSender, TwilioSender
from dialogs.messages import Prompt

log = logging.getLogger(__name__)


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


def make_worker(services: Services, senders: dict[str, Sender]) -> DeliveryWorker:
    """A delivery worker wired to the app's database, renderer and storage folder."""

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
    )


async def run_worker(services: Services, *, handle_signals: bool = True) -> None:
    """Run the delivery worker until SIGTERM/SIGINT."""
    async with channel_senders(services) as senders:
        worker = make_worker(services, senders)
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, worker.stop)
        if not senders:
            log.warning("no channel has credentials: the worker only keeps house")
        await worker.run()
