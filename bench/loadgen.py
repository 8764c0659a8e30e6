"""A small HTTP/1.1 keep-alive load generator, run as its own process by the API benchmark.

``python -m bench.loadgen --url http://127.0.0.1:8000 --paths-file paths.txt --duration 8 --connections 32``
prints one JSON line: requests (and the warm-up's), errors, statuses, achieved rate and latency
percentiles (ms).

Closed loop (no ``--rate``): every connection sends its next request as soon as the previous answer
arrived, which finds the saturation throughput. Open loop (``--rate R``): requests are scheduled at R per
second and each latency is measured from its scheduled time, so queueing behind a slow answer counts
(no coordinated omission). Raw asyncio streams (uvloop when installed) keep the generator far cheaper per
request than the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0


class Connection:
    def __init__(self, host: str, port: int, headers: list[str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{h}\r\n" for h in headers)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    async def get(self, path: str) -> int:
        reader, writer = await self._open()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _request(conn: Connection, path: str, began: float, results: Results) -> None:
    try:
        status = await conn.get(path)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        results.errors += 1
        conn.close()
        return
    results.latencies.append(time.perf_counter() - began)
    results.statuses[status] += 1


async def closed_loop(
    conns: list[Connection], paths: Iterator[str], duration_s: float, results: Results
) -> float:
    deadline = time.perf_counter() + duration_s

    async def worker(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            await _request(conn, next(paths), time.perf_counter(), results)

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return time.perf_counter() - began


async def open_loop(
    conns: list[Connection], paths: Iterator[str], duration_s: float, rate: float, results: Results
) -> float:
    queue: asyncio.Queue[float | None] = asyncio.Queue()

    async def worker(conn: Connection) -> None:
        while (scheduled := await queue.get()) is not None:
            await _request(conn, next(paths), scheduled, results)

    workers = [asyncio.create_task(worker(c)) for c in conns]
    began = time.perf_counter()
    total = int(rate * duration_s)
    for i in range(total):
        scheduled = began + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(scheduled)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return time.perf_counter() - began


def percentile(sorted_values: list[float], share: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = urlparse(args.url)
    paths_list = [p.strip() for p in open(args.paths_file) if p.strip()]  # noqa: SIM115
    paths = itertools.cycle(paths_list)
    conns = [
        Connection(url.hostname or "127.0.0.1", url.port or 80, args.header) for _ in range(args.connections)
    ]
    warm = Results()
    await closed_loop(conns, paths, args.warmup, warm)
    results = Results()
    if args.rate:
        elapsed = await open_loop(conns, paths, args.duration, args.rate, results)
    else:
        elapsed = await closed_loop(conns, paths, args.duration, results)
    for conn in conns:
        conn.close()
    lat = sorted(results.latencies)
    ok = sum(n for status, n in results.statuses.items() if status < 400)
    return {
        "requests": len(lat),
        "warmup_requests": len(warm.latencies) + warm.errors,
        "ok": ok,
        "errors": results.errors,
        "statuses": {str(k): v for k, v in sorted(results.statuses.items())},
        "seconds": elapsed,
        "rps": len(lat) / elapsed if elapsed else 0.0,
        "p50_ms": None if not lat else 1000 * (percentile(lat, 0.50) or 0),
        "p99_ms": None if not lat else 1000 * (percentile(lat, 0.99) or 0),
        "max_ms": None if not lat else 1000 * lat[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--paths-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s (open loop); 0 = closed loop")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(run(args))))
    else:
        print(json.dumps(uvloop.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
