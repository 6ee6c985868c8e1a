"""The cost of one dialog step: engine alone, engine + storage, and a python-telegram-bot baseline.

Every measurement replays the scripts of ``bench/conversations.py`` message by message and
times each message on its own with ``time.perf_counter_ns``, after a warm-up:

1. engine alone: ``dialogs.complaint_dialog.step()``;
2. engine + storage: ``IntakeService.handle()`` (dedupe, load, step, store, render, outbox,
   commit) on a migrated SQLite file and on PostgreSQL, one transaction per message;
3. the baseline of ``bench/ptb_baseline.py``: ``Application.process_update()`` with
   ``PicklePersistence`` as it comes (flushed every 60 s), and made durable per message by
   ``update_persistence()`` after every update.
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import RunOptions, ptb_baseline
from bench.conversations import SCRIPTS, Script, check_scripts, engine_context, new_conversation
from bench.report import Summary, machine_lines, ms, now_utc, us
from bot.app import Services, build_services
from bot.i18n import Catalogs
from bot.settings import Settings
from dialogs import complaint_dialog
from dialogs.lexicon import Lexicon
from storage import migrate

TITLE = "One dialog step"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/raporto_bench"
PG_URL = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG_URL)

TARGET_ENGINE_NS = 100_000  # one engine step ≤ 100 µs
TARGET_STORAGE_PG_NS = 2_000_000  # engine + storage ≤ 2 ms per message on PostgreSQL
TARGET_RATIO = 3.0  # at least 3× cheaper than the durable ConversationHandler baseline
PROFILE_FIRST_PERSON = 1_000_000
PRELOADED_SCRIPTS = SCRIPTS[:2]  # each message costs a whole big pickle: keep the run short


@dataclass(frozen=True)
class Plan:
    """How many times each measurement replays all scripts (after its warm-up)."""

    engine_reps: int
    engine_warmup: int
    storage_reps: int
    storage_warmup: int
    baseline_reps: int
    baseline_warmup: int
    profile_reps: int
    preloaded: tuple[int, ...]  # baseline pickles already holding this many earlier reporters
    # The timed repetitions of ours and of the durable baseline are taken in this many
    # alternating rounds, so that a slow spell of the shared machine falls on both alike.
    rounds: int = 1


FULL = Plan(200, 10, 20, 2, 20, 2, 3, (1_000, 5_000), rounds=5)
QUICK = Plan(20, 2, 3, 1, 3, 1, 1, (200,))


@dataclass
class Timings:
    """Per-message timings of one measurement, overall and per script."""

    samples_ns: list[int] = field(default_factory=list)
    by_script: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    cpu_ns: int = 0  # CPU time of this process over the timed messages (not the server's)

    def cpu_per_message(self) -> float:
        """Mean CPU time of this process per timed message, in nanoseconds."""
        return self.cpu_ns / max(1, len(self.samples_ns))

    def add(self, script: str, ns: int) -> None:
        """Record one message's time."""
        self.samples_ns.append(ns)
        self.by_script[script].append(ns)

    def summary(self) -> Summary:
        """Statistics over every message."""
        return Summary.of(self.samples_ns)


@dataclass(frozen=True)
class PostgresInfo:
    """The benchmark database, or why there is none."""

    url: str | None
    version: str = ""
    settings: str = ""
    problem: str = ""


@contextmanager
def _gc_collected() -> Iterator[None]:
    """Start a measurement with no garbage left over from the previous one."""
    gc.collect()
    yield
    gc.collect()


# --- engine alone ---------------------------------------------------------------------------


def measure_engine(lexicon: Lexicon, plan: Plan) -> Timings:
    """Each ``step()`` timed on its own, over every script, many times."""
    ctx = engine_context(lexicon)
    scripted = [(s.name, s.inbounds("+38344000000", s.name)) for s in SCRIPTS]
    timings = Timings()
    step = complaint_dialog.step
    clock = time.perf_counter_ns
    with _gc_collected():
        for rep in range(plan.engine_warmup + plan.engine_reps):
            timed = rep >= plan.engine_warmup
            for name, inbounds in scripted:
                conv = new_conversation()
                for inbound in inbounds:
                    started = clock()
                    result = step(conv, inbound, ctx)
                    elapsed = clock() - started
                    conv = result.conversation
                    if timed:
                        timings.add(name, elapsed)
    return timings


