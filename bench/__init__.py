"""Benchmarks of Raporto: a registry of named benchmarks, each writing its own section of the doc.

A benchmark is a module with ``TITLE`` and ``run(options) -> str`` (the Markdown body of its
section in ``docs/performance.md``). Add one by writing the module and listing it below;
``python -m bench`` runs them all, ``python -m bench NAME`` runs one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

PROJECT_DIR = Path(__file__).resolve().parent.parent
DOC_PATH = PROJECT_DIR / "docs" / "performance.md"


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked of every benchmark."""

    command: str  # the exact command that reproduces the run, written into the doc
    quick: bool = False  # fewer repetitions: a smoke run, not numbers to publish
    profile: bool = False  # also print a cProfile breakdown of the measured work


class BenchmarkModule(Protocol):
    """The interface a benchmark module provides."""

    TITLE: str

    def run(self, options: RunOptions) -> str:
        """Measure, and return the Markdown body of this benchmark's section."""
        ...


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark: its name on the command line and the module that runs it."""

    name: str
    module: str
    summary: str

    def load(self) -> BenchmarkModule:
        """Import the benchmark's module (lazily: one benchmark's imports never slow another)."""
        return cast(BenchmarkModule, importlib.import_module(self.module))


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "dialog",
            "bench.dialog_step",
            "one dialog step: engine, engine + storage, python-telegram-bot baseline",
        ),
        Benchmark(
            "inbound",
            "bench.inbound_load",
            "both inbound webhooks under gunicorn with many people, SQLite and PostgreSQL",
        ),
        Benchmark(
            "notify",
            "bench.notify_delivery",
            "outbound webhooks: deliveries/s per worker, 100,000 backlog with 1 and 2 workers",
        ),
        Benchmark(
            "desk",
            "bench.desk_inbox",
            "staff desk at 1,000,000 complaints: inbox p50/p95 per filter, export peak memory",
        ),
        # Planned: "webhook" (HTTP load), "delivery" (notification outbox).
    )
}
"""Every benchmark, in the order ``python -m bench`` runs them."""
