"""Process plumbing for the inbound load benchmark: CPU time and resident memory from /proc."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ")".
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process, in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float | None:
    """Resident memory (VmRSS) of one process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def children(pid: int) -> list[int]:
    """The direct children of a process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name`` (read only: e.g. the PostgreSQL backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if comm == name:
            found.append(int(entry.name))
    return found


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL processes working for ``database``: its backends and the shared ones
    (WAL writer, checkpointer, ...), not the backends of other databases (read only)."""
    found = []
    for pid in pids_named("postgres"):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        title = raw.replace(b"\0", b" ").decode("utf-8", errors="replace")
        if "(" not in title or f" {database} " in title:
            found.append(pid)  # no client address: a server process, not another's backend
    return found


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    line = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0]
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _TICKS, total / _TICKS


@dataclass
class CpuSnapshot:
    """CPU seconds per group of processes, and of the whole machine, at one moment."""

    at: float
    groups: dict[str, float]
    machine_busy: float
    machine_total: float


def snapshot(groups: dict[str, Callable[[], Iterable[int]]]) -> CpuSnapshot:
    """CPU time of every group now (a group is a function giving its current pids)."""
    sums: dict[str, float] = {}
    for name, pids in groups.items():
        sums[name] = sum(cpu_seconds(pid) or 0.0 for pid in pids())
    busy, total = machine_busy_seconds()
    return CpuSnapshot(time.monotonic(), sums, busy, total)


def cpu_shares(start: CpuSnapshot, end: CpuSnapshot) -> tuple[dict[str, float], float]:
    """Cores used by each group between two snapshots, and by the whole machine."""
    wall = max(end.at - start.at, 1e-9)
    used = {name: (end.groups[name] - start.groups.get(name, 0.0)) / wall for name in end.groups}
    machine = (end.machine_busy - start.machine_busy) / wall
    return used, machine


@dataclass
class RssSampler:
    """Samples the resident memory of some processes in a thread; keeps the maximum per pid."""

    pids: Callable[[], Iterable[int]]
    interval: float = 0.25
    peaks: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids():
                value = rss_mib(pid)
                if value is not None and value > self.peaks.get(pid, 0.0):
                    self.peaks[pid] = value
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        """Start sampling."""
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; the largest resident size seen, in MiB (0 when none)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return max(self.peaks.values(), default=0.0)
