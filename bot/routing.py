"""Suggested institutions for a complaint, from a table staff edit without code (data/routing.csv).

Each row names an institution and when it applies: the area, the perpetrator type, the
municipality and, optionally, a signal (a priority reason code such as ``violence_or_threat``,
or ``legal_support`` when the person asked for it). ``*`` means any value, ``a|b`` either value.
Every row that applies adds its institution, in table order, once. The table is checked when the
app and the worker start: a mistake stops them with the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.priority import reason_codes
from dialogs.municipalities import BY_CODE
from dialogs.options import AREAS, PERPETRATORS

COLUMNS = ("area", "perpetrator", "municipality", "signal", "institution", "contact", "verified",
           "note")  # fmt: skip
REQUIRED_COLUMNS = ("area", "perpetrator", "municipality", "institution")
ANY = "*"
LEGAL_SUPPORT_SIGNAL = "legal_support"
OUTSIDE = "outside"


class RoutingTableError(ValueError):
    """The routing table has mistakes; the message lists each with its file and line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the routing table has mistakes (fix them and start again):\n  " + "\n  ".join(problems)
        )


@dataclass(frozen=True)
class Institution:
    """One suggested institution, as stored on the complaint and sent in events."""

    name: str
    contact: str
    verified: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        """The institution as JSON."""
        return {
            "name": self.name,
            "contact": self.contact or None,
            "verified": self.verified,
            "note": self.note or None,
        }


@dataclass(frozen=True)
class Route:
    """One row of the table; ``None`` in a condition means any value."""

    line: int
    areas: frozenset[str] | None
    perpetrators: frozenset[str] | None
    municipalities: frozenset[str] | None
    signals: frozenset[str] | None
    institution: Institution

    def applies(
        self, area: str, perpetrator: str, municipality: str, signals: frozenset[str]
    ) -> bool:
        """Whether the row applies to a complaint with these answers and signals."""
        return (
            (self.areas is None or area in self.areas)
            and (self.perpetrators is None or perpetrator in self.perpetrators)
            and (self.municipalities is None or municipality in self.municipalities)
            and (self.signals is None or bool(self.signals & signals))
        )


@dataclass(frozen=True)
class RoutingTable:
    """The validated table: suggest institutions for a complaint's answers."""

    routes: tuple[Route, ...]
    source: str = "<memory>"

    def suggest(
        self, area: str, perpetrator: str, municipality: str, signals: Iterable[str] = ()
    ) -> list[Institution]:
        """Every institution whose row applies, in table order, each once."""
        wanted = frozenset(signals)
        seen: set[str] = set()
        found: list[Institution] = []
        for route in self.routes:
            key = route.institution.name.casefold()
            if key in seen or not route.applies(area, perpetrator, municipality, wanted):
                continue
            seen.add(key)
            found.append(route.institution)
        return found


def known_values() -> dict[str, frozenset[str]]:
    """The values each condition column accepts (besides ``*``)."""
    return {
        "area": frozenset(c.value for c in AREAS),
        "perpetrator": frozenset(c.value for c in PERPETRATORS),
        "municipality": frozenset(BY_CODE) | {OUTSIDE},
        "signal": reason_codes() | {LEGAL_SUPPORT_SIGNAL},
    }


def _cell_values(
    column: str, raw: str, known: frozenset[str], where: str, problems: list[str]
) -> frozenset[str] | None:
    text = raw.strip()
    if text == ANY or (column == "signal" and not text):
        return None
    if not text:
        problems.append(f"{where}: empty {column} (write * for any)")
        return frozenset()
    values = [v.strip() for v in text.split("|")]
    for value in values:
        if value not in known:
            hint = ", ".join(sorted(known))
            problems.append(f"{where}: unknown {column} {value!r} (known: {hint})")
    return frozenset(values)


def _verified(raw: str, where: str, problems: list[str]) -> bool:
    text = raw.strip().lower()
    if text in ("yes", "true", "1"):
        return True
    if text in ("", "no", "false", "0"):
        return False
    problems.append(f"{where}: verified must be yes or no, not {raw.strip()!r}")
    return False


def parse_routing(text: str, source: str = "<routing>") -> RoutingTable:
    """Parse and validate the CSV text of a routing table; every mistake is reported at once."""
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    header_line = 0
    routes: list[Route] = []
    known = known_values()
    first_line: dict[tuple[str, str, str, str, str], int] = {}
    line = 1
    for row in reader:
        start, line = line, reader.line_num + 1
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue  # blank lines and "# comments" help staff keep the table readable
        where = f"{source}:{start}"
        if header is None:
            header = [c.strip().lower() for c in row]
            header_line = start
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            unknown = [c for c in header if c not in COLUMNS]
            if missing:
                problems.append(f"{where}: missing column(s) {', '.join(missing)}")
            if unknown:
                problems.append(
                    f"{where}: unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})"
                )
            if missing:
                break
            continue
        if len(row) > len(header):
            problems.append(f"{where}: {len(row)} cells but the header has {len(header)}")
            continue
        cells = dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
        name = " ".join(cells.get("institution", "").split())
        if not name:
            problems.append(f"{where}: missing institution name")
        conditions = {
            column: _cell_values(column, cells.get(column, ""), known[column], where, problems)
            for column in ("area", "perpetrator", "municipality", "signal")
        }
        institution = Institution(
            name=name,
            contact=" ".join(cells.get("contact", "").split()),
            verified=_verified(cells.get("verified", ""), where, problems),
            note=" ".join(cells.get("note", "").split()),
        )
        for combo in _expand(conditions, name):
            if combo in first_line:
                problems.append(
                    f"{where}: duplicate of line {first_line[combo]} "
                    f"({combo[4]!r} for area={combo[0]}, perpetrator={combo[1]}, "
                    f"municipality={combo[2]}, signal={combo[3]})"
                )
                break
            first_line[combo] = start
        routes.append(
            Route(
                start,
                conditions["area"],
                conditions["perpetrator"],
                conditions["municipality"],
                conditions["signal"],
                institution,
            )
        )
    if header is None and not problems:
        problems.append(f"{source}:{header_line or 1}: no header row")
    if problems:
        raise RoutingTableError(problems)
    return RoutingTable(tuple(routes), source)


def _expand(
    conditions: dict[str, frozenset[str] | None], name: str
) -> list[tuple[str, str, str, str, str]]:
    """Every single-valued condition a row stands for, to find rows that repeat another."""

    def values(column: str) -> list[str]:
        found = conditions[column]
        return [ANY] if found is None else sorted(found)

    return [
        (a, p, m, s, name.casefold())
        for a in values("area")
        for p in values("perpetrator")
        for m in values("municipality")
        for s in values("signal")
    ]


def load_routing(path: Path) -> RoutingTable:
    """Read and validate the routing table file; a clear error when it is missing or wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet may save a BOM
    except OSError as exc:
        problem = f"{path}: cannot read the routing table ({exc.strerror})"
        raise RoutingTableError([problem]) from exc
    except UnicodeDecodeError as exc:
        raise RoutingTableError([f"{path}: not UTF-8 text (save the CSV as UTF-8)"]) from exc
    return parse_routing(text, str(path))
