"""The staff desk at a million complaints: inbox latency with each filter, export memory.

PostgreSQL (the ``raporto_bench_desk`` database, dropped and migrated at the start) is seeded
with one SQL ``INSERT … SELECT FROM generate_series`` (secondary indexes dropped first and
rebuilt from their own definitions after, then ``VACUUM ANALYZE``): realistic distributions of
status, priority, area, ground, perpetrator, municipality, language, channel, campaign, legal
support and creation time over two years; descriptions are real Fernet tokens (a handful of
distinct texts encrypted once with the run's key and reused), so the export decrypts as in
production. A few staff accounts hold ~20 % of the cases (the inbox joins assignments).

The inbox is measured as a signed-in triage user sees it: the real app (``create_app``) and its
test client, session from the real sign-in form, ``GET /desk/`` with each filter, first page and
a deep page (a keyset cursor half-way through that filter's rows). Times are whole requests
(query, template, response), in process.

The export runs under a real HTTP server (``bench.desk_server``) in its own process; the CSV
(and the Excel file for a subset) is downloaded and discarded, and the server's peak resident
memory (``VmHWM``) is read from ``/proc``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench import PROJECT_DIR, RunOptions
from bench.report import Summary, machine_lines, now_utc

TITLE = "Staff desk at a million complaints"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/raporto_bench_desk"
PG_URL = os.environ.get("BENCH_DESK_DATABASE_URL", DEFAULT_PG_URL)
HASH_KEY = "bench-desk-hash-key"
PASSWORD = "bench desk password 2026"
TARGET_P95_MS = 150.0
TARGET_RSS_MB = 200.0
ALPHABET = "ACDEFHJKMNPRTUVWXY3479"  # bot.intake.REFERENCE_ALPHABET


@dataclass(frozen=True)
class Plan:
    """How big and how long."""

    complaints: int
    repeats: int
    xlsx_filter: str  # the Excel export runs on this subset


FULL = Plan(complaints=1_000_000, repeats=20, xlsx_filter="municipality=gjakove")
QUICK = Plan(complaints=50_000, repeats=5, xlsx_filter="municipality=gjakove")

# --- distributions (weights, normalised) --------------------------------------------------------

STATUS_RECENT = {"new": 45, "in_review": 35, "referred": 8, "legal_support": 5, "resolved": 4,
                 "closed": 2, "withdrawn": 1}  # fmt: skip
STATUS_OLDER = {"new": 3, "in_review": 8, "referred": 15, "legal_support": 5, "resolved": 40,
                "closed": 26, "withdrawn": 3}  # fmt: skip
PRIORITY = {"P1": 3, "P2": 14, "P3": 38, "P4": 45}
AREA = {"employment": 18, "education": 17, "health": 12, "housing": 13, "social": 14,
        "police_justice": 9, "services": 8, "public_space": 6, "other": 3}  # fmt: skip
GROUND = {"ethnicity": 62, "language": 10, "religion": 4, "gender": 9, "disability": 6,
          "age": 4, "other": 5}  # fmt: skip
PERPETRATOR = {"public_institution": 22, "police": 10, "school": 14, "health_facility": 10,
               "employer": 14, "business": 10, "individual": 12, "online_media": 5,
               "unknown": 3}  # fmt: skip
MUNICIPALITY = {
    "prishtine": 20, "prizren": 12, "ferizaj": 7, "gjakove": 6, "peje": 6, "mitrovice-jugut": 5,
    "gjilan": 5, "podujeve": 5, "vushtrri": 4, "suhareke": 4, "rahovec": 4, "fushe-kosove": 4,
    "lipjan": 4, "drenas": 3, "malisheve": 3, "skenderaj": 3, "kline": 3, "kamenice": 2,
    "viti": 2, "decan": 2, "istog": 2, "dragash": 2, "obiliq": 2, "kacanik": 2, "shtime": 2,
    "gracanice": 1.5, "mitrovice-veriut": 1.5, "shterpce": 1, "novoberde": 0.7,
    "leposaviq": 1, "zubin-potok": 0.8, "zvecan": 0.9, "hani-i-elezit": 0.6, "junik": 0.4,
    "mamushe": 0.3, "kllokot": 0.2, "partesh": 0.2, "ranillug": 0.3, "outside": 2,
}  # fmt: skip
LANGUAGE = {"sq": 40, "rom": 22, "sr_Latn": 12, "sr_Cyrl": 5, "tr": 6, "bs": 5, "en": 10}
CHANNEL = {"sms": 62, "telegram": 38}
CAMPAIGN = {"": 80, "schools-2025": 8, "roma-rights-week": 6, "radio-spot": 4,
            "health-2026": 1.5, "pilot-gjakove": 0.5}  # fmt: skip
OCCURRED = {"today": 10, "this_week": 25, "this_month": 30, "earlier": 20, "ongoing": 15}
CONTACT = {"this": 60, "other": 15, "none": 25}
SHARING = {"yes": 40, "after_talk": 45, "no": 15}
STAKES = {'["child"]': 20, '["job"]': 12, '["home"]': 8, '["health_care"]': 6,
          '["documents"]': 8, '["child", "job"]': 6, '["none"]': 40}  # fmt: skip
LEGAL_SHARE = 0.22
TEST_SHARE = 0.01
DESCRIPTIONS = (
    "Mësuesja e uli djalin tim në fund të klasës bashkë me fëmijët e tjerë romë dhe nuk i jep "
    "libra. Kur u ankova, drejtori tha që kështu është rregulli.",
    "At the municipal office they refused to register my child's birth without documents "
    "that nobody in our family has ever had, and told me to come back with a lawyer.",
    "Na zaposlenju su mi rekli da ne primaju ljude iz našeg naselja. Posao je dobila osoba sa "
    "manje iskustva, a šef je to rekao pred svima.",
    "U bolnici su nas ostavili da čekamo ceo dan dok su druge primali odmah. Sestra je rekla da "
    "Romi uvek mogu da čekaju.",
    "Qiradhënësi na tha të largohemi brenda një jave sepse fqinjët nuk duan familje si e jona "
    "në pallat. Nuk kemi ku të shkojmë me tre fëmijë.",
    "Polisi durdurdu, kimliğimi istedi ve arkadaşlarıma hiçbir şey sormadı. Her hafta aynı "
    "şey oluyor, sadece bize.",
    "The shop guard followed us through every aisle and then asked us to leave. Others were "
    "not asked anything. This happens every time.",
    "Në rrjetet sociale dikush po shpërndan fotot e familjes sime me fyerje. E kam raportuar "
    "por askush nuk ka bërë asgjë deri tani, dhe fëmijët kanë frikë të dalin.",
)


def _case(column: str, weights: dict[str, float], cast: str = "") -> str:
    """A SQL CASE picking a value by a uniform random column, with the given weights."""
    total = sum(weights.values())
    parts, running = [], 0.0
    items = list(weights.items())
    for value, weight in items[:-1]:
        running += weight / total
        parts.append(f"WHEN {column} < {running:.6f} THEN {_literal(value)}{cast}")
    return f"CASE {' '.join(parts)} ELSE {_literal(items[-1][0])}{cast} END"


def _literal(value: str) -> str:
    return "NULL" if value == "" else "'" + value.replace("'", "''") + "'"


def _reference_sql(x: str) -> str:
    """RAE- and six letters of the reference alphabet: base 22 digits of ``x``."""
    digits = " || ".join(
        f"substr('{ALPHABET}', (({x} / {22**k}) % 22)::int + 1, 1)" for k in range(5, -1, -1)
    )
    return f"'RAE-' || {digits}"


def seed_sql(count: int) -> str:
    """One INSERT … SELECT of ``count`` complaints (deterministic: setseed first)."""
    # (n * a + c) mod 22^6 with a coprime to 22^6 is a bijection: references are unique.
    x = f"((s.n::bigint * 1103515245 + 12345) % {22**6})"
    return f"""
