"""The two inbound webhooks under gunicorn, loaded by many people having signed conversations.

For SQLite and for PostgreSQL, on one gunicorn set-up and one load generator:

1. ceilings (``bench/inbound_ceiling_app.py``): a bare Flask endpoint that only returns 200, and
   one that stores the raw body durably (one INSERT and COMMIT) in the same database;
2. the real app (``bot.wsgi:app``) on ``/webhooks/telegram`` and ``/webhooks/twilio/sms`` with
   the delivery worker (``raporto worker``) sending the replies to the fake Telegram and Twilio
   APIs of tests/fakes/ (``bench/inbound_fakes.py``), as fast as people can send (closed loop),
   and at a paced rate (people who pause between messages);

measuring messages per second, request latency (p50, p99), reply latency (request sent → the
send call's arrival at the fake API, p50 and p95), the largest resident memory of a gunicorn
worker, and where the two cores went (server, PostgreSQL, delivery worker, fakes, load
generator). People come from ``bench/inbound_people.py``, the generator is
``bench/inbound_loadgen.py``.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql as pgsql
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from bench import PROJECT_DIR, RunOptions
from bench.inbound_ceiling_app import metadata as ceiling_metadata
from bench.inbound_fakes import TELEGRAM_TOKEN, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
from bench.inbound_people import LOAD_SCRIPTS, Secrets
from bench.inbound_procs import (
    CpuSnapshot,
    RssSampler,
    children,
    cpu_shares,
    machine_busy_seconds,
    postgres_pids,
    snapshot,
)
from bench.inbound_profile import WEB_PARTS, WORKER_PARTS, Recording, py_spy, shares, top_self
from bench.inbound_sql import SqlCount, count_sql
from bench.report import machine_lines, now_utc
from storage.db import make_engine
from storage.models import Message, WorkerHeartbeat

TITLE = "Inbound webhooks under load"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/raporto_bench_load"
PG_URL = os.environ.get("BENCH_LOAD_DATABASE_URL", DEFAULT_PG_URL)
VENV_BIN = Path(sys.executable).parent
TWILIO_NUMBER = "+38349000111"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"

TARGET_RATIO = 0.5  # full path ≥ half the store-only endpoint's throughput, same run
TARGET_PG_RATE = 1_000.0  # inbound messages/s on PostgreSQL ...
TARGET_PG_P99_S = 0.050  # ... with p99 ≤ 50 ms
TARGET_REPLY_P95_S = 0.300  # reply latency p95 ≤ 300 ms
TARGET_RSS_MIB = 150.0  # a web worker stays under 150 MB resident


@dataclass(frozen=True)
class ServerSetup:
    """One gunicorn configuration."""

    worker_class: str
    workers: int
    threads: int

    @property
    def label(self) -> str:
        """How the doc names it."""
        if self.worker_class == "sync":
            return f"sync, {self.workers} workers"
        return f"gthread, {self.workers} workers × {self.threads} threads"

    def args(self) -> list[str]:
        """The gunicorn options."""
        return [
            "--worker-class",
            self.worker_class,
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--backlog",
            "2048",
            "--keep-alive",
            "10",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ]


# Tried on the full path, on PostgreSQL; the best serves every other scenario.
SETUPS: tuple[ServerSetup, ...] = (
    ServerSetup("gthread", 2, 4),  # the Procfile's
    ServerSetup("sync", 4, 1),
)


@dataclass(frozen=True)
class Plan:
    """How long and how hard each scenario runs."""

    warmup_s: float
    duration_s: float
    trial_s: float  # each server set-up tried for this long (0: no trials)
    people: int  # simulated people at once in the closed loop (a new sender for every report)
    paced_fraction: float  # people pausing offer this fraction of the closed loop's rate ...
    paced_think_s: float  # ... pausing this long on average (the number of people follows)
    drain_s: float  # after the load: how long replies may still go out before the count
    setups: tuple[ServerSetup, ...]
    client_check_s: float  # the bare ceiling once more with httpx as the client (0: not)
    sms_only_check: bool  # on PostgreSQL, SMS people only, pausing, at half the capacity


FULL = Plan(
    warmup_s=3.0,
    duration_s=12.0,
    trial_s=6.0,
    people=200,
    paced_fraction=0.5,
    paced_think_s=3.0,
    drain_s=8.0,
    setups=SETUPS,
    client_check_s=6.0,
    sms_only_check=True,
)
QUICK = Plan(
    warmup_s=2.0,
    duration_s=5.0,
    trial_s=0.0,
    people=200,
    paced_fraction=0.5,
    paced_think_s=3.0,
    drain_s=5.0,
    setups=SETUPS[:1],
    client_check_s=0.0,
    sms_only_check=False,
)


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``inf`` entries stand for values not yet known: still waiting)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def fmt_ms(seconds: float) -> str:
    """Seconds shown as milliseconds; unknown and still-waiting values as words."""
    if math.isnan(seconds):
        return "—"
    if math.isinf(seconds):
        return "not sent"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.1f} ms"


# --- the database ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """One engine to run on."""

    label: str  # "SQLite" or "PostgreSQL"
    url: str
    detail: str  # durability settings
    version: str = ""


def prepare_postgres(url: str) -> tuple[str, str]:
    """Create the database when missing and drop its schema; (server version, settings)."""
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
            admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(database)))
    with psycopg.connect(dbname=database, **params) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        names = ("synchronous_commit", "fsync", "max_connections")
        shown = [f"{n}={conn.execute(f'SHOW {n}').fetchone()[0]}" for n in names]  # type: ignore[index]
    return version, ", ".join(shown)


def migrate(env: dict[str, str]) -> None:
    """``raporto db upgrade`` through the console script, with the app's environment."""
    subprocess.run(
        [str(VENV_BIN / "raporto"), "db", "upgrade"],
        env=env,
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
        timeout=120,
    )


def create_ceiling_table(url: str) -> None:
    """The one table of the store-only ceiling."""
    engine = make_engine(url)
    try:
        ceiling_metadata.create_all(engine)
    finally:
        engine.dispose()