# --- engine + storage -----------------------------------------------------------------------


def bench_settings(database_url: str, folder: Path) -> Settings:
    """Settings for the benchmark: fresh keys, a temporary instance folder."""
    return Settings(
        database_url=database_url,
        secret_key="bench-secret-key",
        encryption_keys=(Fernet.generate_key().decode(),),
        hash_key="bench-hash-key",
        instance_dir=folder / "instance",
        storage_dir=folder / "attachments",
    )


def _sender(script: Script, n: int) -> str:
    """A phone number (SMS) or a chat id (Telegram) for person ``n``."""
    return f"+38344{n:06d}" if script.channel == "sms" else str(700_000_000 + n)


def _replay(
    services: Services, reps: int, first_person: int, on_message: Callable[[str, int], None]
) -> int:
    """Every script ``reps`` times, each time by a new person; returns the next person number."""
    person = first_person
    handle = services.intake.handle
    clock = time.perf_counter_ns
    for _ in range(reps):
        for script in SCRIPTS:
            person += 1
            inbounds = script.inbounds(_sender(script, person), f"p{person}")
            reference = None
            for inbound in inbounds:
                started = clock()
                result = handle(inbound)
                on_message(script.name, clock() - started)
                reference = reference or result.complaint_reference
            if reference is None:
                raise RuntimeError(f"script {script.name} did not submit a report through storage")
    return person


class StorageSession:
    """``IntakeService.handle()`` on one database, replayed in rounds; each message timed."""

    def __init__(self, database_url: str, folder: Path) -> None:
        self.services = build_services(bench_settings(database_url, folder))
        self.timings = Timings()
        self._person = 0
        with self.services.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
                self.detail = f"journal_mode={mode}, synchronous={names.get(int(sync or 0), sync)}"
            else:
                self.detail = ", ".join(
                    f"{name}={conn.execute(text(f'SHOW {name}')).scalar()}"
                    for name in ("synchronous_commit", "fsync", "wal_sync_method")
                )

    def replay(self, reps: int, *, timed: bool) -> None:
        """Every script ``reps`` times by new people, one committed transaction per message."""
        with _gc_collected():
            if not timed:
                self._person = _replay(self.services, reps, self._person, lambda _s, _ns: None)
                return
            cpu_started = time.process_time_ns()
            self._person = _replay(self.services, reps, self._person, self.timings.add)
            self.timings.cpu_ns += time.process_time_ns() - cpu_started

    def close(self) -> tuple[Timings, str]:
        """Release the database; the timings and the durability settings."""
        self.services.engine.dispose()
        return self.timings, self.detail


def measure_interleaved(
    urls: dict[str, str], folder: Path, pickle_path: Path, plan: Plan
) -> tuple[dict[str, tuple[Timings, str]], ptb_baseline.BaselineRun]:
    """Ours on each database and the durable baseline, in alternating rounds after warm-ups.

    Each side replays the same scripts for the same number of people as it would alone.
    """
    sessions = {label: StorageSession(url, folder) for label, url in urls.items()}
    baseline = ptb_baseline.BaselineSession(pickle_path, durable=True)
    try:
        for session in sessions.values():
            session.replay(plan.storage_warmup, timed=False)
        baseline.replay(SCRIPTS, plan.baseline_warmup, timed=False)
        for n in range(plan.rounds):
            for session in sessions.values():
                session.replay(_share(plan.storage_reps, plan.rounds, n), timed=True)
            with _gc_collected():
                baseline.replay(SCRIPTS, _share(plan.baseline_reps, plan.rounds, n), timed=True)
    finally:
        results = {label: session.close() for label, session in sessions.items()}
        durable = baseline.close()
    return results, durable


def _share(total: int, rounds: int, n: int) -> int:
    """Round ``n``'s part of ``total`` repetitions split over ``rounds`` (they add up)."""
    return total * (n + 1) // rounds - total * n // rounds


