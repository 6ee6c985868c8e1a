"""``python -m bench [NAME ...]``: run the benchmarks and write their sections of the doc."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bench import BENCHMARKS, DOC_PATH, PROJECT_DIR, RunOptions
from bench.report import write_section


def _command(argv: list[str]) -> str:
    """The command that reproduces this run, as typed from the project folder."""
    if not argv:
        return "make bench"
    return ".venv/bin/python -m bench " + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all when none is named)."""
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="short smoke run; doc not written")
    parser.add_argument("--profile", action="store_true", help="print a cProfile breakdown")
    parser.add_argument("--no-write", action="store_true", help="print the sections only")
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="the doc to write")
    args = parser.parse_args(args_list)
    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:12} {bench.summary}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (see --list)")
    names = args.names or list(BENCHMARKS)
    options = RunOptions(command=_command(args_list), quick=args.quick, profile=args.profile)
    for name in names:
        started = time.monotonic()
        print(f"== bench {name} ==", flush=True)
        body = BENCHMARKS[name].load().run(options)
        elapsed = time.monotonic() - started
        if args.quick or args.no_write:
            print(body)
        else:
            write_section(args.doc, name, body)
            shown = args.doc.resolve()
            where = shown.relative_to(PROJECT_DIR) if shown.is_relative_to(PROJECT_DIR) else shown
            print(f"wrote section '{name}' of {where}")
        print(f"== bench {name} done in {elapsed:.0f} s ==", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
