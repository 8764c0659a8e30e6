"""`make bench`: run every benchmark module, print the ratio table and write bench/results.md.

Each module exposes ``run() -> list[dict]`` with rows ``{name, value, baseline, ratio, unit, note}``;
the baseline is always measured in the same run on the same machine, so ratios compare like with like.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

MODULES = ("consumer_bench", "collector_bench", "api_bench", "export_bench", "recs_bench")
RESULTS = Path(__file__).with_name("results.md")


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


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return "" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", default=list(MODULES), help="benchmark modules to run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows: list[dict] = []
    failures: list[str] = []
    for name in args.modules:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                logger.warning("bench.%s is not present; skipped", name)
                continue
            raise
        began = time.monotonic()
        try:
            produced = module.run()
        except Exception:
            failures.append(f"{name}: {traceback.format_exc(limit=3)}")
            logger.exception("benchmark %s failed", name)
            continue
        for row in produced:
            row.setdefault("module", name)
        rows.extend(produced)
        logger.info("%s done in %.0fs", name, time.monotonic() - began)

    header = "| benchmark | value | baseline | ratio | unit | note |\n|---|---:|---:|---:|---|---|"
    lines = [
        f"| {r['name']} | {_fmt(r.get('value'))} | {_fmt(r.get('baseline'))} | {_fmt(r.get('ratio'))} "
        f"| {r.get('unit', '')} | {r.get('note', '')} |"
        for r in rows
    ]
    table = "\n".join([header, *lines])
    print(table)
    RESULTS.write_text(
        f"# ClickPulse benchmarks\n\nRun {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on: {machine_details()}\n\n"
        "Ratios compare ClickPulse with a baseline measured in the same run (`make bench`).\n\n"
        f"{table}\n"
        + ("\n## Failures\n\n" + "\n".join(f"```\n{f}\n```" for f in failures) if failures else "")
    )
    print(f"\nwritten to {RESULTS}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