def max_message_id(engine: Engine) -> int:
    """The newest row of the message table (rows above it belong to the next scenario)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM message")).scalar() or 0)


def set_aside_leftovers(engine: Engine) -> int:
    """Replies a previous run left queued are set aside, so each run starts with an empty outbox."""
    with engine.begin() as conn:
        result = conn.execute(
            text(
                "UPDATE message SET status = 'bench-skipped' "
                "WHERE direction = 'out' AND status = 'queued'"
            )
        )
    return int(result.rowcount or 0)


def wait_for_heartbeat(
    engine: Engine, worker: subprocess.Popen[bytes], since: float, log: Path, timeout: float = 60.0
) -> None:
    """Wait until the delivery worker has started its loop (its first heartbeat is stored)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"raporto worker exited with {worker.returncode} (see {log})")
        with engine.connect() as conn:
            beat = conn.execute(select(func.max(WorkerHeartbeat.beat_at))).scalar()
        if beat is not None and beat.timestamp() >= since:
            return
        time.sleep(0.1)
    raise TimeoutError("raporto worker did not start its loop")


def queued_count(engine: Engine, above: int) -> int:
    """Replies of this scenario still waiting in the outbox."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM message WHERE id > :above AND direction = 'out' "
                "AND status = 'queued'"
            ),
            {"above": above},
        ).scalar()
    return int(found or 0)


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``url`` (on 127.0.0.1) answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(
    proc: subprocess.Popen[Any] | None, timeout: float = 15.0, sig: int = signal.SIGTERM
) -> None:
    """Signal one process this benchmark started (by its id), then SIGKILL if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class Fakes:
    """The fake Telegram and Twilio APIs in their own process."""

    proc: subprocess.Popen[str]
    telegram_url: str
    twilio_url: str
    out: Path

    @classmethod
    def start(cls, folder: Path) -> Fakes:
        """Start the process and read its URLs."""
        out = folder / "fake-calls.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.inbound_fakes", str(out)],
            cwd=PROJECT_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        return cls(proc, urls["telegram"], urls["twilio"], out)

    def finish(self) -> list[dict[str, Any]]:
        """Stop the fakes and return every send call they received."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            stop_process(self.proc)
        calls: list[dict[str, Any]] = json.loads(self.out.read_text(encoding="utf-8"))
        return calls


def app_env(db_url: str, port: int, folder: Path, fakes: Fakes | None) -> dict[str, str]:
    """The environment of gunicorn and the worker: every setting the app reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPORTO_", "TWILIO_"))}
    env.update(
        DATABASE_URL=db_url,
        SECRET_KEY="bench-secret-key-" + "x" * 32,
        RAPORTO_ENCRYPTION_KEYS=BENCH_FERNET_KEY,
        RAPORTO_HASH_KEY="bench-hash-key-0123456789abcdef",
        RAPORTO_INSTANCE_DIR=str(folder / "instance"),
        RAPORTO_STORAGE_DIR=str(folder / "attachments"),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=TWILIO_AUTH_TOKEN,
        TWILIO_FROM_NUMBER=TWILIO_NUMBER,
        PYTHONUNBUFFERED="1",
    )
    if fakes is not None:
        env.update(TELEGRAM_API_BASE_URL=fakes.telegram_url, TWILIO_API_BASE_URL=fakes.twilio_url)
    else:  # the ceilings never send; keep the app away from the real APIs all the same
        env.update(TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot")
        env.update(TWILIO_API_BASE_URL="http://127.0.0.1:9")
    env.pop("DATABASE_URL_TEST", None)
    return env


BENCH_FERNET_KEY = Fernet.generate_key().decode()


# --- one scenario ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One measured run."""

    db: Database
    endpoint: str  # "ok", "store" or "full"
    setup: ServerSetup
    duration_s: float
    people: int
    think_s: float = 0.0  # 0: closed loop, as fast as people can send
    trial: bool = False
    channels: str = "all"  # "sms" or "telegram": only the people of that channel
    client: str = "raw"  # the load generator's HTTP client: "raw" or "httpx"

    @property
    def label(self) -> str:
        """How the doc names it."""
        names = {
            "ok": "ceiling: bare Flask, 200 only",
            "store": "ceiling: store raw body (1 INSERT + COMMIT)",
            "full": "full inbound path + delivery worker",
        }
        name = names[self.endpoint]
        if self.endpoint == "full" and self.think_s > 0:
            name += ", people pausing"
        if self.channels != "all":
            name += f", {self.channels.replace('sms', 'SMS')} people only"
        if self.client != "raw":
            name += f" ({self.client} as the load generator's client)"
        return name


@dataclass
class ReplyStats:
    """Reply latencies of one channel, in seconds (``inf``: not sent by the end of the drain).

    ``latencies`` start when the app stored the inbound (its row's ``created_at``: received);
    ``from_sent`` start when the load generator sent the request (queueing included).
    """

    latencies: list[float] = field(default_factory=list)
    from_sent: list[float] = field(default_factory=list)
    unmatched: int = 0

    def add(self, received: float, sent: float) -> None:
        """One inbound's reply latency, from its arrival and from its sending."""
        self.latencies.append(received)
        self.from_sent.append(sent)


@dataclass
class Outcome:
    """What one scenario measured."""

    scenario: Scenario
    rate: float
    offered_people: int
    latencies: list[float]
    errors: int
    error_samples: list[str]
    rss_max_mib: float
    worker_rss_mib: float
    cores: dict[str, float]
    machine_cores: float
    replies: dict[str, ReplyStats] = field(default_factory=dict)
    callbacks: ReplyStats = field(default_factory=ReplyStats)
    people_started: int = 0
    generator_cpu_s: float = 0.0
    connects: int = 0
    unsent_after_drain: int = 0
    drain_s: float = 0.0
    log_tail: str = ""
    profiles: list[Counter[tuple[str, ...]]] = field(default_factory=list)
    set_aside: int = 0  # replies left queued by the previous run, not sent in this one
    texts_sent: dict[str, int] = field(default_factory=dict)  # text send calls, whole run
    inbound_total: dict[str, int] = field(default_factory=dict)  # inbound 200s, whole run

    @property
    def p50(self) -> float:
        """Median request latency."""
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        """99th percentile request latency."""
        return percentile(self.latencies, 99)


def _start_gunicorn(
    scenario: Scenario, env: dict[str, str], port: int, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    target = "bot.wsgi:app" if scenario.endpoint == "full" else "bench.inbound_ceiling_app:app"
    cmd = [str(VENV_BIN / "gunicorn"), *scenario.setup.args(), "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*cmd, target], env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc)
    # Every worker loads the app itself: wait until all are up and answering.
    deadline = time.monotonic() + 30
    while len(children(proc.pid)) < scenario.setup.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(4 * scenario.setup.workers):
        wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
    return proc


def secrets_for(port: int) -> Secrets:
    """What the simulated providers sign with, for an app on this port."""
    return Secrets(
        public_base_url=f"http://127.0.0.1:{port}",
        telegram_webhook_secret=WEBHOOK_SECRET,
        twilio_account_sid=TWILIO_ACCOUNT_SID,
        twilio_auth_token=TWILIO_AUTH_TOKEN,
        twilio_to_number=TWILIO_NUMBER,
    )


def _gen_config(
    scenario: Scenario,
    plan: Plan,
    index: int,
    proc_no: int,
    people: int,
    port: int,
    start: float,
    folder: Path,
) -> Path:
    secrets = secrets_for(port)
    out = folder / f"gen-{index}-{proc_no}.json"
    config = {
        "base_url": f"http://127.0.0.1:{port}",
        "mode": scenario.endpoint,
        "people": people,
        "first_person": (index + 1) * 10_000_000 + proc_no * 1_000_000,
        "start": start,
        "warmup_s": plan.warmup_s,
        "duration_s": scenario.duration_s,
        "think_s": scenario.think_s,
        "secrets": secrets.__dict__,
        "out": str(out),
        "seed": index * 100 + proc_no,
        "channels": scenario.channels,
        "client": scenario.client,
    }
    path = folder / f"gen-{index}-{proc_no}.config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_scenario(
    scenario: Scenario, plan: Plan, index: int, folder: Path, *, profile: bool = False
) -> Outcome:
    """Start everything, load, drain, stop everything, and measure (``profile``: py-spy)."""
    port = free_port()
    engine = make_engine(scenario.db.url)
    fakes: Fakes | None = None
    gunicorn: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    gens: list[subprocess.Popen[bytes]] = []
    log_path = folder / f"server-{index}.log"
    sampler: RssSampler | None = None
    worker_sampler: RssSampler | None = None
    full = scenario.endpoint == "full"
    try:
        base_id = max_message_id(engine) if full else 0
        set_aside = set_aside_leftovers(engine) if full else 0
        if full:
            fakes = Fakes.start(folder)
        env = app_env(scenario.db.url, port, folder, fakes)
        with log_path.open("wb") as log:
            gunicorn = _start_gunicorn(scenario, env, port, log)
            master = gunicorn.pid
            sampler = RssSampler(lambda: children(master)).start()
            if full:
                worker = subprocess.Popen(
                    [str(VENV_BIN / "raporto"), "worker"],
                    env=env,
                    cwd=PROJECT_DIR,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                worker_pid = worker.pid
                worker_sampler = RssSampler(lambda: [worker_pid]).start()
                wait_for_heartbeat(engine, worker, time.time() - 1.0, log_path)
            start = time.monotonic() + 2.5  # the generators import and build before this
            configs = [_gen_config(scenario, plan, index, 0, scenario.people, port, start, folder)]
            gens = [
                subprocess.Popen(
                    [sys.executable, "-m", "bench.inbound_loadgen", str(c)], cwd=PROJECT_DIR
                )
                for c in configs
            ]
            groups = _cpu_groups(scenario, master, worker, fakes, gens)
            window_start = start + plan.warmup_s
            window_end = window_start + scenario.duration_s
            _sleep_until(window_start)
            first = snapshot(groups)
            recordings: list[Recording | None] = []
            if profile:
                length = scenario.duration_s - 1
                web_pid = children(master)[0]
                recordings.append(Recording.start(web_pid, length, folder / f"web-{index}.txt"))
                if worker is not None:
                    out = folder / f"worker-{index}.txt"
                    recordings.append(Recording.start(worker.pid, length, out))
            _sleep_until(window_end)
            last = snapshot(groups)
            profiles = [r.stacks() if r is not None else Counter() for r in recordings]
            for gen in gens:
                gen.wait(timeout=120)
                if gen.returncode != 0:
                    raise RuntimeError(f"load generator exited with {gen.returncode}")
            drained_at = time.monotonic()
            unsent = 0
            if full:
                deadline = drained_at + plan.drain_s
                while (unsent := queued_count(engine, base_id)) and time.monotonic() < deadline:
                    time.sleep(0.25)
            drain_s = time.monotonic() - drained_at
            rss = sampler.stop()
            worker_rss = worker_sampler.stop() if worker_sampler is not None else 0.0
        stop_process(worker)
        worker = None
        stop_process(gunicorn, sig=signal.SIGINT)  # quick shutdown: nothing is in flight
        gunicorn = None
        calls = fakes.finish() if fakes is not None else []
        fakes = None
        gen_results = [json.loads(Path(str(c).replace(".config", "")).read_text()) for c in configs]
        outcome = _measure(
            scenario, plan, window_start, window_end, gen_results, first, last, rss, worker_rss
        )
        outcome.unsent_after_drain = unsent
        outcome.drain_s = drain_s
        outcome.profiles = profiles
        outcome.set_aside = set_aside
        if full:
            _match_replies(outcome, engine, base_id, gen_results, calls, window_start, window_end)
        outcome.log_tail = _log_tail(log_path)
        return outcome
    except Exception:
        print(_log_tail(log_path), file=sys.stderr)
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        if worker_sampler is not None:
            worker_sampler.stop()
        for gen in gens:
            stop_process(gen)
        stop_process(worker)
        stop_process(gunicorn)
        if fakes is not None:
            stop_process(fakes.proc)
        engine.dispose()


def _sleep_until(at: float) -> None:
    delay = at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _cpu_groups(
    scenario: Scenario,
    master: int,
    worker: subprocess.Popen[bytes] | None,
    fakes: Fakes | None,
    gens: list[subprocess.Popen[bytes]],
) -> dict[str, Callable[[], Iterable[int]]]:
    groups: dict[str, Callable[[], Iterable[int]]] = {
        "gunicorn (web)": lambda: [master, *children(master)],
        "load generator": lambda: [g.pid for g in gens],
    }
    if scenario.db.label == "PostgreSQL":
        database = make_url(scenario.db.url).database or ""
        groups["PostgreSQL"] = lambda: postgres_pids(database)
    if worker is not None:
        worker_pid = worker.pid
        groups["delivery worker"] = lambda: [worker_pid]
    if fakes is not None:
        fakes_pid = fakes.proc.pid
        groups["fake APIs"] = lambda: [fakes_pid]
    return groups


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-15:])


def _measure(
    scenario: Scenario,
    plan: Plan,
    window_start: float,
    window_end: float,
    gen_results: list[dict[str, Any]],
    first: CpuSnapshot,
    last: CpuSnapshot,
    rss: float,
    worker_rss: float,
) -> Outcome:
    completed = 0
    latencies: list[float] = []
    errors = 0
    for result in gen_results:
        for _channel, _sender, _mid, t0, t1, status in result["requests"]:
            if status == 200 and window_start <= t1 < window_end:
                completed += 1
            if window_start <= t0 < window_end:
                if status == 200:
                    latencies.append(t1 - t0)
                else:
                    errors += 1
    cores, machine = cpu_shares(first, last)
    return Outcome(
        scenario=scenario,
        rate=completed / scenario.duration_s,
        offered_people=scenario.people,
        latencies=latencies,
        errors=errors,
        error_samples=[e for r in gen_results for e in r["errors"]][:5],
        rss_max_mib=rss,
        worker_rss_mib=worker_rss,
        cores=cores,
        machine_cores=machine,
        people_started=sum(int(r["people_started"]) for r in gen_results),
        generator_cpu_s=sum(float(r["cpu_s"]) for r in gen_results),
        connects=sum(int(r["connects"]) for r in gen_results),
    )


def _match_replies(
    outcome: Outcome,
    engine: Engine,
    base_id: int,
    gen_results: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    window_start: float,
    window_end: float,
) -> None:
    """Reply latency per inbound: received → arrival of its first reply at the fake API.

    The stored rows say which replies each inbound produced: an outbound row belongs to the
    newest inbound row of the same contact before it (one person's messages are handled one
    after the other). Each person's replies reach the fake in outbox order, so the k-th text
    sent to a person is the k-th arrival at the fake for that chat id or phone number.
    "Received" is the inbound row's ``created_at`` (set by the app as it stores the message),
    moved onto the monotonic clock the fakes and the generator use.
    """
    wall_minus_mono = time.time() - time.monotonic()
    sent: dict[tuple[str, str], tuple[str, float]] = {}  # (channel, message id) → (sender, t0)
    for result in gen_results:
        for channel, sender, message_id, t0, _t1, status in result["requests"]:
            if status == 200:
                sent[(channel, message_id)] = (sender, t0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Message.id,
                Message.contact_id,
                Message.direction,
                Message.channel,
                Message.channel_message_id,
                Message.kind,
                Message.status,
                Message.coalesce_key,
                Message.created_at,
            )
            .where(Message.id > base_id)
            .order_by(Message.id)
        ).all()
    inbound_ids: dict[int, list[int]] = defaultdict(list)
    inbound_at: dict[int, tuple[float, float]] = {}  # row id → (received, sent), monotonic
    received_by_id: dict[tuple[str, str], float] = {}  # (channel, message id) → received
    address: dict[int, tuple[str, str]] = {}
    outbound: dict[int, list[tuple[int, str, bool]]] = defaultdict(list)
    for row_id, contact_id, direction, channel, message_id, kind, status, coalesce, at in rows:
        if contact_id is None:
            continue
        if direction == "in":
            found = sent.get((channel, message_id))
            if found is None:
                continue
            inbound_ids[contact_id].append(row_id)
            inbound_at[row_id] = (at.timestamp() - wall_minus_mono, found[1])
            received_by_id[(channel, message_id)] = inbound_at[row_id][0]
            address[contact_id] = (channel, found[0])
        elif kind == "text":
            outbound[contact_id].append((row_id, status, coalesce is not None))
    arrivals: dict[tuple[str, str], list[float]] = defaultdict(list)
    callback_arrival: dict[str, float] = {}
    for call in calls:
        if call["method"] == "answerCallbackQuery":
            callback_arrival[call["callback_query_id"]] = call["t"]
        else:
            channel = "telegram" if call["api"] == "telegram" else "sms"
            arrivals[(channel, call["to"])].append(call["t"])
    for times in arrivals.values():
        times.sort()
    stats: dict[str, ReplyStats] = {"sms": ReplyStats(), "telegram": ReplyStats()}
    callbacks = ReplyStats()
    for contact_id, in_ids in inbound_ids.items():
        channel, to = address[contact_id]
        at_fake = arrivals.get((channel, to), [])
        texts = outbound.get(contact_id, [])
        sent_rows = [r for r in texts if r[1] == "sent"]
        if len(sent_rows) != len(at_fake):
            stats[channel].unmatched += len(in_ids)
            continue
        position = {r[0]: k for k, r in enumerate(sent_rows)}
        first_reply: dict[int, tuple[int, str, bool]] = {}
        for row_id, status, delayed in texts:
            parent_at = bisect.bisect_left(in_ids, row_id) - 1
            if parent_at >= 0 and in_ids[parent_at] not in first_reply:
                first_reply[in_ids[parent_at]] = (row_id, status, delayed)
        for parent, (row_id, status, delayed) in first_reply.items():
            received, t0 = inbound_at[parent]
            if not window_start <= t0 < window_end or delayed:
                continue  # outside the window, or a "got it" held back on purpose (4 s)
            arrived = at_fake[position[row_id]] if status == "sent" else math.inf
            stats[channel].add(arrived - received, arrived - t0)
    for result in gen_results:
        for channel, sender, message_id, t0, _t1, status in result["requests"]:
            if channel != "telegram" or status != 200 or not window_start <= t0 < window_end:
                continue
            callback_id = f"{sender}{int(message_id) % 100:03d}"
            stored_at = received_by_id.get((channel, message_id))
            if callback_id in callback_arrival and stored_at is not None:
                arrived = callback_arrival[callback_id]
                callbacks.add(arrived - stored_at, arrived - t0)
    outcome.replies = stats
    outcome.callbacks = callbacks
    inbound_total: Counter[str] = Counter(
        r[0] for result in gen_results for r in result["requests"] if r[5] == 200
    )
    for (channel, _to), times in arrivals.items():
        outcome.texts_sent[channel] = outcome.texts_sent.get(channel, 0) + len(times)
    for channel, count in inbound_total.items():
        outcome.inbound_total[channel] = count


