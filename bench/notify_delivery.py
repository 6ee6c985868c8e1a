"""Outbound webhook delivery: deliveries per second per worker, and draining a 100,000 backlog.

Everything runs as in production, each part in its own process: PostgreSQL (the
``raporto_bench_notify`` database, dropped and migrated at the start), one to two
``bot.notify.WebhookWorker`` processes (the real worker: lease + ``SKIP LOCKED`` claims, decrypting
event bodies, Standard Webhooks signatures, httpx with keep-alive, batched outcome writes), and a
local receiver on 127.0.0.1 written on raw asyncio so that it is not the bottleneck (it answers
204 and counts distinct ``webhook-id`` headers; it does not verify signatures, which the tests
do). The backlog is written straight into the outbox tables before the clock starts: encrypted
``complaint.submitted`` bodies of a realistic size, one delivery each, all due.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bench import RunOptions
from bench.report import machine_lines, now_utc

TITLE = "Outbound webhook delivery"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/raporto_bench_notify"
PG_URL = os.environ.get("BENCH_NOTIFY_DATABASE_URL", DEFAULT_PG_URL)
TARGET_RATE = 500.0  # deliveries per second per worker
TARGET_DRAIN_S = 300.0  # 100,000 backlog with two workers
HASH_KEY = "bench-hash-key"


@dataclass(frozen=True)
class Plan:
    """How many events each measurement sends."""

    rate_events: int
    backlog: int


FULL = Plan(rate_events=20_000, backlog=100_000)
QUICK = Plan(rate_events=2_000, backlog=4_000)


@dataclass(frozen=True)
class Drain:
    """One measured drain: how many events, workers, seconds, and what each worker did."""

    label: str
    events: int
    workers: int
    seconds: float
    per_worker: list[tuple[str, int, int, float]]  # name, delivered, failed, CPU seconds
    received: int  # distinct webhook-ids the receiver saw during this drain
    requests: int  # requests the receiver answered (redeliveries included)
    load_after: float  # 1-minute load average when the drain ended

    @property
    def rate(self) -> float:
        """Deliveries per second, all workers together."""
        return self.events / self.seconds

    @property
    def rate_per_worker(self) -> float:
        """Deliveries per second per worker."""
        return self.rate / self.workers


# --- the receiver: raw asyncio, its own process -----------------------------------------------


class _ReceiverProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: reads each request, answers 204, notes its id."""

    def __init__(self, ids: set[bytes], counter: list[int]) -> None:
        self.ids = ids
        self.counter = counter
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower() + b"\r\n"
            length = int(_header(head, b"content-length:") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.ids.add(_header(head, b"webhook-id:"))
            self.counter[0] += 1
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")


def _header(head: bytes, name: bytes) -> bytes:
    """The value of a header in a lower-cased head ending in CRLF ("" when absent)."""
    at = head.find(name)
    return head[at + len(name) : head.find(b"\r\n", at)].strip() if at >= 0 else b""


def _receiver_main(conn: Connection) -> None:
    """Serve until told to stop; report (distinct ids, requests) whenever asked."""

    async def main() -> None:
        ids: set[bytes] = set()
        counter = [0]
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _ReceiverProtocol(ids, counter), "127.0.0.1", 0, backlog=1024
        )
        conn.send(server.sockets[0].getsockname()[1])
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            conn.send((len(ids), counter[0]))
        server.close()

    asyncio.run(main())


# --- a worker process -------------------------------------------------------------------------


def _worker_main(
    url: str, keys: list[str], name: str, capacity: int, go: MpEvent, stop: MpEvent,
    ready: MpEvent, results: Any,
) -> None:  # fmt: skip
    """One webhook worker process: wait for "go", deliver until "stop", report."""
    from bot.notify import WebhookSender, WebhookWorker
    from storage import crypto
    from storage.db import UnitOfWork, make_engine, make_session_factory

    crypto.configure(crypto.KeyRing(keys, HASH_KEY))
    engine = make_engine(url)
    uow = UnitOfWork(make_session_factory(engine))

    async def main() -> None:
        async with WebhookSender(allow_private=True, max_connections=capacity) as sender:
            worker = WebhookWorker(
                uow, sender, name=name, capacity=capacity, database_url=url, poll_interval=0.2
            )
            ready.set()
            await asyncio.to_thread(go.wait)
            cpu = time.process_time()
            task = asyncio.create_task(worker.run())
            await asyncio.to_thread(stop.wait)
            worker.stop()
            await task
            results.put((name, worker.delivered, worker.failed, time.process_time() - cpu))

    asyncio.run(main())
    engine.dispose()


