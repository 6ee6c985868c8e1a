"""getUpdates mode for pilots without a public HTTPS address: the same pipeline as webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from telegram import Bot, Update
from telegram.error import NetworkError, RetryAfter, TelegramError

from bot.app import Services
from bot.channels.telegram import ALLOWED_UPDATES, make_bot, parse_update
from bot.worker import deliver

log = logging.getLogger(__name__)

POLL_TIMEOUT = 20
"""Seconds a getUpdates long poll waits for news (a stop request does not wait for it)."""


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _fetch(bot: Bot, offset: int | None, stop: asyncio.Event) -> tuple[Update, ...] | None:
    """One long poll; None when ``stop`` was set first (the poll is cancelled, not awaited out).

    Cancelling loses nothing: updates are confirmed only by the next call's ``offset``.
    """
    fetch = asyncio.ensure_future(
        bot.get_updates(offset=offset, timeout=POLL_TIMEOUT, allowed_updates=list(ALLOWED_UPDATES))
    )
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (fetch, stopped):
            task.cancel()
        # Let both finish; a cancellation of this coroutine itself still propagates.
        await asyncio.gather(fetch, stopped, return_exceptions=True)
    if fetch.cancelled():
        return None
    return fetch.result()


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
        # Replies on every configured channel and the outbound webhooks, as `raporto worker`.
        delivery_stop = asyncio.Event()
        delivery = asyncio.create_task(deliver(services, delivery_stop)) if with_worker else None
        offset: int | None = None
        try:
            while not stop.is_set():
                try:
                    updates = await _fetch(bot, offset, stop)
                except RetryAfter:
                    await _pause(stop, 5)
                    continue
                except NetworkError:
                    await _pause(stop, 2)
                    continue
                except TelegramError:
                    log.exception("getUpdates failed")
                    await _pause(stop, 5)
                    continue
                for update in updates or ():
                    parsed = parse_update(update.to_dict())
                    if parsed is not None:
                        try:
                            await asyncio.to_thread(
                                services.intake.handle,
                                parsed.inbound,
                                callback_query_id=parsed.callback_query_id,
                                chat_message_id=parsed.chat_message_id,
                            )
                        except Exception:  # noqa: BLE001 - e.g. the database restarting
                            # Not confirmed: the next getUpdates starts again at this update
                            # (as Telegram redelivers a webhook answered with 5xx).
                            log.exception("handling update %s failed", update.update_id)
                            offset = update.update_id
                            await _pause(stop, 2)
                            break
                    offset = update.update_id + 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            if delivery is not None:
                delivery_stop.set()
                await delivery
