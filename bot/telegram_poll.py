"""getUpdates mode for pilots without a public HTTPS address: the same pipeline as webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from telegram.error import NetworkError, RetryAfter, TelegramError

from bot.app import Services
from bot.channels.telegram import ALLOWED_UPDATES, make_bot, parse_update
from bot.senders import TelegramSender
from bot.worker import make_worker

log = logging.getLogger(__name__)


async def poll_updates(
    services: Services, *, with_worker: bool = True, stop: asyncio.Event | None = None
) -> None:
    """Fetch updates and hand each to the intake service; optionally deliver replies too."""
    settings = services.settings
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    async with make_bot(settings.telegram_bot_token, settings.telegram_api_base_url) as bot:
        await bot.delete_webhook(drop_pending_updates=False)
        worker = make_worker(services, {"telegram": TelegramSender(bot)}) if with_worker else None
        worker_task = asyncio.create_task(worker.run()) if worker else None
        offset: int | None = None
        try:
            while not stop.is_set():
                try:
                    updates = await bot.get_updates(
                        offset=offset, timeout=20, allowed_updates=list(ALLOWED_UPDATES)
                    )
                except RetryAfter:
                    await asyncio.sleep(5)
                    continue
                except NetworkError:
                    await asyncio.sleep(2)
                    continue
                except TelegramError:
                    log.exception("getUpdates failed")
                    await asyncio.sleep(5)
                    continue
                for update in updates:
                    offset = update.update_id + 1
                    data = update.to_dict()
                    parsed = parse_update(data)
                    if parsed is None:
                        continue
                    await asyncio.to_thread(
                        services.intake.handle,
                        parsed.inbound,
                        callback_query_id=parsed.callback_query_id,
                        chat_message_id=parsed.chat_message_id,
                    )
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
