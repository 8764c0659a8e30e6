"""`make bench`: run every benchmark module, print the ratio table and write bench/results.md.

Each module exposes ``run() -> list[dict]`` with rows ``{name, value, baseline, ratio, unit, note}``;
the baseline is always measured in the same run on the same machine, so ratios compare like with like.

``python -m bench consumer_bench peer_bench`` runs only the named modules and prints their table
without touching bench/results.md (pass ``--output FILE`` to write it somewhere).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

MODULES = ("consumer_bench", "peer_bench", "collector_bench", "api_bench", "export_bench", "recs_bench")
RESULTS = Path(__file__).with_name("results.md")
KNOB_PREFIX = "CLICKPULSE_BENCH_"  # environment knobs of the modules, recorded in results.md


def machine_details() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    java = subprocess.run(
        ["java", "-version"], capture_output=True, text=True, check=False
    ).stderr.splitlines()
    return (
        f"{platform.platform()}; {os.cpu_count()} cores ({cpu}); {mem_gib:.0f} GiB; "
        f"Python {platform.python_version()}; {java[0] if java else 'java ?'}"
    )


def load_average() -> str:
    """The 1/5/15-minute load averages: the benchmarks share the machine with whatever else runs."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def git_revision() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent,
    )
    return out.stdout.strip() or "unknown"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return "" if value is None else str(value)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `kill` runs the same clean-up (private servers, topics) as Ctrl-C."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "modules", nargs="*", help=f"benchmark modules to run (default: {', '.join(MODULES)})"
    )
    parser.add_argument("--output", type=Path, help="results file (default: bench/results.md for a full run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    modules = args.modules or list(MODULES)
    output: Path | None = args.output or (None if args.modules else RESULTS)
    rows: list[dict] = []
    failures: list[str] = []
    runs: list[str] = []
    started_at, load_at_start, began_all = datetime.now(UTC), load_average(), time.monotonic()
    for name in modules:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                logger.warning("bench.%s is not present; skipped", name)
                continue
            raise
        began, load_before = time.monotonic(), load_average()
        try:
            produced = module.run()
        except Exception:
            failures.append(f"{name}: {traceback.format_exc(limit=3)}")
            logger.exception("benchmark %s failed", name)
            continue
        for row in produced:
            row.setdefault("module", name)
        rows.extend(produced)
        elapsed = time.monotonic() - began
        runs.append(f"| {name} | {elapsed:.0f} | {load_before} | {load_average()} |")
        logger.info("%s done in %.0fs", name, elapsed)

    header = "| benchmark | value | baseline | ratio | unit | note |\n|---|---:|---:|---:|---|---|"
    lines = [
        f"| {r['name']} | {_fmt(r.get('value'))} | {_fmt(r.get('baseline'))} | {_fmt(r.get('ratio'))} "
        f"| {r.get('unit', '')} | {r.get('note', '')} |"
        for r in rows
    ]
    table = "\n".join([header, *lines])
    print(table)
    if output is None:
        print("\n(a subset of the modules: bench/results.md left as it was; --output FILE writes one)")
        return 1 if failures else 0
    total_s = time.monotonic() - began_all
    knobs = ", ".join(f"`{k}={v}`" for k, v in sorted(os.environ.items()) if k.startswith(KNOB_PREFIX))
    cores = os.cpu_count() or 1
    runs_table = "\n".join(
        ["| module | seconds | load average before (1/5/15 min) | after |", "|---|---:|---|---|", *runs]
    )
    output.write_text(
        f"# ClickPulse benchmarks\n\nRun {started_at:%Y-%m-%d %H:%M} UTC, {total_s / 60:.0f} min, commit "
        f"{git_revision()}, on: {machine_details()}\n\n"
        f"Knobs: {knobs or 'none (full sizes)'}.\n\n"
        f"Load average (1/5/15 min) at the start: {load_at_start}; at the end: {load_average()} "
        f"({cores} cores; a load above {cores} means other work shared the machine and every number below, "
        "baselines included, was measured under it).\n\n"
        "Ratios compare ClickPulse with a baseline measured in the same run, back to back "
        "(`make bench`; what each row compares: the README section 'ClickPulse benchmarks').\n\n"
        f"{table}\n\n## Runs\n\n{runs_table}\n"
        + ("\n## Failures\n\n" + "\n".join(f"```\n{f}\n```" for f in failures) if failures else "")
    )
    print(f"\nwritten to {output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
