"""The two commands of the quick start: `make run` must start the worker too."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_run_starts_web_and_delivery_worker_together() -> None:
    # `raporto run` serves the web app alone: replies would wait in the outbox for ever.
    assert any(step.endswith("raporto up --port $(PORT)") for step in _recipe("run"))


def test_make_test_lints_typechecks_and_runs_the_suite() -> None:
    line = next(
        line
        for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
        if line.startswith("test:")
    )
    assert {"lint", "typecheck", "pytest"} <= set(line.split())