# --- set-up -----------------------------------------------------------------------------------


def prepare_postgres(url: str) -> str:
    """Create the benchmark database when missing, drop its schema, migrate; the version."""
    from storage import migrate

    parsed = make_url(url)
    database = parsed.database or ""
    if "bench" not in database:
        raise RuntimeError(f"refusing to drop the schema of '{database}'")
    params: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "connect_timeout": 5,
        "autocommit": True,
    }
    with psycopg.connect(dbname="postgres", **params) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if found.fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(dbname=database, **params) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
        row = conn.execute("SHOW server_version").fetchone()
    migrate.upgrade(url)
    return str(row[0]) if row else "unknown"


def _sample_body(event_id: str, now: datetime, n: int) -> str:
    """A complaint.submitted body of realistic size (about 1.6 KB)."""
    from bot.notify import SUBMITTED, envelope

    data = {
        "reference": f"RAE-{n:06d}",
        "status": "new",
        "priority": "P2",
        "priority_reasons": [
            {"code": "child_affected", "priority": "P2", "source": "answer",
             "text": "A child is affected."},
            {"code": "income_cut", "priority": "P2", "source": "answer",
             "text": "Income is at risk: the job may be lost soon."},
        ],
        "suggested_institutions": [
            {"name": "Ombudsperson Institution of Kosovo", "contact": None, "verified": True,
             "note": "Equality body under the Law on Protection from Discrimination (05/L-021)"},
            {"name": "Municipal Office for Communities and Return, Gjakovë", "contact": None,
             "verified": True, "note": None},
            {"name": "Municipal Human Rights Unit, Gjakovë", "contact": None, "verified": True,
             "note": None},
        ],
        "answers": {"danger_now": False, "area": "education", "ground": "ethnicity",
                    "ground_other": None, "perpetrator": "school", "municipality": "gjakove",
                    "municipality_name": "Gjakovë", "occurred": "this_month",
                    "stakes": ["child", "job"], "evidence_count": 0, "contact_preference": "this",
                    "legal_support": True, "sharing": "after_talk"},
        "description": "Mësuesja e uli djalin tim në fund të klasës bashkë me fëmijët e tjerë "
        "romë dhe nuk i jep libra. Kur u ankova, drejtori tha që kështu është rregulli.",
        "language": "sq",
        "channel": "sms",
        "campaign": None,
        "contact": {"preference": "this", "channel": "sms", "address": f"+38344{n:06d}"},
        "sharing": "after_talk",
        "submitted_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "updated_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }  # fmt: skip
    return envelope(SUBMITTED, event_id, now, data)


def fill_backlog(url: str, keys: list[str], receiver_url: str, count: int) -> int:
    """Empty the outbox, then write ``count`` due events with one delivery each; endpoint id."""
    from bot.notify import SUBMITTED, new_event_id, new_secret
    from storage import crypto
    from storage.db import UnitOfWork, make_engine, make_session_factory
    from storage.events import WebhookEndpoint, WebhookEvent

    crypto.configure(crypto.KeyRing(keys, HASH_KEY))
    engine = make_engine(url)
    uow = UnitOfWork(make_session_factory(engine))
    now = datetime.now(UTC) - timedelta(seconds=1)
    with uow() as session:
        session.execute(text("TRUNCATE webhook_delivery, webhook_event, webhook_endpoint "
                             "RESTART IDENTITY CASCADE"))  # fmt: skip
        endpoint = WebhookEndpoint(name="bench", url=receiver_url, secrets=[new_secret()],
                                   event_types=[SUBMITTED])  # fmt: skip
        session.add(endpoint)
        session.flush()
        endpoint_id = endpoint.id
    chunk = 5_000
    for start in range(0, count, chunk):
        rows = []
        for n in range(start, min(count, start + chunk)):
            event_id = new_event_id()
            rows.append({"event_id": event_id, "type": SUBMITTED, "legal": True,
                         "body": _sample_body(event_id, now, n), "created_at": now})  # fmt: skip
        with uow() as session:
            session.execute(insert(WebhookEvent), rows)
    with uow() as session:
        session.execute(
            text(
                "INSERT INTO webhook_delivery (event_id, endpoint_id, status, attempts, "
                "next_attempt_at, created_at) SELECT id, :endpoint, 'pending', 0, :now, :now "
                "FROM webhook_event"
            ),
            {"endpoint": endpoint_id, "now": now},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE webhook_event"))
        conn.execute(text("VACUUM ANALYZE webhook_delivery"))
    engine.dispose()
    return endpoint_id


def _pending(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhook_delivery WHERE status <> 'delivered'"
        ).fetchone()
        return int(row[0]) if row else 0


def drain(
    label: str, url: str, keys: list[str], receiver: Connection, port: int, events: int,
    workers: int, capacity: int,
) -> Drain:  # fmt: skip
    """Fill the outbox, start the workers, time from "go" until nothing is left."""
    fill_backlog(url, keys, f"http://127.0.0.1:{port}/hooks", events)
    receiver.send("count")
    ids_before, requests_before = receiver.recv()
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    results: Any = ctx.Queue()
    readies = [ctx.Event() for _ in range(workers)]
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(url, keys, f"w{n + 1}", capacity, go, stop, readies[n], results),
        )  # fmt: skip
        for n in range(workers)
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait(120)
    started = time.monotonic()
    go.set()
    while _pending(url):
        time.sleep(0.1)
    seconds = time.monotonic() - started
    stop.set()
    per_worker = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(60)
    receiver.send("count")
    ids_after, requests_after = receiver.recv()
    return Drain(label, events, workers, seconds, sorted(per_worker), ids_after - ids_before,
                 requests_after - requests_before, os.getloadavg()[0])  # fmt: skip