INSERT INTO complaint (reference, pin_hash, contact_id, channel, language, status, urgent,
  area, ground, ground_other, perpetrator, municipality, occurred, description, stakes,
  contact_preference, contact_phone, legal_support, sharing, campaign, is_test, created_at,
  updated_at, priority, priority_reasons, institutions)
SELECT {_reference_sql(x)}, repeat('x', 64), NULL,
  {_case("s.r_channel", CHANNEL)}, {_case("s.r_language", LANGUAGE)},
  CASE WHEN s.age_days < 30 THEN {_case("s.r_status", STATUS_RECENT)}
       ELSE {_case("s.r_status", STATUS_OLDER)} END,
  s.prio = 'P1' AND s.r_misc < 0.5,
  {_case("s.r_area", AREA)}, s.ground,
  CASE WHEN s.ground = 'other' THEN t.token END,
  {_case("s.r_perp", PERPETRATOR)}, {_case("s.r_muni", MUNICIPALITY)},
  {_case("s.r_occ", OCCURRED)}, t.token, ({_case("s.r_stakes", STAKES)})::json,
  {_case("s.r_contact", CONTACT)}, NULL, s.r_legal < {LEGAL_SHARE},
  {_case("s.r_sharing", SHARING)}, {_case("s.r_campaign", CAMPAIGN)}, s.r_test < {TEST_SHARE},
  s.created, s.created + (s.r_misc * least(s.age_days, 60)) * interval '1 day', s.prio,
  CASE WHEN s.prio IN ('P1', 'P2')
       THEN '[{{"code": "child_affected", "priority": "P2", "source": "answer"}}]'::json
       ELSE '[]'::json END,
  '[{{"name": "Ombudsperson Institution of Kosovo", "verified": true}}]'::json