def prepare_postgres(url: str) -> PostgresInfo:
    """Create the benchmark database when missing, drop its schema, and migrate it."""
    parsed = make_url(url)
    database = parsed.database or ""
    if "bench" not in database:
        return PostgresInfo(None, problem=f"refusing to drop the schema of '{database}'")
    params = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "connect_timeout": 5,
        "autocommit": True,
    }
    try:
        with psycopg.connect(dbname="postgres", **params) as admin:  # type: ignore[arg-type]
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if found.fetchone() is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        with psycopg.connect(dbname=database, **params) as conn:  # type: ignore[arg-type]
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
            row = conn.execute("SHOW server_version").fetchone()
            version = str(row[0]) if row else "unknown"
    except psycopg.OperationalError as exc:
        return PostgresInfo(None, problem=str(exc).splitlines()[0])
    migrate.upgrade(url)
    return PostgresInfo(url, version=version)


# --- where the time goes --------------------------------------------------------------------

_AREAS: tuple[tuple[str, str], ...] = (
    ("/dialogs/", "dialog engine (dialogs/)"),
    ("/transitions/", "transitions (state machine library)"),
    ("/logging/", "logging (log records)"),
    ("/bot/", "intake service and rendering (bot/)"),
    ("/storage/", "storage layer (storage/)"),
    ("/babel/", "Babel (catalog look-ups)"),
    ("/cryptography/", "cryptography (Fernet, HMAC)"),
    ("/sqlalchemy/", "SQLAlchemy (ORM, core)"),
    ("/psycopg", "psycopg (driver, including waiting for the server)"),
    ("/sqlite3/", "sqlite3 (driver)"),
)


def _area(filename: str, function: str) -> str:
    """The part of the stack a profiled function belongs to."""
    for needle, label in _AREAS:
        if needle in filename:
            return label
    if filename == "~":
        if "sqlite3" in function:
            return "sqlite3 (driver)"
        if "psycopg" in function:
            return "psycopg (driver, including waiting for the server)"
        if any(word in function for word in ("cipher", "hmac", "_hashlib", "openssl", "rust")):
            return "cryptography (Fernet, HMAC)"
        return "Python built-ins (isinstance, dict.get, ...)"
    return "standard library, other"


# Stages: what the intake service and the unit of work call, by cumulative time.
_STAGE_PARENTS = (
    ("bot/intake.py", "_handle"),
    ("bot/intake.py", "handle"),
    ("storage/db.py", "__call__"),
)


@dataclass
class Profile:
    """Where the time of ``IntakeService.handle()`` goes, as shares of the profiled time."""

    areas: list[tuple[str, float]]
    stages: list[tuple[str, float]]
    text: str


def _stages(raw: dict[Any, Any], total: float) -> list[tuple[str, float]]:
    """Cumulative time of each call made by the service's top-level functions."""
    parents = {
        key
        for key in raw
        if any(key[0].endswith(path) and key[2] == name for path, name in _STAGE_PARENTS)
    }
    shares: dict[str, float] = defaultdict(float)
    for key, (_cc, _nc, _tt, _ct, callers) in raw.items():
        if key in parents:
            continue
        for caller, (_c, _n, _t, cumulative) in callers.items():
            if caller in parents:
                filename, line, name = key
                where = "/".join(Path(filename).parts[-2:]) if filename != "~" else "built-in"
                shares[f"`{name}` ({where}:{line})"] += cumulative / total
    return sorted(shares.items(), key=lambda kv: -kv[1])


def profile_storage(database_url: str, folder: Path, plan: Plan) -> Profile:
    """Self time by part of the stack while handling messages, and the top functions."""
    services = build_services(bench_settings(database_url, folder))
    profiler = cProfile.Profile()
    try:
        # New people (numbered after those of the timed runs), on the already used database.
        person = _replay(services, 1, PROFILE_FIRST_PERSON, lambda _s, _ns: None)
        profiler.enable()
        _replay(services, plan.profile_reps, person, lambda _s, _ns: None)
        profiler.disable()
    finally:
        services.engine.dispose()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        totals[_area(filename, function)] += tottime
    grand = sum(totals.values()) or 1.0
    areas = sorted(((k, v / grand) for k, v in totals.items()), key=lambda kv: -kv[1])
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return Profile(areas, _stages(raw, grand), out.getvalue())