def measure_sender(port: int, count: int, capacity: int) -> float:
    """CPU milliseconds per request of WebhookSender alone (httpx and signing), no database."""
    from bot.notify import Target, WebhookSender, new_event_id, new_secret

    target = Target.of(1, "bench", f"http://127.0.0.1:{port}/hooks", [new_secret()])
    now = datetime.now(UTC)
    jobs = [(event_id, _sample_body(event_id, now, n))
            for n, event_id in enumerate(new_event_id() for _ in range(count))]  # fmt: skip

    async def main() -> float:
        async with WebhookSender(allow_private=True, max_connections=capacity) as sender:
            gate = asyncio.Semaphore(capacity)

            async def one(event_id: str, body: str) -> None:
                async with gate:
                    outcome = await sender.send(event_id, body, target, now)
                    if not outcome.ok:
                        raise RuntimeError(f"the receiver failed: {outcome.error}")

            await asyncio.gather(*(one(e, b) for e, b in jobs[:100]))  # warm-up
            cpu = time.process_time()
            await asyncio.gather(*(one(e, b) for e, b in jobs))
            return 1000 * (time.process_time() - cpu) / len(jobs)

    return asyncio.run(main())


# --- the section --------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    """How a target came out."""
    return "met" if ok else "**missed**"


def render(
    options: RunOptions, plan: Plan, version: str, runs: list[Drain], capacity: int,
    load: tuple[float, float, float], elapsed: float, sender_ms: float,
) -> str:  # fmt: skip
    """The Markdown section."""
    rate = runs[0]
    two = runs[-1]
    alone = [r for r in runs if r.workers == 1]
    met = [r.rate_per_worker >= TARGET_RATE for r in alone]
    if all(met):
        rate_verdict = "met"
    elif any(met):
        rate_verdict = f"met in {sum(met)} of {len(met)} one-worker runs (see the load column)"
    else:
        rate_verdict = "**missed**"
    lines = [
        f"## {TITLE}",
        "",
        f"Measured {now_utc()} with `{options.command}` (the section took {elapsed:.0f} s)"
        + (" — a QUICK smoke run, not numbers to publish." if options.quick else "."),
        "",
        *machine_lines(version),
        f"- Load average (1, 5, 15 min) when the run started: "
        f"{', '.join(f'{x:.2f}' for x in load)} (the machine is shared; other work running at "
        "the same time shows up in the numbers)",
        "",
        "### Targets",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
        f"| ≥ {TARGET_RATE:.0f} deliveries/s per worker | "
        + "; ".join(f"{r.rate_per_worker:.0f}/s ({r.events:,} events)" for r in alone)
        + f" | {rate_verdict} |",
        f"| {plan.backlog:,} backlog drained in < {TARGET_DRAIN_S / 60:.0f} min with two workers "
        f"| {two.seconds:.0f} s | {_verdict(two.seconds < TARGET_DRAIN_S)} |",
        "",
        "### All measurements",
        "",
        "| run | events | workers | drained in | deliveries/s | per worker | each worker: "
        "deliveries, CPU per delivery | distinct ids received | requests | load at the end |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for run in runs:
        cpu = ", ".join(
            f"{name} {d:,}, {1000 * c / max(d, 1):.2f} ms" for name, d, _f, c in run.per_worker
        )
        lines.append(
            f"| {run.label} | {run.events:,} | {run.workers} | {run.seconds:.1f} s | "
            f"{run.rate:.0f} | {run.rate_per_worker:.0f} | {cpu} | {run.received:,} | "
            f"{run.requests:,} | {run.load_after:.2f} |"
        )
    cpu_ms = [1000 * c / max(d, 1) for r in runs for _n, d, _f, c in r.per_worker]
    two_cores = sum(c for *_x, c in two.per_worker) / two.seconds
    lines += [
        "",
        "### Reading the numbers",
        "",
        f"- A worker spends {min(cpu_ms):.2f}–{max(cpu_ms):.2f} ms of CPU per delivery; "
        f"httpx alone (building, sending and reading one keep-alive request, with its "
        f"signature) takes {sender_ms:.2f} ms of it on this machine, measured on its own "
        "against the same receiver. The rest is the claim and outcome transactions, "
        "decrypting the body and the event loop. So one worker with a core to itself tops out "
        f"near {1000 / min(cpu_ms):.0f} deliveries/s; the steady-rate run measured "
        f"{rate.rate_per_worker:.0f}/s.",
        f"- This machine has {os.cpu_count()} cores for the workers, PostgreSQL and the "
        "receiver together (and whatever else runs on it: see the load column). While two "
        f"workers drained the backlog they used {two_cores:.2f} cores between them; whatever "
        "they did not get went to PostgreSQL, the receiver and other work. With more cores, "
        "or workers on their own machines, their rates add up.",
        f"- The {plan.backlog:,} backlog keeps each claim cheap: the claim walks a partial "
        "index of pending rows (`ix_webhook_delivery_due`) in order and stops after a batch. "
        "(Before that index, the planner sorted the whole backlog for each claim: 60 ms per "
        "claim and about 300/s for one worker.)",
    ]
    lines += [
        "",
        "### How it is measured",
        "",
        "- Each run empties the outbox, writes the events (encrypted `complaint.submitted` "
        "bodies of about 1.6 KB, one delivery each, all due), runs `VACUUM ANALYZE`, starts "
        "the worker processes and waits until each is connected, then starts the clock and "
        "polls every 0.1 s until no delivery is left undelivered. Filling is not timed.",
        f"- Each worker is `bot.notify.WebhookWorker.run()` in its own process with "
        f"capacity {capacity} (requests in flight) and an httpx pool of as many keep-alive "
        "connections; claims and outcome writes run in a thread beside the event loop.",
        "- The receiver is one raw-asyncio process that answers `204` at once; "
        '"distinct ids received" equal to the events shows every event arrived, '
        '"requests" above it would show redeliveries.',
        "- CPU per delivery is the worker process's user + system time while it ran (its "
        "database thread included) divided by what it delivered.",
        "- PostgreSQL is `BENCH_NOTIFY_DATABASE_URL` (default "
        "`postgresql+psycopg://postgres@127.0.0.1:5432/raporto_bench_notify`, created when "
        "missing, its schema dropped and migrated at the start); `BENCH_NOTIFY_CAPACITY` "
        "changes the requests in flight per worker (default 32).",
    ]
    return "\n".join(lines)


def run(options: RunOptions) -> str:
    """Measure and return the section."""
    started = time.monotonic()
    plan = QUICK if options.quick else FULL
    capacity = int(os.environ.get("BENCH_NOTIFY_CAPACITY", "32"))
    load = os.getloadavg()
    print("preparing PostgreSQL ...", flush=True)
    version = prepare_postgres(PG_URL)
    keys = [Fernet.generate_key().decode()]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    receiver = ctx.Process(target=_receiver_main, args=(child,), daemon=True)
    receiver.start()
    port = int(parent.recv())
    runs: list[Drain] = []
    try:
        print("httpx alone ...", flush=True)
        sender_ms = measure_sender(port, 1_000 if options.quick else 5_000, capacity)
        for label, events, workers in (
            ("one worker, steady rate", plan.rate_events, 1),
            ("backlog, one worker", plan.backlog, 1),
            ("backlog, two workers", plan.backlog, 2),
        ):
            print(f"{label}: {events:,} events ...", flush=True)
            result = drain(label, PG_URL, keys, parent, port, events, workers, capacity)
            print(f"  {result.seconds:.1f} s, {result.rate:.0f}/s", flush=True)
            runs.append(result)
    finally:
        parent.send("stop")
        receiver.join(10)
    elapsed = time.monotonic() - started
    return render(options, plan, version, runs, capacity, load, elapsed, sender_ms)
