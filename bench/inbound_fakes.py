"""The fake Telegram and Twilio APIs of the inbound load benchmark, in a process of their own.

``python -m bench.inbound_fakes OUT.json`` starts ``FakeTelegramAPI`` and ``FakeTwilioAPI``
(tests/fakes/) on free ports, prints one JSON line with their base URLs, and serves until its
standard input closes (or says ``stop``). It then writes every send call it received to
``OUT.json``: the API, the method, the recipient and the arrival time (``time.monotonic()``,
which on Linux is one clock for every process, so it compares with the load generator's).

A process of its own so the fakes' request threads do not share a GIL with the load generator.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilioAPI

TELEGRAM_TOKEN = DEFAULT_TOKEN
TWILIO_ACCOUNT_SID = DEFAULT_ACCOUNT_SID
TWILIO_AUTH_TOKEN = DEFAULT_AUTH_TOKEN

SEND_METHODS = frozenset({"sendMessage", "answerCallbackQuery"})


def send_calls(telegram: FakeTelegramAPI, twilio: FakeTwilioAPI) -> list[dict[str, Any]]:
    """Every successful send call, as plain records."""
    calls: list[dict[str, Any]] = []
    for call in telegram.calls():
        if call.method not in SEND_METHODS or not call.ok:
            continue
        calls.append(
            {
                "api": "telegram",
                "method": call.method,
                "to": str(call.params.get("chat_id", "")),
                "callback_query_id": str(call.params.get("callback_query_id", "")),
                "t": call.raw.received_at,
            }
        )
    for req in twilio.requests():
        if req.method == "POST" and req.path.endswith("/Messages.json"):
            calls.append(
                {
                    "api": "twilio",
                    "method": "Messages.create",
                    "to": req.params.get("To", ""),
                    "callback_query_id": "",
                    "t": req.raw.received_at,
                }
            )
    return calls


def main(argv: list[str]) -> int:
    """Serve until stdin closes, then write the send calls to the file named in argv."""
    out = Path(argv[0])
    telegram = FakeTelegramAPI(TELEGRAM_TOKEN).start()
    twilio = FakeTwilioAPI(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN).start()
    print(json.dumps({"telegram": telegram.base_url, "twilio": twilio.base_url}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
    finally:
        calls = send_calls(telegram, twilio)
        telegram.stop()
        twilio.stop()
        out.write_text(json.dumps(calls), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
