"""``python -m benchmarks [--only NAME]...``: run the benchmarks, print one table, write RESULTS.md.

Every bench module (``benchmarks/bench_<name>.py``) exposes ``run() -> list[dict]`` whose rows
are ``{name, chainwatch, baseline, unit, ratio}``; each measures chainwatch and its baseline side
by side in the same run. A module that fails gives a row saying so and the others still run.
RESULTS.md holds the table of this run, its date, the machine and the command: nothing in it is
typed by hand.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import loop_milliseconds, machine

BENCHMARKS = ("decode", "cli", "ingest", "fanout", "latency", "gateway", "history")
HERE = Path(__file__).resolve().parent
HEADER = ("benchmark", "chainwatch", "baseline", "unit", "ratio")


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(result: dict[str, Any]) -> tuple[str, ...]:
    ratio = result.get("ratio")
    return (
        str(result["name"]),
        _number(result.get("chainwatch")),
        _number(result.get("baseline")),
        str(result.get("unit", "")),
        "—" if ratio is None else f"{ratio:,.1f}x",
    )


def table(results: list[dict[str, Any]]) -> list[str]:
    """A Markdown table, aligned so that it reads as well in a terminal."""
    rows = [HEADER, *(_cells(r) for r in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]

    def line(cells: tuple[str, ...]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return [line(rows[0]), rule, *(line(r) for r in rows[1:])]


def run_one(name: str) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    try:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        results = list(module.run())
    except Exception as exc:
        traceback.print_exc()
        reason = f"failed: {type(exc).__name__}: {exc}"[:120]
        results = [
            {
                "name": f"{name} ({reason})",
                "chainwatch": None,
                "baseline": None,
                "unit": "",
                "ratio": None,
            }
        ]
    return results, time.monotonic() - started


def write_results(
    lines: list[str], command: str, took: dict[str, float], speed: tuple[float, float]
) -> Path:
    info = machine()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    durations = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items())
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `python -m benchmarks` (`make bench`) from the run below; nothing here is",
            "typed by hand. Each row runs chainwatch and its baseline side by side in the same",
            "run. **ratio** is how many times better chainwatch is: chainwatch / baseline for",
            "rates, baseline / chainwatch for times; — where a row has no baseline.",
            "",
            f"- date: {today}",
            f"- machine: {info['cores']} cores, {info['cpu']}",
            f"- Python: {sys.version.split()[0]}",
            f"- command: `{command}`",
            f"- time per benchmark: {durations}",
            f"- machine speed: a fixed pure-Python loop took {speed[0]:.1f} ms before the run"
            f" and {speed[1]:.1f} ms after it (lower is faster; see `loop_milliseconds` in"
            " `benchmarks/common.py`)",
            "",
            *lines,
            "",
            "What each benchmark measures is in the docstring of its module"
            " (`benchmarks/bench_<name>.py`).",
            "",
        ]
    )
    path = HERE / "RESULTS.md"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args(argv)
    names = [n for n in BENCHMARKS if (HERE / f"bench_{n}.py").exists()]
    if args.only:
        names = [n for n in names if n in args.only]
    results: list[dict[str, Any]] = []
    took: dict[str, float] = {}
    before = loop_milliseconds()
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows, took[name] = run_one(name)
        results += rows
    speed = (before, loop_milliseconds())
    lines = table(results)
    print("\n".join(lines))
    print(f"machine speed: {speed[0]:.1f} ms before, {speed[1]:.1f} ms after", file=sys.stderr)
    command = "python -m benchmarks" + "".join(f" --only {n}" for n in args.only or ())
    path = write_results(lines, command, took, speed)
    print(f"written to {path.relative_to(HERE.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
