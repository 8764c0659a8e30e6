"""The Quix Streams peer's own environment: ``bench/.peer-venv`` (git-ignored).

Quix Streams pins an older confluent-kafka than ClickPulse, so the peer never shares the project's
environment: ``uv venv`` + ``uv pip install`` of the pinned versions below, created on first use and
reused while the pins match. ``python -m bench.peer_env`` creates it and prints its interpreter.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

QUIXSTREAMS_VERSION = "3.28.1"
REDIS_PY_VERSION = "8.1.0"
REQUIREMENTS = (f"quixstreams=={QUIXSTREAMS_VERSION}", f"redis=={REDIS_PY_VERSION}")
VENV = Path(__file__).resolve().parent / ".peer-venv"
PEER_SCRIPT = Path(__file__).resolve().parent / "peer" / "quix_aggregation.py"
_STAMP = ".clickpulse-peer-requirements"


def peer_python() -> Path:
    """The peer environment's interpreter; creates or refreshes the environment when needed."""
    python = VENV / "bin" / "python"
    stamp = VENV / _STAMP
    wanted = "\n".join(REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to create the Quix Streams peer environment (bench/.peer-venv)")
    logger.info("creating %s with %s", VENV, ", ".join(REQUIREMENTS))
    subprocess.run([uv, "venv", "--quiet", "--allow-existing", "--python", "3.11", str(VENV)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return python


def peer_versions() -> str:
    """``quixstreams X, confluent-kafka Y`` as installed in the peer environment."""
    code = "import quixstreams, confluent_kafka; print(quixstreams.__version__, confluent_kafka.version())"
    out = subprocess.run([str(peer_python()), "-c", code], capture_output=True, text=True, check=True)
    quix, kafka = out.stdout.split()
    return f"quixstreams {quix}, confluent-kafka {kafka}"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(peer_python())
    print(peer_versions())
    sys.exit(0)
