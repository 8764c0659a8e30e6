"""The API benchmarks' shared part: start the API in its own process, drive it with ``bench/loadgen.py``
in another, and compare an endpoint with the server's ``/bench/constant`` route.

Used by ``bench/api_bench.py`` (stats) and ``bench/recs_bench.py`` (recommendations). For one endpoint,
``compare_with_constant`` measures:

1. Saturation: closed loop, ``CONNECTIONS`` keep-alive connections, the constant route and the endpoint
   alternated ``ROUNDS`` times back to back; ratio = endpoint / constant (summed over the rounds), target
   >= 0.5.
2. Latency at half of the endpoint's saturation rate, open loop (latency from the scheduled send time, so
   queueing behind a slow answer counts): p50 and p99 of the endpoint and of the constant route at the
   same rate (target p99 <= 25 ms).

Each load also reports the API process's CPU per request (``/proc/<pid>/stat``) and the load
generator's own (``getrusage`` of the child). On a shared machine the throughputs move with whatever
else runs; CPU per request hardly does, and the client's tells whether it competed with the server.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx

from clickpulse.settings import PROJECT_ROOT

CONSTANT: Final = "/bench/constant"
CONNECTIONS: Final = 32
OPEN_LOOP_CONNECTIONS: Final = 64
SATURATION_S: Final = 6.0
ROUNDS: Final = 2
LATENCY_S: Final = 10.0
TARGET_RATIO: Final = 0.5
TARGET_P99_MS: Final = 25.0
APP_FACTORY: Final = "serving.app:create_app_from_env"


def row(name: str, value: float, baseline: float | None, unit: str, note: str) -> dict[str, Any]:
    """One results row (``bench/__main__.py``); ratio = value / baseline."""
    return {
        "name": name,
        "value": value,
        "baseline": baseline,
        "ratio": value / baseline if baseline else None,
        "unit": unit,
        "note": note,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(env: dict[str, str], port: int, factory: str = APP_FACTORY) -> subprocess.Popen[bytes]:
    """uvicorn, one worker, as ``clickpulse api`` serves it; returns once ``/healthz`` answers."""
    command = [
        sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the API did not start within 30 s")


def stop_api(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(
    server: subprocess.Popen[bytes],
    port: int,
    paths: list[str],
    read_key: str,
    *,
    duration_s: float,
    rate: float = 0.0,
) -> dict[str, Any]:
    """One run of ``bench.loadgen`` (closed loop, or open loop at ``rate``): its JSON result plus
    ``server_cpu_us`` and ``client_cpu_us`` (CPU per request of the API process and of the generator,
    its warm-up included). Raises on any failed request."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(paths))
        paths_file = handle.name
    connections = OPEN_LOOP_CONNECTIONS if rate else CONNECTIONS
    command = [
        sys.executable, "-m", "bench.loadgen", "--url", f"http://127.0.0.1:{port}",
        "--paths-file", paths_file, "--header", f"Authorization: Bearer {read_key}",
        "--connections", str(connections), "--duration", str(duration_s),
    ]  # fmt: skip
    if rate:
        command += ["--rate", f"{rate:.1f}"]
    client_before, server_before = _children_cpu_s(), process_cpu_s(server.pid)
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    finally:
        os.unlink(paths_file)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["ok"] != result["requests"] or result["errors"]:
        raise RuntimeError(f"failed requests during the load on {paths[0]}: {result}")
    sent = max(1, result["requests"] + result["warmup_requests"])
    result["server_cpu_us"] = 1e6 * (process_cpu_s(server.pid) - server_before) / sent
    result["client_cpu_us"] = 1e6 * (_children_cpu_s() - client_before) / sent
    return result


@dataclass
class Comparison:
    """What ``compare_with_constant`` measured, for rows and notes."""

    saturation: list[float]
    constant_saturation: list[float]
    rate: float
    loaded: dict[str, Any]
    reference: dict[str, Any]
    client_cpu_us: float
    server_cpu_us: float
    constant_server_cpu_us: float

    @property
    def rps(self) -> float:
        return sum(self.saturation) / len(self.saturation)

    @property
    def constant_rps(self) -> float:
        return sum(self.constant_saturation) / len(self.constant_saturation)


def compare_with_constant(
    server: subprocess.Popen[bytes], port: int, paths: list[str], read_key: str
) -> Comparison:
    """Saturation of ``paths`` (cycled) and of ``/bench/constant``, alternated, then both at half the
    endpoint's saturation rate in open loop."""
    runs: dict[str, list[dict[str, Any]]] = {"constant": [], "target": []}
    for _ in range(ROUNDS):
        for name, what in (("constant", [CONSTANT]), ("target", paths)):
            runs[name].append(load(server, port, what, read_key, duration_s=SATURATION_S))
    saturation = [r["rps"] for r in runs["target"]]
    rate = sum(saturation) / len(saturation) / 2
    loaded = load(server, port, paths, read_key, duration_s=LATENCY_S, rate=rate)
    reference = load(server, port, [CONSTANT], read_key, duration_s=LATENCY_S, rate=rate)

    def cpu(name: str) -> float:
        return sum(r["server_cpu_us"] for r in runs[name]) / len(runs[name])

    return Comparison(
        saturation=saturation,
        constant_saturation=[r["rps"] for r in runs["constant"]],
        rate=rate,
        loaded=loaded,
        reference=reference,
        client_cpu_us=max(r["client_cpu_us"] for rs in runs.values() for r in rs),
        server_cpu_us=cpu("target"),
        constant_server_cpu_us=cpu("constant"),
    )


def comparison_rows(name: str, measured: Comparison, setup: str) -> list[dict[str, Any]]:
    """Rows ``api <name> saturation throughput``, ``... p50 / p99 at half saturation``."""
    ratio = measured.rps / measured.constant_rps
    spread = ", ".join(
        f"{t:,.0f}/{c:,.0f}" for t, c in zip(measured.saturation, measured.constant_saturation, strict=True)
    )
    met = "met" if ratio >= TARGET_RATIO else "MISSED"
    p99_met = "met" if measured.loaded["p99_ms"] <= TARGET_P99_MS else "MISSED"
    at_rate = (
        f"open loop at {measured.rate:.0f} req/s for {LATENCY_S:.0f} s; baseline = {CONSTANT} at that rate"
    )
    loaded, reference = measured.loaded, measured.reference
    return [
        row(
            f"api {name} saturation throughput",
            measured.rps,
            measured.constant_rps,
            "req/s",
            f"vs {CONSTANT}, {CONNECTIONS} connections, closed loop, {ROUNDS} alternated rounds of "
            f"{SATURATION_S:.0f} s (endpoint/constant each round: {spread}); {setup}; load generator "
            f"<= {measured.client_cpu_us:.0f} us CPU per request; target ratio >= {TARGET_RATIO} ({met})",
        ),
        row(
            f"api {name} server CPU per request",
            measured.server_cpu_us,
            measured.constant_server_cpu_us,
            "us",
            f"the API process's user + system CPU over the saturation rounds / requests; baseline = "
            f"{CONSTANT}'s; 1 / ratio = the throughput ratio of a CPU-bound API process on a core of its own",
        ),
        row(f"api {name} p50 at half saturation", loaded["p50_ms"], reference["p50_ms"], "ms", at_rate),
        row(
            f"api {name} p99 at half saturation",
            loaded["p99_ms"],
            reference["p99_ms"],
            "ms",
            f"{at_rate}; max {loaded['max_ms']:.0f} ms; target p99 <= {TARGET_P99_MS:.0f} ms ({p99_met})",
        ),
    ]
