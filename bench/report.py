"""Shared reporting: timing statistics, the machine description, and the sections of the doc."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DOC_INTRO = """# Performance

Measured, not asserted: no test checks a timing. Each section below is written by one benchmark
in `bench/` and replaced whole when that benchmark runs again; text outside the markers is kept.

Run every benchmark with `make bench` (`.venv/bin/python -m bench`), or one of them with
`.venv/bin/python -m bench NAME` (`--list` shows the names, `--quick` makes a short smoke run,
`--profile` prints where the time goes). Benchmarks on PostgreSQL use databases of their own
on `127.0.0.1:5432` (`raporto_bench` for the dialog step, `BENCH_DATABASE_URL` to change it; the
others name theirs in their sections): each creates its database when missing and drops its
schema at the start, so never point one at a database you keep. Each section records the machine,
the date, the load on the machine and the exact command; numbers from a busy machine are slower.
"""


@dataclass(frozen=True)
class Summary:
    """Statistics of a set of timings, in nanoseconds."""

    n: int
    median: float
    p95: float
    mean: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Summary:
        """Median, 95th percentile (nearest rank) and mean of the samples."""
        if not samples_ns:
            raise ValueError("no samples")
        ordered = sorted(samples_ns)
        rank = max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))
        return cls(
            n=len(ordered),
            median=float(statistics.median(ordered)),
            p95=float(ordered[rank]),
            mean=float(statistics.fmean(ordered)),
        )


def us(ns: float) -> str:
    """Nanoseconds shown as microseconds."""
    return f"{ns / 1_000:.1f} µs"


def ms(ns: float) -> str:
    """Nanoseconds shown as milliseconds."""
    return f"{ns / 1_000_000:.3f} ms"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the platform's processor name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> str:
    """Total RAM from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def machine_lines(postgres: str | None = None) -> list[str]:
    """Markdown bullet lines describing the machine and the software the numbers come from."""
    lines = [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; RAM {memory_gib()}",
        f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- SQLite {sqlite3.sqlite_version}",
    ]
    if postgres:
        lines.append(f"- PostgreSQL {postgres}")
    return lines


def now_utc() -> str:
    """The current date and time, for the doc."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def markers(name: str) -> tuple[str, str]:
    """The comment lines that open and close a benchmark's section."""
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the benchmark's own section of the doc (added at the end when missing)."""
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else DOC_INTRO
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
