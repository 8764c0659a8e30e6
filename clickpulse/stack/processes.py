"""Background processes the stack starts, tracked by pid files so `down` and `status` find them later."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service could not be installed, started or reached; the message says what to do."""


@dataclass
class ManagedProcess:
    name: str
    pid: int
    address: str
    version: str
    log_file: str


def state_dir(data_dir: Path) -> Path:
    path = data_dir / "stack"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file(data_dir: Path, name: str) -> Path:
    return state_dir(data_dir) / f"{name}.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def load_managed(data_dir: Path, name: str) -> ManagedProcess | None:
    """The process this project started under ``name``, if it is still alive."""
    path = _state_file(data_dir, name)
    if not path.exists():
        return None
    proc = ManagedProcess(**json.loads(path.read_text()))
    if not pid_alive(proc.pid):
        path.unlink(missing_ok=True)
        return None
    return proc


def spawn(
    data_dir: Path, name: str, argv: Sequence[str], address: str, version: str, cwd: Path | None = None
) -> ManagedProcess:
    """Start ``argv`` detached from this terminal, its output appended to a log under .data/stack/logs."""
    log_dir = state_dir(data_dir) / "logs"
    log_dir.mkdir(exist_ok=True)
    log_file = log_dir / f"{name}.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    managed = ManagedProcess(
        name=name, pid=proc.pid, address=address, version=version, log_file=str(log_file)
    )
    _state_file(data_dir, name).write_text(json.dumps(asdict(managed)))
    return managed


def stop(data_dir: Path, name: str, timeout_s: float = 45.0) -> bool:
    """SIGTERM the managed process, SIGKILL it after ``timeout_s``; False when nothing was running."""
    proc = load_managed(data_dir, name)
    if proc is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(proc.pid):
        logger.warning("%s did not stop within %.0fs; killing it", name, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        while pid_alive(proc.pid):
            time.sleep(0.1)
    _state_file(data_dir, name).unlink(missing_ok=True)
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: str | Path, lines: int = 40) -> str:
    try:
        content = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(content[-lines:])
