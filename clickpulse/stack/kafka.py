"""Apache Kafka in KRaft mode, run from the jars that `stack/pom.xml` pins.

The jars are copied once by Maven into a git-ignored cache keyed by the pom's hash, so a second start
only launches the JVM. Each node is a combined broker+controller; the cluster mode runs three of them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from clickpulse.settings import PROJECT_ROOT
from clickpulse.stack.addresses import parse_bootstrap
from clickpulse.stack.processes import ManagedProcess, StackError, load_managed, log_tail, port_open, spawn

logger = logging.getLogger(__name__)

POM = PROJECT_ROOT / "stack" / "pom.xml"
SERVER_TEMPLATE = PROJECT_ROOT / "stack" / "kafka" / "server.properties.tmpl"
LOG4J_CONFIG = PROJECT_ROOT / "stack" / "kafka" / "log4j2.properties"
HEAP = "-Xmx512m"


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    host: str
    broker_port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.broker_port}"


def single_node(host: str, port: int) -> list[KafkaNode]:
    return [KafkaNode(1, host, port, port + 1)]


def cluster_nodes(host: str = "127.0.0.1", base_port: int = 19092) -> list[KafkaNode]:
    """Three combined nodes: brokers on base_port+0,1,2 and controllers on base_port+100+0,1,2."""
    return [KafkaNode(i + 1, host, base_port + i, base_port + 100 + i) for i in range(3)]


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    return match.group(1) if match else "unknown"


def ensure_jars(cache_dir: Path) -> Path:
    """Copy Kafka and its dependencies from Maven Central into the cache once per pom version."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    libs = cache_dir / f"kafka-libs-{digest}"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError(
            "Maven (mvn) is needed once to fetch the Kafka jars: install it (apt-get install maven)"
        )
    if shutil.which("java") is None:
        raise StackError(
            "Java 17+ is needed to run Kafka: install it (apt-get install openjdk-17-jre-headless)"
        )
    logger.info("fetching Apache Kafka %s jars with Maven into %s (first start only)", kafka_version(), libs)
    libs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(
            f"mvn could not fetch the Kafka jars:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    marker.write_text(kafka_version())
    return libs


def _cluster_id(data_dir: Path, name: str) -> str:
    path = data_dir / "kafka" / f"{name}.cluster-id"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(cid)
    return cid


def _render_config(
    data_dir: Path, name: str, node: KafkaNode, nodes: list[KafkaNode], partitions: int
) -> Path:
    replication = min(3, len(nodes))
    if len(nodes) == 1:
        quorum = f"controller.quorum.bootstrap.servers={node.host}:{node.controller_port}"
    else:
        voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in nodes)
        quorum = f"controller.quorum.voters={voters}"
    log_dir = data_dir / "kafka" / name / f"node-{node.node_id}"
    text = SERVER_TEMPLATE.read_text().format(
        node_id=node.node_id,
        host=node.host,
        broker_port=node.broker_port,
        controller_port=node.controller_port,
        quorum_line=quorum,
        log_dir=log_dir,
        partitions=partitions,
        replication=replication,
        min_isr=1 if replication == 1 else 2,
    )
    conf = data_dir / "kafka" / name / f"server-{node.node_id}.properties"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)
    return conf


def _java(libs: Path, main: str, *args: str) -> list[str]:
    return [
        "java",
        HEAP,
        "-Xms256m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _format_storage(libs: Path, conf: Path, cluster_id: str, node: KafkaNode, standalone: bool) -> None:
    meta = Path(_log_dir_of(conf)) / "meta.properties"
    if meta.exists():
        return
    args = ["format", "-t", cluster_id, "-c", str(conf)]
    if standalone:
        args.append("--standalone")
    result = subprocess.run(
        _java(libs, "kafka.tools.StorageTool", *args), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(
            f"formatting Kafka storage for node {node.node_id} failed:\n{result.stdout}\n{result.stderr}"
        )


def _log_dir_of(conf: Path) -> str:
    for line in conf.read_text().splitlines():
        if line.startswith("log.dirs="):
            return line.split("=", 1)[1]
    raise StackError(f"no log.dirs in {conf}")


def start_nodes(
    data_dir: Path, cache_dir: Path, name: str, nodes: list[KafkaNode], partitions: int
) -> list[ManagedProcess]:
    """Format (first time) and start every node not already running; returns what this call started."""
    libs = ensure_jars(cache_dir)
    cluster_id = _cluster_id(data_dir, name)
    started = []
    for node in nodes:
        proc_name = f"{name}-{node.node_id}"
        # Reuse a node that runs already: started by this checkout, or answering on its port.
        if load_managed(data_dir, proc_name) is not None or port_open(node.host, node.broker_port):
            continue
        conf = _render_config(data_dir, name, node, nodes, partitions)
        _format_storage(libs, conf, cluster_id, node, standalone=len(nodes) == 1)
        started.append(
            spawn(
                data_dir,
                proc_name,
                _java(libs, "kafka.Kafka", str(conf)),
                address=node.bootstrap,
                version=kafka_version(),
            )
        )
    return started


def wait_ready(bootstrap: str, expected_brokers: int, timeout_s: float, log_files: list[str]) -> None:
    """Block until a metadata request lists every broker; fail with the brokers' log tails otherwise."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000, "log_level": 0}
    )
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            meta = admin.list_topics(timeout=3)
            if len(meta.brokers) >= expected_brokers:
                return
            last_error = f"{len(meta.brokers)} of {expected_brokers} brokers registered"
        except Exception as exc:
            last_error = str(exc)
        time.sleep(0.5)
    tails = "\n".join(f"--- {f} ---\n{log_tail(f)}" for f in log_files)
    raise StackError(
        f"Kafka at {bootstrap} did not answer a metadata request within {timeout_s:.0f}s "
        f"({last_error}).\n{tails}"
    )


def answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    from confluent_kafka.admin import AdminClient

    if not any(port_open(host, port) for host, port in parse_bootstrap(bootstrap)):
        return False
    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=timeout_s)
        return True
    except Exception:
        return False