# --- the whole run --------------------------------------------------------------------------


def prepare(label: str, folder: Path) -> Database:
    """A migrated, empty database of this engine, with the ceiling's table."""
    if label == "SQLite":
        path = folder / "raporto-load.db"
        url = f"sqlite:///{path}"
        detail = "WAL, synchronous=NORMAL, BEGIN IMMEDIATE (the app's set-up)"
        version = ""
    else:
        url = PG_URL
        version, shown = prepare_postgres(url)
        detail = shown
    migrate(app_env(url, 5000, folder, None))
    create_ceiling_table(url)
    return Database(label, url, detail, version)


def background_load(seconds: float = 3.0) -> float:
    """Cores the machine is busy with before the benchmark starts anything (others' work)."""
    busy0, _ = machine_busy_seconds()
    time.sleep(seconds)
    busy1, _ = machine_busy_seconds()
    return (busy1 - busy0) / seconds


def _announce(outcome: Outcome) -> None:
    print(
        f"  {outcome.rate:.0f} msg/s, p50 {fmt_ms(outcome.p50)}, p99 {fmt_ms(outcome.p99)}, "
        f"errors {outcome.errors}, other processes "
        f"{max(0.0, outcome.machine_cores - sum(outcome.cores.values())):.2f} cores",
        flush=True,
    )