def profile_engine(lexicon: Lexicon, reps: int) -> str:
    """The top functions of the engine alone."""
    ctx = engine_context(lexicon)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        for script in SCRIPTS:
            conv = new_conversation()
            for inbound in script.inbounds("+38344000000", script.name):
                conv = complaint_dialog.step(conv, inbound, ctx).conversation
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


# --- the report -----------------------------------------------------------------------------


def _verdict(value: float, limit: float, *, at_most: bool = True) -> str:
    """Whether a measured value meets its target, in bold."""
    ok = value <= limit if at_most else value >= limit
    return "**met**" if ok else "**missed**"


def _ratio_verdict(baseline: Summary, ours: Summary) -> str:
    """The 3× verdict on the medians, saying so when the means fall short of it."""
    verdict = _verdict(baseline.median / ours.median, TARGET_RATIO, at_most=False)
    if baseline.mean / ours.mean < TARGET_RATIO:
        verdict += " (the means: below)"
    return verdict


def _row(cells: Sequence[str]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(cells) + " |"


@dataclass
class Results:
    """Everything one run measured."""

    engine: Timings
    storage: dict[str, tuple[Timings, str]]
    pg: PostgresInfo
    base_default: ptb_baseline.BaselineRun
    base_durable: ptb_baseline.BaselineRun
    base_preloaded: list[ptb_baseline.BaselineRun]
    profile: Profile | None
    profiled_on: str
    load_average: tuple[float, float, float]
    load_average_end: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _stats_cells(summary: Summary, unit: Callable[[float], str]) -> list[str]:
    """Median, p95, mean and count cells in a unit."""
    return [unit(summary.median), unit(summary.p95), unit(summary.mean), str(summary.n)]


def _target_rows(r: Results) -> list[str]:
    """The rows of the targets table."""
    eng = r.engine.summary()
    rows = [
        _row(
            [
                "one engine step ≤ 100 µs",
                f"{us(eng.median)}; {us(eng.p95)}",
                _verdict(eng.median, TARGET_ENGINE_NS)
                + ("" if eng.p95 <= TARGET_ENGINE_NS else " (p95 above)"),
            ]
        )
    ]
    pg_timings = r.storage.get("PostgreSQL")
    if pg_timings is None:
        return rows + [
            _row(["engine + storage ≤ 2 ms per message on PostgreSQL", "not run", r.pg.problem]),
            _row(["≥ 3× cheaper than the durable baseline", "not run", r.pg.problem]),
        ]
    pgs = pg_timings[0].summary()
    durable = Summary.of(r.base_durable.samples_ns)
    ratio = durable.median / pgs.median
    rows += [
        _row(
            [
                "engine + storage ≤ 2 ms per message on PostgreSQL",
                f"{ms(pgs.median)}; {ms(pgs.p95)}",
                _verdict(pgs.median, TARGET_STORAGE_PG_NS)
                + ("" if pgs.p95 <= TARGET_STORAGE_PG_NS else " (p95 above)"),
            ]
        ),
        _row(
            [
                "≥ 3× cheaper per message than the ConversationHandler baseline, both durable "
                f"per message, same people ({r.base_durable.users})",
                f"baseline {ms(durable.median)} ÷ ours on PostgreSQL {ms(pgs.median)} "
                f"= {ratio:.2f}×; of the means {durable.mean / pgs.mean:.2f}×",
                _ratio_verdict(durable, pgs),
            ]
        ),
    ]
    sqlite_timings = r.storage.get("SQLite")
    if sqlite_timings is not None:
        lite = sqlite_timings[0].summary()
        lite_ratio = durable.median / lite.median
        rows.append(
            _row(
                [
                    "the same, ours on SQLite: its commit survives a crash of the process but "
                    "not a power loss, as the baseline's write (which, unlike it, can be left "
                    "half-written)",
                    f"baseline {ms(durable.median)} ÷ ours on SQLite {ms(lite.median)} "
                    f"= {lite_ratio:.2f}×; of the means {durable.mean / lite.mean:.2f}×",
                    _ratio_verdict(durable, lite),
                ]
            )
        )
    return rows


def render(options: RunOptions, r: Results, elapsed_s: float) -> str:
    """The Markdown body of the section."""
    eng = r.engine.summary()
    messages_per_rep = sum(len(s.messages) for s in SCRIPTS)
    load = ", ".join(f"{x:.2f}" for x in r.load_average)
    load_end = ", ".join(f"{x:.2f}" for x in r.load_average_end)
    lines = [
        f"## {TITLE}",
        "",
        f"Measured {now_utc()} with `{options.command}` (the section took {elapsed_s:.0f} s)."
        + (" **Quick run: too few samples to publish.**" if options.quick else ""),
        "",
        *machine_lines(r.pg.version or None),
        f"- Load average (1, 5, 15 min) at the start: {load}; at the end: {load_end} (the "
        "machine is shared: other work running at the same time shows up in the numbers)",
        "",
        f"Each figure is per inbound message, over {len(SCRIPTS)} scripted reports "
        f"({messages_per_rep} messages in all) replayed by a new person each time "
        "(`bench/conversations.py`):",
        "",
        *[
            f"- `{s.name}` ({len(s.messages)} messages, {s.channel}): {s.description}"
            for s in SCRIPTS
        ],
        "",
        "### Targets",
        "",
        _row(["target", "measured (median; p95 or ratio of the means)", "verdict (on the median)"]),
        _row(["---", "---", "---"]),
        *_target_rows(r),
        "",
        "### All measurements",
        "",
        _row(["path", "durable per message", "median", "p95", "mean", "messages timed"]),
        _row(["---", "---", "---:", "---:", "---:", "---:"]),
        _row(["engine alone: `complaint_dialog.step()`", "— (no I/O)", *_stats_cells(eng, us)]),
    ]
    for label, (timings, detail) in r.storage.items():
        lines.append(
            _row(
                [
                    f"engine + storage on {label}: `IntakeService.handle()`",
                    f"yes: one transaction ({detail})",
                    *_stats_cells(timings.summary(), ms),
                ]
            )
        )
    default = Summary.of(r.base_default.samples_ns)
    durable = Summary.of(r.base_durable.samples_ns)
    lines += [
        _row(
            [
                f"baseline, {r.base_default.users} people: `process_update()`, "
                "PicklePersistence as it comes",
                "no: written every 60 s and at shutdown",
                *_stats_cells(default, ms),
            ]
        ),
        _row(
            [
                f"baseline, {r.base_durable.users} people: `process_update()` + "
                "`update_persistence()`",
                "to the page cache: whole pickle rewritten, no fsync",
                *_stats_cells(durable, ms),
            ]
        ),
    ]
    for run in r.base_preloaded:
        lines.append(
            _row(
                [
                    f"baseline as above, pickle already holding {run.preloaded:,} earlier "
                    f"reporters ({run.pickle_bytes / 1024:.0f} KiB; first "
                    f"{len(PRELOADED_SCRIPTS)} scripts once)",
                    "to the page cache: whole pickle rewritten, no fsync",
                    *_stats_cells(Summary.of(run.samples_ns), ms),
                ]
            )
        )
    lines.append("")
    cpu = "; ".join(
        f"{label} {ms(t.cpu_per_message())} of {ms(t.summary().mean)}"
        for label, (t, _d) in r.storage.items()
    )
    lines += [
        f"- CPU time of the benchmark's own process per message (mean, of the mean wall time): "
        f"{cpu}. The rest is waiting: for the PostgreSQL server (round trips over TCP, the "
        "WAL flush at commit), for SQLite's file I/O, or for a core when the machine is busy.",
    ]
    for label, (timings, _detail) in r.storage.items():
        ours = timings.summary()
        parts = [
            f"durable, same people {durable.median / ours.median:.2f}× "
            f"({durable.mean / ours.mean:.2f}×)",
            *[
                f"durable, {run.preloaded:,} earlier reporters "
                f"{Summary.of(run.samples_ns).median / ours.median:.2f}×"
                for run in r.base_preloaded
            ],
            f"as it comes (not durable) {default.median / ours.median:.2f}× "
            f"({default.mean / ours.mean:.2f}×)",
        ]
        lines.append(
            f"- Baseline ÷ ours on {label}, median (mean); above 1 means ours is cheaper: "
            + "; ".join(parts)
            + "."
        )
    lines += [
        "",
        "The durable baseline rewrites its whole pickle (twice: user data, then conversation "
        "state) on every message, and PTB's pickler calls back into Python for every object "
        "it writes, so its cost per message grows with everyone it has ever held; our "
        "look-ups go through indexes (our database held only the people of this run; it was "
        "not measured with more). One 60-second flush of the non-durable baseline after "
        f"{r.base_default.users} people took {ms(r.base_default.final_flush_ns)}: with "
        "`on_flush=False` it rewrites the file once per changed entry.",
        "",
        "Per script (median):",
        "",
        _row(["script", "engine alone", *[f"+ storage, {k}" for k in r.storage]]),
        _row(["---", "---:", *["---:" for _ in r.storage]]),
    ]
    for script in SCRIPTS:
        cells = [f"`{script.name}`", us(Summary.of(r.engine.by_script[script.name]).median)]
        cells += [ms(Summary.of(t.by_script[script.name]).median) for t, _ in r.storage.values()]
        lines.append(_row(cells))
    if r.profile is not None:
        lines += [
            "",
            f"### Where the time goes (cProfile, `IntakeService.handle()` on {r.profiled_on})",
            "",
            "The profiler slows Python code more than waiting, so read the shares as a ranking. "
            "By stage (time inside each call the service makes, including what it calls):",
            "",
            _row(["stage", "share"]),
            _row(["---", "---:"]),
            *[_row([label, f"{share:.0%}"]) for label, share in r.profile.stages[:10]],
            "",
            "By part of the stack (own time of its functions):",
            "",
            _row(["part", "share"]),
            _row(["---", "---:"]),
            *[_row([label, f"{share:.0%}"]) for label, share in r.profile.areas if share >= 0.01],
        ]
    lines += ["", *METHOD_NOTES]
    return "\n".join(lines)


METHOD_NOTES = [
    "### How it is measured",
    "",
    "- Engine alone: `complaint_dialog.step()` on the engine's own types, each call timed "
    "with `time.perf_counter_ns` after a warm-up; no I/O, no rendering.",
    "- Engine + storage: `IntakeService.handle()` as the webhooks call it, built by "
    "`bot.app.build_services`: a driver connection from the pool, in a transaction begun on "
    "the driver (`storage/db.py`, `CoreUnit`: SQLAlchemy joins only for ORM work); the "
    "contact (found by keyed hash) and its conversation loaded in one statement, row-locked "
    "on PostgreSQL, beside the de-duplicating insert of the message; engine step; replies "
    "rendered; outbox rows, encrypted answers and NOTIFY written together "
    "(`storage/intake_store.py`: one psycopg pipeline each on PostgreSQL, so three round "
    "trips with the commit); commit. Every inbound body, reply body and set of answers is "
    "encrypted with Fernet; the answers of the person's previous message are recalled from "
    "the token this process wrote, not decrypted (`storage/crypto.py`). A submitted report "
    "is written with Core inserts (complaint, events), not the ORM's unit of work. SQLite is "
    "a fresh file migrated "
    "with `storage.migrate.upgrade`; PostgreSQL is the `raporto_bench` database over TCP on "
    "the same machine, its schema dropped and migrated at the start. One client, one "
    "message at a time: this is latency, not throughput under load.",
    "- Baseline (`bench/ptb_baseline.py`): `Application.builder().token(...)"
    ".persistence(PicklePersistence(...)).concurrent_updates(False).updater(None)` with one "
    '`ConversationHandler(persistent=True, name="report")` of '
    f"{len(ptb_baseline.STATES)} states (one per engine "
    "state that waits for an answer) and a simple handler per state that keeps the answer in "
    "`context.user_data`, builds the reply text and hands it to an in-memory list. The bot's "
    "request backend answers `getMe` locally and refuses any other call, so nothing touches "
    "the network (our path does not send either: it queues replies in the outbox). The same "
    "messages are fed as `Update.de_json(...)` objects (built before the clock starts) to "
    "`await application.process_update(update)` in one event loop. The baseline understands "
    "digits, buttons and exact language names only (no typo-tolerant words, no municipality "
    "matching, no translations, no encryption), so it does less work per message than ours.",
    "- Rounds: after their warm-ups, ours on SQLite, ours on PostgreSQL and the durable "
    "baseline take their timed repetitions in alternating rounds (`Plan.rounds`), each side "
    "the same people as it would alone, so that a slow spell of the shared machine falls on "
    "both sides of the comparison alike rather than on one of them.",
    '- "Durable per message" for the baseline means `await application.update_persistence()` '
    "after every update with `PicklePersistence(on_flush=False)` (the default), which makes "
    "it rewrite the whole pickle file for each changed user_data and conversation entry.",
    "",
    "### Durability, honestly",
    "",
    "- **ConversationHandler + PicklePersistence as it comes** keeps conversations and answers "
    "in memory and writes them every 60 s (`update_interval`) and at a clean shutdown: a "
    "crash, a kill or a deploy that does not shut down cleanly loses every answer and every "
    "conversation state since the last flush. The pickle belongs to one process: two "
    "workers (or a web process beside a worker) cannot share it, so it cannot scale out or "
    "fail over. Made durable per message, it is still written in place without `fsync`: a "
    "process crash after the write keeps the data, but a power loss can lose recent writes, "
    "and a crash in the middle of a write leaves a truncated pickle, which loses everything.",
    "- **Ours** commits each message in one transaction together with its outbox rows: the "
    "answer, the new state and the replies to send are stored together or not at all, a "
    "redelivered message is recognised by its id, and any number of processes share the "
    "database (rows locked per conversation on PostgreSQL). On PostgreSQL with the default "
    "`synchronous_commit=on` (and `fsync=on`) a commit returns only after the WAL is flushed "
    "to disk: it survives a power loss. On SQLite in WAL mode with `synchronous=NORMAL` a "
    "commit is atomic and survives a crash of the process, but the WAL is synced only at "
    "checkpoints: a power loss or OS crash can roll back the last transactions (never "
    "corrupt the file). `synchronous=FULL` would sync every commit, at a cost per message.",
]


def run(options: RunOptions) -> str:
    """Measure every path and return the section."""
    started = time.monotonic()
    load_average = os.getloadavg()
    plan = QUICK if options.quick else FULL
    catalogs = Catalogs()
    lexicon = Lexicon(lambda lang, t: catalogs.text(lang, t))
    check_scripts(lexicon)
    print("engine alone ...", flush=True)
    engine = measure_engine(lexicon, plan)
    with tempfile.TemporaryDirectory(prefix="raporto-bench-") as tmp:
        folder = Path(tmp)
        sqlite_url = f"sqlite:///{folder / 'raporto-bench.db'}"
        migrate.upgrade(sqlite_url)
        urls = {"SQLite": sqlite_url}
        pg = prepare_postgres(PG_URL)
        if pg.url is not None:
            urls["PostgreSQL"] = pg.url
        else:
            print(f"PostgreSQL skipped: {pg.problem}", flush=True)
        print(
            f"engine + storage on {' and '.join(urls)}, and the durable baseline "
            f"(ConversationHandler + PicklePersistence), in {plan.rounds} rounds ...",
            flush=True,
        )
        pickle_path = folder / "baseline.pickle"
        storage, base_durable = measure_interleaved(urls, folder, pickle_path, plan)
        print("baseline as it comes, and with earlier reporters ...", flush=True)
        reps, warmup = plan.baseline_reps, plan.baseline_warmup
        base_default = ptb_baseline.measure(SCRIPTS, reps, warmup, pickle_path, durable=False)
        base_preloaded = [
            ptb_baseline.measure(PRELOADED_SCRIPTS, 1, 0, pickle_path, durable=True, preloaded=n)
            for n in plan.preloaded
        ]
        profiled_on = "PostgreSQL" if pg.url is not None else "SQLite"
        print(f"profiling on {profiled_on} ...", flush=True)
        profile = profile_storage(pg.url or sqlite_url, folder, plan)
        if options.profile:
            print(f"--- cProfile: IntakeService.handle on {profiled_on} ---")
            print(profile.text)
            print("--- cProfile: engine alone ---")
            print(profile_engine(lexicon, max(1, plan.engine_reps // 10)))
    results = Results(
        engine,
        storage,
        pg,
        base_default,
        base_durable,
        base_preloaded,
        profile,
        profiled_on,
        load_average,
        os.getloadavg(),
    )
    return render(options, results, time.monotonic() - started)