FROM (
  SELECT g.n, a.age_days, now() - a.age_days * interval '1 day' AS created,
    {_case("a.r_prio", PRIORITY)} AS prio, {_case("a.r_ground", GROUND)} AS ground,
    a.r_channel, a.r_language, a.r_status, a.r_misc, a.r_area, a.r_perp, a.r_muni, a.r_occ,
    a.r_stakes, a.r_contact, a.r_legal, a.r_sharing, a.r_campaign, a.r_test
  FROM generate_series(1, {count}) AS g(n)
  CROSS JOIN LATERAL (
    SELECT (1 - sqrt(random())) * 730 AS age_days, random() AS r_prio, random() AS r_ground,
      random() AS r_channel, random() AS r_language, random() AS r_status, random() AS r_misc,
      random() AS r_area, random() AS r_perp, random() AS r_muni, random() AS r_occ,
      random() AS r_stakes, random() AS r_contact, random() AS r_legal, random() AS r_sharing,
      random() AS r_campaign, random() AS r_test, g.n AS dep
  ) a
) s
JOIN bench_description t ON t.i = s.n % {len(DESCRIPTIONS)}
"""


def _pg_params(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "connect_timeout": 5,
        "autocommit": True,
    }


def prepare_postgres(url: str) -> str:
    """Create the benchmark database when missing, drop its schema, migrate; the version."""
    from storage import migrate

    database = make_url(url).database or ""
    if "bench" not in database:
        raise RuntimeError(f"refusing to drop the schema of '{database}'")
    params = _pg_params(url)
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


@dataclass(frozen=True)
class Seeded:
    """What the seed wrote and how long it took."""

    complaints: int
    assignments: int
    seconds: float
    insert_seconds: float
    index_seconds: float
    table_mb: float
    indexes_mb: float


def seed(url: str, keys: list[str], count: int) -> Seeded:
    """Write ``count`` complaints, staff accounts and assignments; VACUUM ANALYZE."""
    from storage.crypto import KeyRing

    ring = KeyRing(keys, HASH_KEY)
    started = time.monotonic()
    params = _pg_params(url)
    database = make_url(url).database
    with psycopg.connect(dbname=database, **params) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.2026)")
        conn.execute("CREATE TEMP TABLE bench_description (i int PRIMARY KEY, token bytea)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bench_description VALUES (%s, %s)",
                [(i, ring.encrypt(text)) for i, text in enumerate(DESCRIPTIONS)],
            )
        # Secondary indexes are dropped and rebuilt from their own definitions: much faster
        # than maintaining six indexes row by row (constraint indexes stay).
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'complaint' "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ).fetchall()
        for name, _definition in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute(seed_sql(count))
        inserted = time.monotonic()
        for _name, definition in indexes:
            conn.execute(definition)
        indexed = time.monotonic()
        # Staff: the bench triage user signs in; five colleagues hold ~20 % of the cases.
        conn.execute(
            "INSERT INTO staff_user (email, name, role, password_hash, active, language, "
            "failed_logins, password_changed_at, created_at) SELECT 'colleague' || n || "
            "'@desk.bench', 'Colleague ' || n, 'triage', 'x', true, 'sq', 0, now(), now() "
            "FROM generate_series(1, 5) n"
        )
        conn.execute(
            "INSERT INTO case_assignment (complaint_id, staff_user_id, assigned_by, assigned_at) "
            "SELECT c.id, (SELECT min(id) FROM staff_user) + (c.id % 5), NULL, c.updated_at "
            "FROM complaint c WHERE c.status <> 'new' AND c.id % 4 = 0"
        )
        conn.execute("VACUUM ANALYZE complaint")
        conn.execute("VACUUM ANALYZE case_assignment")
        conn.execute("VACUUM ANALYZE staff_user")
        assignments = conn.execute("SELECT count(*) FROM case_assignment").fetchone()
        sizes = conn.execute(
            "SELECT pg_table_size('complaint'), pg_indexes_size('complaint')"
        ).fetchone()
    assert assignments is not None and sizes is not None
    return Seeded(
        complaints=count,
        assignments=int(assignments[0]),
        seconds=time.monotonic() - started,
        insert_seconds=inserted - started,
        index_seconds=indexed - inserted,
        table_mb=sizes[0] / 1e6,
        indexes_mb=sizes[1] / 1e6,
    )


# --- the app, signed in ---------------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_ROW = re.compile(r'href="/desk/case/RAE-')


def make_settings(url: str, keys: list[str], instance: Path) -> Any:
    """Settings for the benchmark database."""
    from bot.settings import Settings

    return Settings(
        database_url=url,
        secret_key="bench-desk-secret",
        encryption_keys=tuple(keys),
        hash_key=HASH_KEY,
        instance_dir=instance,
        storage_dir=instance / "attachments",
    )


def create_bench_user(app: Any) -> str:
    """The triage account the benchmark signs in with (the project's own function)."""
    from bot.app import Services
    from staff import accounts

    services: Services = app.extensions["raporto"]
    email = "triage@desk.bench"
    with services.uow() as db:
        accounts.create_user(
            db, email=email, name="Bench Triage", role="triage", password=PASSWORD,
            language="en",
        )  # fmt: skip
    return email


def sign_in(client: Any, email: str) -> None:
    """Sign in through the real form (CSRF token from the page)."""
    page = client.get("/desk/login?lang=en").get_data(as_text=True)
    found = _CSRF.search(page)
    assert found, "no CSRF token on the sign-in page"
    response = client.post(
        "/desk/login", data={"email": email, "password": PASSWORD, "csrf_token": found.group(1)}
    )
    assert response.status_code == 302, f"sign-in failed: {response.status_code}"


# --- the inbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One inbox request to time."""

    label: str
    query: str  # the query string, without a cursor


def inbox_cases(sample_reference: str) -> list[Case]:
    """Each single filter, a few combinations, and no filter."""
    return [
        Case("no filter", ""),
        Case("status = new", "status=new"),
        Case("status = resolved", "status=resolved"),
        Case("status = withdrawn", "status=withdrawn"),
        Case("priority = P1", "priority=P1"),
        Case("priority = P4", "priority=P4"),
        Case("area = housing", "area=housing"),
        Case("ground = disability", "ground=disability"),
        Case("perpetrator = police", "perpetrator=police"),
        Case("municipality = prishtine", "municipality=prishtine"),
        Case("municipality = junik (rare)", "municipality=junik"),
        Case("language = rom", "language=rom"),
        Case("channel = telegram", "channel=telegram"),
        Case("campaign = schools-2025", "campaign=schools-2025"),
        Case("campaign = pilot-gjakove (rare)", "campaign=pilot-gjakove"),
        Case("campaign = unknown (no match)", "campaign=nothing-like-this"),
        Case("legal support = yes", "legal=yes"),
        Case("legal support = no", "legal=no"),
        Case("dates: last 30 days", "from={d30}"),
        Case("dates: one month a year ago", "from={y1}&to={y1e}"),
        Case("test data included", "test=1"),
        Case("reference search", f"q={sample_reference}"),
        Case("reference search, unknown", "q=RAE-AAAAAA"),
        Case("status = new + priority = P1", "status=new&priority=P1"),
        Case(
            "status = in_review + municipality = prizren", "status=in_review&municipality=prizren"
        ),
        Case("area + ground + legal", "area=education&ground=ethnicity&legal=yes"),
        Case(
            "language = rom + channel = sms + last 90 days", "language=rom&channel=sms&from={d90}"
        ),
        Case("municipality = junik + priority = P1", "municipality=junik&priority=P1"),
        Case(
            "rare combination: partesh + age + withdrawn",
            "municipality=partesh&ground=age&status=withdrawn",
        ),
        Case(
            "rare combination: kllokot + religion + police",
            "municipality=kllokot&ground=religion&perpetrator=police",
        ),
    ]


def _dates() -> dict[str, str]:
    import datetime as dt

    today = dt.date.today()
    year_ago = today - dt.timedelta(days=365)
    return {
        "d30": (today - dt.timedelta(days=30)).isoformat(),
        "d90": (today - dt.timedelta(days=90)).isoformat(),
        "y1": year_ago.isoformat(),
        "y1e": (year_ago + dt.timedelta(days=30)).isoformat(),
    }


@dataclass
class Timing:
    """The timings of one case on one page."""

    label: str
    page: str  # "first" or "deep"
    query: str
    rows: int
    summary: Summary
    sql_ms: float  # median time in the inbox SQL statement itself


class SqlClock:
    """Times the inbox statement (the one that reads ``complaint`` ordered for the inbox)."""

    def __init__(self, engine: Any) -> None:
        self.samples: list[float] = []
        self.last: tuple[str, Any] | None = None
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _is_inbox(self, statement: str) -> bool:
        return "FROM complaint" in statement and "ORDER BY complaint.priority" in statement

    def _before(self, _conn: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
        if self._is_inbox(statement):
            self._started = time.perf_counter()
            self.last = (statement, params)

    def _after(self, _conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if self._is_inbox(statement):
            self.samples.append((time.perf_counter() - self._started) * 1000)


def deep_cursor(conn: psycopg.Connection[Any], statement: str, params: Any) -> str | None:
    """A cursor half-way through a filter's rows (found once with OFFSET, not timed)."""
    from staff.queries import encode_cursor

    # The statement reads columns id, reference, created_at, status, priority, … in this order.
    base = statement.split(" ORDER BY complaint.priority")[0]
    count = conn.execute(f"SELECT count(*) FROM ({base}) q", params).fetchone()
    total = int(count[0]) if count else 0
    if total < 200:
        return None
    row = conn.execute(
        f"SELECT q.priority, q.created_at, q.id FROM ({base}) q "
        f"ORDER BY q.priority, q.created_at, q.id OFFSET {total // 2} LIMIT 1",
        params,
    ).fetchone()
    return encode_cursor(row[0], row[1], int(row[2])) if row else None


def explain(conn: psycopg.Connection[Any], statement: str, params: Any) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one inbox statement, as text."""
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).fetchall()
    return "\n".join(r[0] for r in rows)


def measure_inbox(
    app: Any, email: str, repeats: int, sample_reference: str, url: str
) -> tuple[list[Timing], dict[str, str]]:
    """Time every case, first page and deep page; plans of the slowest."""
    from bot.app import Services

    services: Services = app.extensions["raporto"]
    clock = SqlClock(services.engine)
    client = app.test_client()
    sign_in(client, email)
    dates = _dates()
    timings: list[Timing] = []
    statements: dict[tuple[str, str], tuple[str, Any]] = {}
    params = _pg_params(url)
    with psycopg.connect(dbname=make_url(url).database, **params) as raw:
        for case in inbox_cases(sample_reference):
            query = case.query.format(**dates)
            pages: list[tuple[str, str]] = [("first", query)]
            # Find the statement of this filter, then a cursor half-way through its rows.
            client.get(f"/desk/?{query}")
            assert clock.last is not None
            cursor = deep_cursor(raw, *clock.last)
            if cursor:
                pages.append(("deep", f"{query}&after={cursor}" if query else f"after={cursor}"))
            for page, qs in pages:
                path = f"/desk/?{qs}"
                t0 = time.perf_counter()
                response = client.get(path)  # warm-up
                assert response.status_code == 200, f"{path}: {response.status_code}"
                # A request slower than a second is timed 5 times, not 20 (shown as n).
                count = repeats if time.perf_counter() - t0 < 1.0 else min(repeats, 5)
                rows = len(_ROW.findall(response.get_data(as_text=True)))
                clock.samples.clear()
                samples: list[int] = []
                for _ in range(count):
                    t0 = time.perf_counter_ns()
                    response = client.get(path)
                    response.get_data()
                    samples.append(time.perf_counter_ns() - t0)
                    assert response.status_code == 200
                assert clock.last is not None
                statements[(case.label, page)] = clock.last
                sql_samples = sorted(clock.samples)
                timings.append(
                    Timing(case.label, page, qs, rows, Summary.of(samples),
                           sql_samples[len(sql_samples) // 2] if sql_samples else 0.0)
                )  # fmt: skip
                t = timings[-1]
                print(
                    f"  {case.label:45} {page:5} rows {rows:3}  p50 "
                    f"{t.summary.median / 1e6:7.1f} ms  p95 {t.summary.p95 / 1e6:7.1f} ms  "
                    f"sql {t.sql_ms:7.1f} ms",
                    flush=True,
                )
        plans: dict[str, str] = {}
        slow = sorted(timings, key=lambda t: t.summary.p95, reverse=True)
        for t in slow[:4]:
            if t.summary.p95 / 1e6 <= TARGET_P95_MS * 0.5 and plans:
                break
            statement, values = statements[(t.label, t.page)]
            plans[f"{t.label} ({t.page} page)"] = explain(raw, statement, values)
    return timings, plans


# --- the export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRun:
    """One download: what, how big, how long, the server's memory."""

    label: str
    query: str
    rows: int
    megabytes: float
    seconds: float
    rss_before_mb: float
    peak_rss_mb: float  # VmHWM of the server process during the download (reset just before)
    peak_before_mb: float  # VmHWM before the download (start-up, argon2 sign-in, one inbox)
    completed: bool


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure_exports(url: str, keys: list[str], instance: Path, email: str,
                    runs: list[tuple[str, str, str, float]]) -> list[ExportRun]:  # fmt: skip
    """Each export in a fresh server process; peak RSS from /proc/<pid>/status VmHWM."""
    import httpx

    results = []
    env = {**os.environ, "BENCH_DESK_URL": url, "BENCH_DESK_KEYS": ",".join(keys),
           "BENCH_DESK_HASH_KEY": HASH_KEY, "BENCH_DESK_INSTANCE": str(instance)}  # fmt: skip
    for label, fmt, query, timeout in runs:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.desk_server"], cwd=PROJECT_DIR, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=120) as client:
                page = client.get("/desk/login?lang=en").text
                token = _CSRF.search(page)
                assert token
                signed = client.post("/desk/login", data={
                    "email": email, "password": PASSWORD, "csrf_token": token.group(1)})  # fmt: skip
                assert signed.status_code == 302, signed.status_code
                client.get("/desk/")  # the app warmed up as a real user would have it
                before = _status_kb(proc.pid, "VmRSS") / 1024
                hwm_before = _status_kb(proc.pid, "VmHWM") / 1024
                # Reset the peak, so VmHWM afterwards is the download's own peak: sign-in
                # hashes with argon2id (64 MiB of memory for a moment) before it.
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
                size = lines = 0
                completed = True
                t0 = time.monotonic()
                with client.stream("GET", f"/desk/export.{fmt}?{query}") as response:
                    assert response.status_code == 200, response.status_code
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if fmt == "csv":
                            lines += chunk.count(b"\n")
                        if time.monotonic() - t0 > timeout:
                            completed = False
                            break
                seconds = time.monotonic() - t0
                peak = _status_kb(proc.pid, "VmHWM") / 1024
        finally:
            proc.terminate()
            proc.wait(30)
        rows = lines - 1 if fmt == "csv" else -1
        results.append(
            ExportRun(label, query, rows, size / 1e6, seconds, before, peak, hwm_before, completed)
        )
        print(
            f"  {label}: {size / 1e6:.1f} MB in {seconds:.1f} s, RSS before {before:.0f} MB, "
            f"peak during it {peak:.0f} MB (peak before it, at sign-in: {hwm_before:.0f} MB)"
            f"{'' if completed else ' (stopped at the time limit)'}",
            flush=True,
        )
    return results


# --- the section ----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def reading(timings: list[Timing]) -> list[str]:
    """What the inbox numbers say: the SQL statement against the rest of the request."""
    slowest_sql = max(timings, key=lambda t: t.sql_ms)
    app_ms = sorted(t.summary.median / 1e6 - t.sql_ms for t in timings)
    return [
        "### Reading the inbox numbers",
        "",
        f"- The inbox SQL statement itself takes at most {slowest_sql.sql_ms:.1f} ms (median; "
        f"{slowest_sql.label}, {slowest_sql.page} page). Every filter the inbox offers has an "
        "index that either serves the inbox order (priority, then age, then id) with that "
        "filter first, so a page is one short range scan however deep, or narrows a rare "
        "combination to a few rows before they are sorted (migrations 0004 and 0005):",
        "  - `ix_complaint_inbox` (`is_test`, `priority`, `created_at`, `id`): no filter, and "
        "common values of any filter (the scan stops after 51 matching rows);",
        "  - `ix_complaint_inbox_any` (`priority`, `created_at`, `id`): test data included;",
        "  - `ix_complaint_inbox_status`, `ix_complaint_inbox_legal`, "
        "`ix_complaint_inbox_municipality` and the partial `ix_complaint_inbox_campaign` "
        "(`campaign IS NOT NULL`): the same order after a status, legal support, municipality or "
        "campaign, so rare and unknown values cost no more than common ones;",
        "  - `ix_complaint_area`, `ix_complaint_ground`, `ix_complaint_perpetrator`, "
        "`ix_complaint_language`: combined (bitmap AND) with the others for rare combinations.",
        "- With a priority filter the keyset condition after a cursor is `(created_at, id) > "
        "…` within that priority (`staff.queries.after_position`): the three-column comparison "
        "next to `priority = 'P4'` made PostgreSQL start at the first P4 entry and read half "
        "of them for a deep page.",
        f"- The rest of a request — the session looked up from its cookie (one query), the "
        f"filter choices, rendering 50 rows — takes {app_ms[len(app_ms) // 2]:.1f} ms at the "
        f"median over the cases ({app_ms[0]:.1f}–{app_ms[-1]:.1f} ms); the p95 column is "
        "mostly the machine's other work (see the load average above).",
    ]


def render(
    options: RunOptions, plan: Plan, version: str, seeded: Seeded, timings: list[Timing],
    plans: dict[str, str], exports: list[ExportRun], load: tuple[float, float, float],
    elapsed: float, counts: dict[str, int],
) -> str:  # fmt: skip
    """The Markdown section."""
    worst = max(timings, key=lambda t: t.summary.p95)
    misses = [t for t in timings if t.summary.p95 / 1e6 > TARGET_P95_MS]
    full_csv = next((e for e in exports if e.label.startswith("CSV, all")), None)
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
        f"- Data: {seeded.complaints:,} complaints over two years ({seeded.assignments:,} "
        f"assigned), seeded in {seeded.seconds:.0f} s (insert {seeded.insert_seconds:.0f} s, "
        f"indexes {seeded.index_seconds:.0f} s); table {seeded.table_mb:.0f} MB, its indexes "
        f"{seeded.indexes_mb:.0f} MB",
        "",
        "### Targets",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
        f"| inbox with any filter p95 ≤ {TARGET_P95_MS:.0f} ms at {seeded.complaints:,} "
        f"complaints | worst p95 {worst.summary.p95 / 1e6:.1f} ms ({worst.label}, "
        f"{worst.page} page); {len(misses)} of {len(timings)} cases over | "
        f"{_verdict(not misses)} |",
    ]
    if full_csv is not None:
        lines.append(
            f"| full export under {TARGET_RSS_MB:.0f} MB resident memory | CSV of "
            f"{full_csv.rows:,} rows: peak {full_csv.peak_rss_mb:.0f} MB during the download "
            f"(whole server process; {full_csv.rss_before_mb:.0f} MB idle before it; "
            f"{full_csv.peak_before_mb:.0f} MB peak at start-up + argon2 sign-in) | "
            f"{_verdict(full_csv.peak_rss_mb < TARGET_RSS_MB and full_csv.completed)} |"
        )
    lines += [
        "",
        f"### Inbox (`GET /desk/`, signed in as triage, {plan.repeats} requests each)",
        "",
        "Whole requests through the app (query, template, response) and, separately, the median "
        'time of the inbox SQL statement inside them. "deep" is the page after a keyset '
        'cursor half-way through that filter\'s rows. "matching" is how many complaints the '
        "filter selects (test data excluded unless asked).",
        "",
        "| filter | matching | page | rows | n | p50 | p95 | SQL p50 | ≤ 150 ms |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in timings:
        lines.append(
            f"| {t.label} | {counts.get(t.label, 0):,} | {t.page} | {t.rows} | {t.summary.n} | "
            f"{t.summary.median / 1e6:.1f} ms | {t.summary.p95 / 1e6:.1f} ms | "
            f"{t.sql_ms:.1f} ms | {_verdict(t.summary.p95 / 1e6 <= TARGET_P95_MS)} |"
        )
    lines += [
        "",
        "### Export (`GET /desk/export.csv|xlsx` under a real HTTP server)",
        "",
        "Each download runs in a fresh server process (`python -m bench.desk_server`, werkzeug, "
        "signed in through the form); the body is read and discarded. Peak memory is that "
        "process's `VmHWM` from `/proc/<pid>/status` (the whole process: Python, the app, "
        "SQLAlchemy, the download). The peak is reset (`echo 5 > /proc/<pid>/clear_refs`) just "
        "before the download, after sign-in: signing in verifies an argon2id hash, which takes "
        '64 MiB for a moment and would otherwise be the process\'s peak. "RSS before" is the '
        "resident memory of the idle, warmed-up server.",
        "",
        "| export | filter | rows | size | duration | RSS before | peak at start-up + "
        "sign-in | peak during the download | < 200 MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in exports:
        rows = f"{e.rows:,}" if e.rows >= 0 else "—"
        note = "" if e.completed else " (stopped at the time limit)"
        lines.append(
            f"| {e.label}{note} | `{e.query or 'none'}` | {rows} | {e.megabytes:.0f} MB | "
            f"{e.seconds:.0f} s | {e.rss_before_mb:.0f} MB | {e.peak_before_mb:.0f} MB | "
            f"{e.peak_rss_mb:.0f} MB | "
            f"{_verdict(e.peak_rss_mb < TARGET_RSS_MB)} |"
        )
    lines += ["", *reading(timings)]
    if plans:
        lines += ["", "### Plans of the slowest inbox requests", ""]
        for name, text in plans.items():
            lines += [f"{name}:", "", "```", text, "```", ""]
    lines += [
        "",
        "### How it is measured",
        "",
        "- Seeding: the database is dropped and migrated (`storage.migrate.upgrade`), the "
        "complaint table's secondary indexes are dropped, one `INSERT … SELECT FROM "
        "generate_series` writes every complaint (`setseed` makes it repeatable), the indexes "
        "are recreated from their own definitions, then `VACUUM ANALYZE`. Creation times lean "
        "to the recent (density rising over two years); statuses of the last 30 days are "
        "mostly new / in review, older ones mostly resolved / closed; 22 % ask for legal "
        "support, 1 % are test data, 20 % come from a campaign.",
        "- Inbox: `create_app` on the benchmark database, a triage account made with "
        "`staff.accounts.create_user`, signed in through `/desk/login` with the test client; "
        "one warm-up request, then the timed ones, one after another.",
        "- Export: see above; the Excel export runs on a subset only (openpyxl writes about "
        "10⁵ cells a second: a million rows of 20 columns would take minutes).",
    ]
    return "\n".join(lines)


def filter_counts(url: str, timings: list[Timing], sample_reference: str) -> dict[str, int]:
    """How many complaints each case's filter matches (through the product's own filter)."""
    from sqlalchemy import func, select

    from staff.queries import InboxFilter, apply_filter
    from storage.db import make_engine
    from storage.models import Complaint

    engine = make_engine(url)
    counts: dict[str, int] = {}
    dates = _dates()
    with engine.connect() as conn:
        for case in inbox_cases(sample_reference):
            args = dict(kv.split("=", 1) for kv in case.query.format(**dates).split("&") if kv)
            query = apply_filter(
                select(func.count()).select_from(Complaint), InboxFilter.from_args(args)
            )
            counts[case.label] = int(conn.execute(query).scalar_one())
    engine.dispose()
    return counts


def run(options: RunOptions) -> str:
    """Measure and return the section."""
    from bot.app import create_app

    started = time.monotonic()
    plan = QUICK if options.quick else FULL
    load = os.getloadavg()
    print("preparing PostgreSQL ...", flush=True)
    version = prepare_postgres(PG_URL)
    keys = [Fernet.generate_key().decode()]
    print(f"seeding {plan.complaints:,} complaints ...", flush=True)
    seeded = seed(PG_URL, keys, plan.complaints)
    print(f"  seeded in {seeded.seconds:.0f} s (insert {seeded.insert_seconds:.0f} s, "
          f"indexes {seeded.index_seconds:.0f} s)", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as tmp:
        instance = Path(tmp)
        app = create_app(make_settings(PG_URL, keys, instance))
        email = create_bench_user(app)
        with psycopg.connect(dbname=make_url(PG_URL).database, **_pg_params(PG_URL)) as conn:
            ref = conn.execute(
                "SELECT reference FROM complaint WHERE NOT is_test ORDER BY id DESC LIMIT 1"
            ).fetchone()
        sample_reference = str(ref[0]) if ref else "RAE-AAAAAA"
        print("inbox ...", flush=True)
        timings, plans = measure_inbox(app, email, plan.repeats, sample_reference, PG_URL)
        app.extensions["raporto"].engine.dispose()
        counts = filter_counts(PG_URL, timings, sample_reference)
        print("export ...", flush=True)
        exports = measure_exports(PG_URL, keys, instance, email, [
            ("CSV, all complaints", "csv", "", 900.0),
            ("Excel, one municipality", "xlsx", plan.xlsx_filter, 600.0),
        ])  # fmt: skip
    return render(options, plan, version, seeded, timings, plans, exports, load,
                  time.monotonic() - started, counts)  # fmt: skip
