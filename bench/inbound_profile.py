"""Where the time goes in the inbound load benchmark: py-spy on a live gunicorn worker.

Only with ``python -m bench inbound --profile`` and when ``py-spy`` is installed (it is not a
dependency of the project: ``.venv/bin/pip install py-spy``). It samples running processes
from outside, so the code runs as in production; the profile comes from a run of its own, so
the published figures are never taken with a profiler attached.

Samples are py-spy's "active" ones: a thread blocked in psycopg's wait for the server still
counts (py-spy cannot tell it is idle), which is what we want here: it shows how much of a
request is spent waiting for PostgreSQL.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# (label, function, file) — a sample counts for a label when any frame of its stack matches.
WEB_PARTS: tuple[tuple[str, str, str], ...] = (
    ("whole request in Flask (`Flask.wsgi_app`)", "Flask.wsgi_app", "flask/app.py"),
    ("`IntakeService.handle` (one unit of work)", "IntakeService.handle", "bot/intake.py"),
    ("  waiting for PostgreSQL (psycopg `Connection.wait`)", "Connection.wait", "psycopg/"),
    ("  pool check-out (`_ConnectionFairy._checkout`)", "_ConnectionFairy._checkout", "pool/"),
    (
        "  contact and conversation loaded, inbound logged (`IntakeStore.arrive`)",
        "IntakeStore.arrive",
        "storage/",
    ),
    ("  DELETE of pending 'got it' (`drop_pending`)", "IntakeStore.drop_pending", "storage/"),
    ("  dialog engine step (`complaint_dialog.step`)", "step", "dialogs/complaint_dialog.py"),
    ("    of which transitions `Machine.add_model`", "Machine.add_model", "transitions/"),
    ("  render each reply (`_queue`)", "IntakeService._queue", "bot/intake.py"),
    (
        "  replies, conversation, NOTIFY written together (`IntakeStore.write`)",
        "IntakeStore.write",
        "storage/",
    ),
    ("  COMMIT (`RootTransaction.commit`)", "RootTransaction.commit", "sqlalchemy/engine/"),
    (
        "  Fernet encrypt (`EncryptedText`/`EncryptedJSON` bind)",
        "MultiFernet.encrypt",
        "cryptography/",
    ),
    (
        "campaign keywords (read once per 5 s, cached)",
        "CampaignRepository.keywords",
        "storage/",
    ),
    ("Telegram `Update.de_json` (`parse_update`)", "parse_update", "bot/channels/telegram.py"),
    ("Twilio signature and form (`_signed_form`)", "_signed_form", "webhooks/twilio.py"),
    ("SQLAlchemy ORM flush (`Session._flush`), any step", "Session._flush", "sqlalchemy/orm/"),
)

WORKER_PARTS: tuple[tuple[str, str, str], ...] = (
    ("claim a batch (`DeliveryWorker.claim`)", "DeliveryWorker.claim", "bot/delivery.py"),
    (
        "record outcomes, a few milliseconds' worth per transaction (`record_outcomes`)",
        "DeliveryWorker.record_outcomes",
        "bot/delivery.py",
    ),
    (
        "Twilio REST call (`TwilioSender._create`, requests)",
        "TwilioSender._create",
        "bot/senders.py",
    ),
    ("Telegram call (`TelegramSender.send`, PTB + httpx)", "TelegramSender.send", "bot/senders.py"),
    ("waiting for PostgreSQL (psycopg `Connection.wait`)", "Connection.wait", "psycopg/"),
    ("LISTEN wait for NOTIFY (`Listener.wait`)", "Listener.wait", "bot/delivery.py"),
    ("housekeeping", "DeliveryWorker.housekeeping", "bot/delivery.py"),
    ("asyncio event loop (`BaseEventLoop._run_once`)", "BaseEventLoop._run_once", "asyncio/"),
)


def py_spy() -> str | None:
    """The py-spy executable, when installed in the venv or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


@dataclass
class Recording:
    """A py-spy recording in progress."""

    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def start(cls, pid: int, seconds: float, out: Path, rate: int = 200) -> Recording | None:
        """Sample ``pid`` for ``seconds`` (None when py-spy is not installed)."""
        exe = py_spy()
        if exe is None:
            return None
        cmd = [exe, "record", "-p", str(pid), "-d", str(max(1, round(seconds)))]
        cmd += ["-r", str(rate), "-f", "raw", "-o", str(out), "--nonblocking"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return cls(proc, out)

    def stacks(self, timeout: float = 60) -> Counter[tuple[str, ...]]:
        """Wait for the recording and return its stacks (outermost frame first) with counts."""
        self.proc.wait(timeout=timeout)
        found: Counter[tuple[str, ...]] = Counter()
        if not self.out.exists():
            return found
        for line in self.out.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                found[tuple(stack.split(";"))] += int(count)
        return found


def _matches(frame: str, function: str, file_hint: str) -> bool:
    name, _, where = frame.partition(" (")
    return name == function and file_hint in where


def shares(
    stacks: Counter[tuple[str, ...]], parts: tuple[tuple[str, str, str], ...]
) -> list[tuple[str, float]]:
    """For each part, the share of all samples whose stack passes through it."""
    total = sum(stacks.values())
    if not total:
        return []
    out = []
    for label, function, hint in parts:
        hits = sum(
            n for stack, n in stacks.items() if any(_matches(f, function, hint) for f in stack)
        )
        out.append((label, hits / total))
    return out


def top_self(stacks: Counter[tuple[str, ...]], n: int = 12) -> list[tuple[str, float]]:
    """The functions most often on top of the stack (self time)."""
    total = sum(stacks.values()) or 1
    tops: Counter[str] = Counter()
    for stack, count in stacks.items():
        tops[stack[-1]] += count
    return [(frame, count / total) for frame, count in tops.most_common(n)]