TELEGRAM_BUDGET = 15.0
"""Telegram text replies per second the pausing people may need, on average over the scripts:
half of Telegram's 30 a second for a bot (the worker's RateLimiter). The measured window holds
the first steps of each report, which answer with more texts than the average (about 1.25x).
Closer to the cap replies queue: Telegram reply p95 0.5 s at about 26 texts a second (86% of
the cap), 1.9-2.7 s at 29 (97%), measured on 2026-11-23 (docs/performance.md)."""


def telegram_safe_rate(counts: dict[str, SqlCount]) -> float:
    """The inbound rate, all channels, whose Telegram replies stay within the budget."""
    messages = sum(c.messages for c in counts.values())
    telegram = counts.get("telegram")
    if telegram is None or not telegram.texts_queued or not messages:
        return float("inf")
    return TELEGRAM_BUDGET / (telegram.texts_queued / messages)


def paced_people(rate: float, plan: Plan) -> tuple[int, float]:
    """How many pausing people, pausing how long on average, offer ``rate`` messages/s."""
    people = max(10, min(plan.people, round(rate * plan.paced_think_s)))
    return people, people / rate


def run(options: RunOptions) -> str:
    """Measure every scenario and return the section."""
    started = time.monotonic()
    plan = QUICK if options.quick else FULL
    outcomes: list[Outcome] = []
    trials: list[Outcome] = []
    profiled: Outcome | None = None
    index = 0
    background = background_load()
    print(f"machine busy before the start: {background:.2f} of {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="raporto-load-", dir=_temp_parent()) as tmp:
        folder = Path(tmp)
        dbs = [prepare("SQLite", folder), prepare("PostgreSQL", folder)]
        pg = dbs[1]
        sql: dict[str, dict[str, SqlCount]] = {}
        for n, db in enumerate(dbs):
            env = app_env(db.url, 5000, folder, None)
            sql[db.label] = count_sql(env, secrets_for(5000), 900_000_000 + n * 1_000)
        setup = plan.setups[0]
        if plan.trial_s > 0 and len(plan.setups) > 1:
            for candidate in plan.setups:
                index += 1
                print(f"trial: full path on PostgreSQL, {candidate.label} ...", flush=True)
                scenario = Scenario(pg, "full", candidate, plan.trial_s, plan.people, trial=True)
                trial = run_scenario(scenario, plan, index, folder)
                _announce(trial)
                trials.append(trial)
            setup = max(trials, key=lambda t: t.rate).scenario.setup
        client_check: Outcome | None = None
        if plan.client_check_s > 0:
            index += 1
            scenario = Scenario(
                dbs[0], "ok", setup, plan.client_check_s, plan.people, client="httpx"
            )
            print(f"{dbs[0].label}: {scenario.label} ...", flush=True)
            client_check = run_scenario(scenario, plan, index, folder)
            _announce(client_check)
        for db in dbs:
            closed_rate = 0.0
            telegram_safe = telegram_safe_rate(sql[db.label])
            for endpoint, paced in (
                ("ok", False),
                ("store", False),
                ("full", False),
                ("full", True),
            ):
                index += 1
                people, think = plan.people, 0.0
                if paced:
                    # Half the capacity, but no more than Telegram lets a bot answer: beyond
                    # 30 messages/s Telegram's own limit makes replies queue, whatever we do.
                    rate = max(5.0, min(plan.paced_fraction * closed_rate, telegram_safe))
                    people, think = paced_people(rate, plan)
                scenario = Scenario(db, endpoint, setup, plan.duration_s, people, think)
                print(f"{db.label}: {scenario.label} ({people} people) ...", flush=True)
                outcome = run_scenario(scenario, plan, index, folder)
                _announce(outcome)
                outcomes.append(outcome)
                if endpoint == "full" and not paced:
                    closed_rate = outcome.rate
                if endpoint == "full" and paced and db is pg and plan.sms_only_check:
                    # SMS people only, at half the capacity: no Telegram limit in the way.
                    index += 1
                    people, think = paced_people(max(5.0, plan.paced_fraction * closed_rate), plan)
                    scenario = Scenario(
                        db, endpoint, setup, plan.duration_s, people, think, channels="sms"
                    )
                    print(f"{db.label}: {scenario.label} ({people} people) ...", flush=True)
                    outcome = run_scenario(scenario, plan, index, folder)
                    _announce(outcome)
                    outcomes.append(outcome)
        if options.profile:
            if py_spy() is None:
                print("--profile: py-spy is not installed (.venv/bin/pip install py-spy)")
            else:
                index += 1
                print("profiling the full path on PostgreSQL with py-spy ...", flush=True)
                scenario = Scenario(pg, "full", setup, max(plan.trial_s, 8.0), plan.people)
                profiled = run_scenario(scenario, plan, index, folder, profile=True)
                _announce(profiled)
                _print_profile(profiled)
    elapsed = time.monotonic() - started
    return render(
        options, plan, setup, trials, outcomes, pg, profiled, client_check, sql, background, elapsed
    )


def _print_profile(outcome: Outcome) -> None:
    for name, parts, stacks in zip(
        ("gunicorn worker", "delivery worker"),
        (WEB_PARTS, WORKER_PARTS),
        outcome.profiles,
        strict=False,
    ):
        print(f"--- py-spy: {name}, {sum(stacks.values())} samples ---")
        for label, share in shares(stacks, parts):
            print(f"{share:6.1%}  {label}")
        print("top of stack:")
        for frame, share in top_self(stacks):
            print(f"{share:6.1%}  {frame}")


def _temp_parent() -> str | None:
    """A folder on disk (not tmpfs) for the SQLite file, so its durability is real."""
    candidate = PROJECT_DIR / "instance"
    candidate.mkdir(exist_ok=True)
    return str(candidate) if shutil.disk_usage(candidate).free > 1 << 30 else None


# --- the report -----------------------------------------------------------------------------


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _pair(values: Sequence[float], low: float = 50, high: float = 95) -> str:
    if not values:
        return "—"
    return f"{fmt_ms(percentile(values, low))} / {fmt_ms(percentile(values, high))}"


def _reply_cell(stats: ReplyStats | None) -> str:
    return _pair(stats.latencies) if stats is not None else "—"


def _other(o: Outcome) -> float:
    return max(0.0, o.machine_cores - sum(o.cores.values()))


def _cpu_ms(o: Outcome, group: str) -> str:
    cores = o.cores.get(group)
    if cores is None or not o.rate:
        return "—"
    return f"{cores / o.rate * 1000:.1f}"


def render(
    options: RunOptions,
    plan: Plan,
    setup: ServerSetup,
    trials: list[Outcome],
    outcomes: list[Outcome],
    pg: Database,
    profiled: Outcome | None,
    client_check: Outcome | None,
    sql: dict[str, dict[str, SqlCount]],
    background: float,
    elapsed_s: float,
) -> str:
    """The Markdown body of the section."""
    lines = [
        f"## {TITLE}",
        "",
        f"Measured {now_utc()} with `{options.command}` (the section took {elapsed_s:.0f} s)."
        + (" **Quick run: too short to publish.**" if options.quick else ""),
        "",
        *machine_lines(pg.version or None),
        f"- gunicorn {_version('gunicorn')}, Flask {_version('flask')}, SQLAlchemy "
        f"{_version('sqlalchemy')}, psycopg {_version('psycopg')}; PostgreSQL {pg.detail}",
        f"- Server set-up: **{setup.label}** (the fastest of the set-ups tried, below), "
        "`raporto worker` beside it",
        f"- **The machine was shared**: {background:.2f} of {os.cpu_count()} cores were busy "
        "with other processes just before the start, and the column 'other processes' below "
        "shows how much they took during each run. Every process of the benchmark (servers, "
        "database, worker, fakes, load generator) competes for the same two cores.",
        "",
    ]
    by = {
        (o.scenario.db.label, o.scenario.endpoint, o.scenario.think_s > 0): o
        for o in outcomes
        if o.scenario.channels == "all" and o.scenario.client == "raw"
    }
    lines += ["### Targets", ""]
    lines += [_row(["target", "measured", "verdict"]), _row(["---", "---", "---"])]
    for label in ("SQLite", "PostgreSQL"):
        full, store = by.get((label, "full", False)), by.get((label, "store", False))
        if full and store:
            ratio = full.rate / store.rate if store.rate else 0.0
            lines.append(
                _row(
                    [
                        f"{label}: full inbound path ≥ ½ of the store-only endpoint's "
                        "throughput, same run",
                        f"{full.rate:.0f} / {store.rate:.0f} msg/s = {ratio:.2f}",
                        _verdict(ratio >= TARGET_RATIO),
                    ]
                )
            )
    full_pg, paced_pg = by.get(("PostgreSQL", "full", False)), by.get(("PostgreSQL", "full", True))
    if full_pg:
        measured = f"capacity {full_pg.rate:.0f} msg/s ({full_pg.offered_people} people, no pause)"
        ok = full_pg.rate >= TARGET_PG_RATE
        if paced_pg:
            measured += f"; p99 {fmt_ms(paced_pg.p99)} at {paced_pg.rate:.0f} msg/s offered"
            ok = ok and paced_pg.p99 <= TARGET_PG_P99_S
        lines.append(
            _row(["PostgreSQL: ≥ 1,000 inbound msg/s with p99 ≤ 50 ms", measured, _verdict(ok)])
        )
    for label in ("SQLite", "PostgreSQL"):
        o = by.get((label, "full", True))
        if o is None:
            continue
        for channel in ("sms", "telegram"):
            stats = o.replies.get(channel)
            if stats is None or not stats.latencies:
                continue
            p95 = percentile(stats.latencies, 95)
            lines.append(
                _row(
                    [
                        f"{label}, {channel}: reply latency p95 ≤ 300 ms "
                        f"(people pausing, {o.rate:.0f} msg/s)",
                        fmt_ms(p95),
                        _verdict(p95 <= TARGET_REPLY_P95_S),
                    ]
                )
            )
    for o in outcomes:
        stats = o.replies.get("sms")
        if o.scenario.channels != "sms" or stats is None or not stats.latencies:
            continue
        p95 = percentile(stats.latencies, 95)
        lines.append(
            _row(
                [
                    f"{o.scenario.db.label}, SMS people only, pausing, at half the capacity: "
                    f"reply latency p95 ({o.rate:.0f} msg/s)",
                    fmt_ms(p95),
                    _verdict(p95 <= TARGET_REPLY_P95_S),
                ]
            )
        )
    full_runs = [o for o in [*outcomes, *trials] if o.scenario.endpoint == "full"]
    rss = max((o.rss_max_mib for o in full_runs), default=0.0)
    lines.append(
        _row(
            [
                "a web worker < 150 MB resident",
                f"largest {rss:.0f} MiB = {rss * 1.048576:.0f} MB (every full-path run)",
                _verdict(rss * 1.048576 < TARGET_RSS_MIB),
            ]
        )
    )
    lines += [
        "",
        "### All runs",
        "",
        f"Closed loop: {plan.people} people at once, each sending a report message by message "
        "and waiting for the 200 before the next, without pause (a new sender for every "
        f"report). People pausing: about {plan.paced_think_s:.0f} s between messages (at least "
        f"1 s), as many people as make {plan.paced_fraction:.0%} of the closed loop's rate, but "
        f"no more than the rate whose Telegram replies average {TELEGRAM_BUDGET:.0f} a second "
        "(half of the 30 a second Telegram lets a bot send in all; near that cap replies queue "
        "by Telegram's rule, not ours), each person starting at a random moment within one "
        "pause; the SMS-only run is at the full "
        f"{plan.paced_fraction:.0%}. "
        f"{plan.warmup_s:.0f} s warm-up, then {plan.duration_s:.0f} s measured. Reply latency: "
        "from the app storing the inbound (received) to the reply's send call arriving at the "
        "fake API, p50 / p95, for the first text reply of each inbound that has one.",
        "",
        _row(
            [
                "database",
                "endpoint",
                "people",
                "msg/s",
                "p50",
                "p99",
                "errors",
                "reply SMS p50 / p95",
                "reply Telegram p50 / p95",
                "button answered p50 / p95",
                "web worker RSS max",
            ]
        ),
        _row(
            ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]
        ),
    ]
    for o in outcomes:
        is_full = o.scenario.endpoint == "full"
        lines.append(
            _row(
                [
                    o.scenario.db.label,
                    o.scenario.label,
                    str(o.offered_people),
                    f"{o.rate:.0f}",
                    fmt_ms(o.p50),
                    fmt_ms(o.p99),
                    str(o.errors),
                    _reply_cell(o.replies.get("sms")) if is_full else "—",
                    _reply_cell(o.replies.get("telegram")) if is_full else "—",
                    _reply_cell(o.callbacks) if is_full else "—",
                    f"{o.rss_max_mib:.0f} MiB",
                ]
            )
        )
    lines += [
        "",
        "Where the two cores went in each measured window (cores busy; 2.00 is the whole "
        "machine), and CPU time per message of the web server, PostgreSQL and the worker:",
        "",
        _row(
            [
                "database",
                "endpoint",
                "machine",
                "gunicorn",
                "PostgreSQL",
                "delivery worker",
                "fake APIs",
                "load generator",
                "other processes",
                "CPU ms/msg: web / PostgreSQL / worker",
            ]
        ),
        _row(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
    ]
    for o in outcomes:
        c = o.cores
        lines.append(
            _row(
                [
                    o.scenario.db.label,
                    o.scenario.label,
                    f"{o.machine_cores:.2f}",
                    f"{c.get('gunicorn (web)', 0):.2f}",
                    f"{c['PostgreSQL']:.2f}" if "PostgreSQL" in c else "—",
                    f"{c['delivery worker']:.2f}" if "delivery worker" in c else "—",
                    f"{c['fake APIs']:.2f}" if "fake APIs" in c else "—",
                    f"{c.get('load generator', 0):.2f}",
                    f"{_other(o):.2f}",
                    " / ".join(
                        _cpu_ms(o, g) for g in ("gunicorn (web)", "PostgreSQL", "delivery worker")
                    ),
                ]
            )
        )
    lines += [
        "",
        "Reply latency of the full path in detail (p50 / p95): from the app storing the "
        "inbound, and from the load generator sending it (what the person waits, queueing "
        "in front of gunicorn included):",
        "",
        _row(
            [
                "database",
                "endpoint",
                "SMS from received",
                "SMS from sent",
                "Telegram from received",
                "Telegram from sent",
                "replies measured",
                "not sent after the drain",
            ]
        ),
        _row(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"]),
    ]
    for o in outcomes:
        if o.scenario.endpoint != "full":
            continue
        sms, tg = o.replies.get("sms", ReplyStats()), o.replies.get("telegram", ReplyStats())
        waiting = sum(1 for st in (sms, tg) for v in st.latencies if math.isinf(v))
        lines.append(
            _row(
                [
                    o.scenario.db.label,
                    o.scenario.label,
                    _pair(sms.latencies),
                    _pair(sms.from_sent),
                    _pair(tg.latencies),
                    _pair(tg.from_sent),
                    str(len(sms.latencies) + len(tg.latencies)),
                    str(waiting),
                ]
            )
        )
    if trials:
        lines += [
            "",
            f"Server set-ups tried on the full path on PostgreSQL, closed loop ({plan.trial_s:.0f} "
            "s each); the fastest served every run above:",
            "",
            _row(
                [
                    "gunicorn",
                    "msg/s",
                    "p50",
                    "p99",
                    "gunicorn cores",
                    "other processes",
                    "web worker RSS max",
                ]
            ),
            _row(["---", "---:", "---:", "---:", "---:", "---:", "---:"]),
        ]
        for t in trials:
            lines.append(
                _row(
                    [
                        t.scenario.setup.label,
                        f"{t.rate:.0f}",
                        fmt_ms(t.p50),
                        fmt_ms(t.p99),
                        f"{t.cores.get('gunicorn (web)', 0):.2f}",
                        f"{_other(t):.2f}",
                        f"{t.rss_max_mib:.0f} MiB",
                    ]
                )
            )
    lines += _render_limits(by, sql)
    if profiled is not None and profiled.profiles:
        lines += _render_profile(profiled)
    notes = []
    for o in full_runs:
        unmatched = sum(st.unmatched for st in o.replies.values())
        notes.append(
            f"- {o.scenario.db.label}, {o.scenario.label}"
            + (f" ({o.scenario.setup.label}, trial)" if o.scenario.trial else "")
            + f": {o.people_started} people started; {o.set_aside} replies left queued by the "
            "previous run set aside at the start; delivery worker RSS max "
            f"{o.worker_rss_mib:.0f} MiB; {o.unsent_after_drain} replies still queued "
            f"{o.drain_s:.0f} s after the load stopped; {unmatched} inbounds not matched to "
            "their replies."
        )
    raw_ok = by.get(("SQLite", "ok", False))
    if client_check is not None and raw_ok is not None:
        notes.append(
            "- The load generator's client: the bare ceiling on SQLite with httpx (one "
            f"`AsyncClient` per person) reached {client_check.rate:.0f} msg/s, the generator "
            f"using {client_check.cores.get('load generator', 0):.2f} cores "
            f"({_cpu_ms(client_check, 'load generator')} ms CPU per request), against "
            f"{raw_ok.rate:.0f} msg/s and {_cpu_ms(raw_ok, 'load generator')} ms per request "
            "with the minimal client used everywhere else."
        )
    errors = [
        f"{o.scenario.db.label}, {o.scenario.label}: {e}" for o in outcomes for e in o.error_samples
    ]
    if errors:
        notes.append("- Errors seen: " + "; ".join(errors[:5]))
    lines += ["", "Details:", "", *notes, "", *METHOD_NOTES]
    return "\n".join(lines)


def _render_limits(
    by: dict[tuple[str, str, bool], Outcome], sql: dict[str, dict[str, SqlCount]]
) -> list[str]:
    labels = [label for label in ("SQLite", "PostgreSQL") if (label, "full", False) in by]
    if not labels:
        return []
    lines = [
        "",
        "### What the full path costs, against the store-only endpoint",
        "",
        "SQL per message counted with SQLAlchemy events while replaying every script once "
        "through the app (`bench/inbound_sql.py`); CPU per message from the closed-loop runs "
        "above.",
        "",
        _row(["per inbound message", *labels]),
        _row(["---", *["---:" for _ in labels]]),
    ]

    def cells(make: Callable[[str], str]) -> list[str]:
        return [make(label) for label in labels]

    def sql_cell(label: str, what: str) -> str:
        counts = sql.get(label, {})
        parts = []
        for channel in ("sms", "telegram"):
            c = counts.get(channel)
            if c is not None:
                parts.append(f"{c.per_message(getattr(c, what)):.1f}")
        return " / ".join(parts) or "—"

    lines.append(
        _row(
            [
                "SQL statements, SMS / Telegram (store-only: 1)",
                *cells(lambda lb: sql_cell(lb, "statements")),
            ]
        )
    )
    lines.append(
        _row(
            [
                "transactions = pool check-outs (no `pool_pre_ping` round trip), "
                "SMS / Telegram (store-only: 1)",
                *cells(lambda lb: sql_cell(lb, "commits")),
            ]
        )
    )
    for group, name in (
        ("gunicorn (web)", "web server CPU"),
        ("PostgreSQL", "PostgreSQL CPU"),
    ):
        row = [f"{name}, full path / store-only"]
        for label in labels:
            full, store = by[(label, "full", False)], by.get((label, "store", False))
            if group not in full.cores:
                row.append("—")
                continue
            row.append(f"{_cpu_ms(full, group)} / {_cpu_ms(store, group) if store else '—'} ms")
        lines.append(_row(row))
    lines.append(
        _row(
            [
                "delivery worker CPU",
                *cells(lambda lb: f"{_cpu_ms(by[(lb, 'full', False)], 'delivery worker')} ms"),
            ]
        )
    )

    def telegram_cap(label: str) -> str:
        o = by[(label, "full", False)]
        texts, inbound = o.texts_sent.get("telegram", 0), o.inbound_total.get("telegram", 0)
        if not texts or not inbound:
            return "—"
        per = texts / inbound
        return f"{per:.2f} → at most {30 / per:.0f} Telegram msg/s"

    lines.append(
        _row(
            [
                "Telegram text replies per Telegram message → what the worker's 30 msg/s "
                "`RateLimiter` lets through",
                *cells(telegram_cap),
            ]
        )
    )
    return lines


def _render_profile(o: Outcome) -> list[str]:
    lines = [
        "",
        f"### Where the time goes (py-spy, full path on PostgreSQL, closed loop, {o.rate:.0f} "
        "msg/s in the profiled run)",
        "",
        "Share of a gunicorn worker's samples whose stack passes through each part (parts "
        "nest, so shares do not add up; waiting for PostgreSQL counts, idle threads do not):",
        "",
        _row(["part of the request", "share"]),
        _row(["---", "---:"]),
    ]
    web = o.profiles[0]
    lines += [_row([label, f"{share:.0%}"]) for label, share in shares(web, WEB_PARTS)]
    if len(o.profiles) > 1 and o.profiles[1]:
        lines += [
            "",
            "The delivery worker, the same way:",
            "",
            _row(["part of the worker", "share"]),
            _row(["---", "---:"]),
        ]
        lines += [_row([lb, f"{sh:.0%}"]) for lb, sh in shares(o.profiles[1], WORKER_PARTS)]
    return lines


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


METHOD_NOTES = [
    "### How it is measured",
    "",
    "- People (`bench/inbound_people.py`): every slot of the load generator takes the "
    "scripts of `bench/conversations.py` in turn ("
    + ", ".join(f"`{s.name}`" for s in LOAD_SCRIPTS)
    + "; three on SMS, two on Telegram), each time as a new sender, and sends the whole "
    "report one message at a time, waiting for the 200 before the next. Telegram updates are "
    "JSON with a unique `update_id` and the `X-Telegram-Bot-Api-Secret-Token` header (pressed "
    "buttons as `callback_query`); SMS are Twilio's form with a unique `MessageSid`, signed "
    "with `RequestValidator.compute_signature` over `PUBLIC_BASE_URL` + path. The ceilings get "
    "the same bodies and headers on `/ok` and `/store`.",
    "- Servers: `gunicorn` subprocesses bound to 127.0.0.1 on a random port, `bot.wsgi:app` "
    "with the app's environment variables (`DATABASE_URL`, keys, `PUBLIC_BASE_URL`, Telegram "
    "and Twilio settings pointing at the fakes), the database migrated first with "
    "`raporto db upgrade`. The ceilings are `bench/inbound_ceiling_app.py` under the same "
    "gunicorn options and database (`storage.db.make_engine`: the same WAL, "
    "`synchronous=NORMAL` and `BEGIN IMMEDIATE` on SQLite, the same default commit on "
    "PostgreSQL). For the full path, `raporto worker` runs beside gunicorn and the fake "
    "Telegram and Twilio APIs of `tests/fakes/` run in a process of their own "
    "(`bench/inbound_fakes.py`). Every run starts its own processes; replies a previous run "
    "left queued are set aside first.",
    "- Load generator (`bench/inbound_loadgen.py`): one asyncio process, one keep-alive "
    "connection per person on a minimal HTTP/1.1 client; httpx costs far more CPU per "
    "request (see Details), CPU the server would not get. It shares the two cores with "
    "everything else: its share is in the table of cores. Request latency is measured at the "
    "generator (request written → whole answer read) over the requests sent in the measured "
    "window; messages/s counts the 200s received in it.",
    "- Closed loop: people send as fast as the server answers, so as many requests are in "
    "flight as there are people and the latency is mostly waiting in gunicorn's queue "
    "(Little's law: latency ≈ people ÷ throughput); it measures capacity. People pausing: "
    "each pause is 1 s plus an exponential wait, offering a rate below the capacity; it "
    "measures latency.",
    "- Reply latency: the fakes log the arrival time of each send call (`time.monotonic()`, "
    "one clock for every process on Linux); the stored rows say which reply answers which "
    "inbound (`_match_replies`); 'received' is the inbound row's `created_at`. Telegram "
    "replies go through the worker's own `RateLimiter` (30 messages/s in all, one per "
    "second per chat: Telegram's limits), so beyond that rate they queue by design; SMS has "
    "no such limit. The 'got it' held back 4 s after a description part (coalesced on "
    "purpose) is left out. After the load the worker gets up to "
    f"{FULL.drain_s:.0f} s to empty the outbox; replies still queued then count as 'not "
    "sent' (the percentile shows 'not sent' when it falls among them).",
    "- Memory: VmRSS of each gunicorn worker, sampled every 250 ms from /proc; the largest.",
    "- CPU: utime + stime from /proc of each group of processes, at the start and the end "
    "of the measured window; PostgreSQL counts the backends of the benchmark's database and "
    "the server's own processes (WAL writer, checkpointer, ...), not other databases' "
    "backends. 'Other processes' is the rest of the machine's busy time (/proc/stat).",
]
