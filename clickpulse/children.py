"""Child processes of `clickpulse demo`: started when their port is free, reused when it answers.

A component another terminal already runs (its health URL answers) is reused and left alone; the ones
started here are stopped, newest first, when the demo ends.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

logger = logging.getLogger(__name__)


def clickpulse_argv(*args: str) -> list[str]:
    """The command line of ``clickpulse <args>`` in this interpreter."""
    return [sys.executable, "-m", "clickpulse.cli", *args]


def url_answers(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    health_url: str | None
    process: subprocess.Popen[bytes] | None = None
    reused: bool = False
    log_file: Path | None = None


@dataclass
class Children:
    """The components one demo run started, with their logs under ``log_dir``."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], health_url: str | None, timeout_s: float = 60) -> Child:
        """Run ``argv`` unless ``health_url`` already answers; wait until it does."""
        child = Child(name, list(argv), health_url)
        if health_url and url_answers(health_url):
            child.reused = True
            return child
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child.log_file = self.log_dir / f"{name}.log"
        with open(child.log_file, "ab") as log:
            child.process = subprocess.Popen(
                list(child.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=os.environ.copy(),
            )
        self.started.append(child)
        if health_url:
            self._wait_healthy(child, timeout_s)
        return child

    def _wait_healthy(self, child: Child, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child.process is not None and child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.process.returncode}; see {child.log_file}"
                )
            if child.health_url and url_answers(child.health_url):
                return
            time.sleep(0.3)
        raise RuntimeError(
            f"{child.name} did not answer {child.health_url} within {timeout_s:.0f}s; see {child.log_file}"
        )

    def stop_all(self, timeout_s: float = 20) -> None:
        for child in reversed(self.started):
            proc = child.process
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        self.started.clear()
