"""Apache Kafka in KRaft mode, run from the jars that `stack/pom.xml` pins.

The jars are copied once by Maven into a git-ignored cache keyed by the pom's hash, so a second start
only launches the JVM. Each node is a combined broker+controller; the cluster mode runs three of them.
A node can also open a SASL_PLAINTEXT listener (``KafkaNode.sasl_port``) whose users log in with PLAIN,
SCRAM-SHA-256 or SCRAM-SHA-512: the tests use it to run ClickPulse against an authenticating broker, as
on a managed service, while the node's own traffic stays on its PLAINTEXT listener.
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from clickpulse.settings import PROJECT_ROOT
from clickpulse.stack.addresses import parse_bootstrap
from clickpulse.stack.processes import ManagedProcess, StackError, load_managed, log_tail, port_open, spawn
from streaming.kafka_io import KafkaTarget, as_client_config

logger = logging.getLogger(__name__)

POM = PROJECT_ROOT / "stack" / "pom.xml"
SERVER_TEMPLATE = PROJECT_ROOT / "stack" / "kafka" / "server.properties.tmpl"
LOG4J_CONFIG = PROJECT_ROOT / "stack" / "kafka" / "log4j2.properties"
HEAP = "-Xmx512m"
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SASL_NAME: Final = re.compile(r"^[A-Za-z0-9._@-]+$")


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    host: str
    broker_port: int
    controller_port: int
    sasl_port: int | None = None  # a SASL_PLAINTEXT listener as well (users: ``start_nodes(sasl_users=)``)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.broker_port}"

    @property
    def sasl_bootstrap(self) -> str:
        if self.sasl_port is None:
            raise StackError(f"node {self.node_id} has no SASL listener")
        return f"{self.host}:{self.sasl_port}"


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
    cid = "-"
    while cid.startswith("-"):  # as Kafka's own Uuid.randomUuid: an id starting with "-" reads as an option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(cid)
    return cid


def _check_sasl_users(users: Mapping[str, str]) -> None:
    """Names and passwords go into a JAAS line and a format argument: keep them to a safe alphabet."""
    for user, password in users.items():
        if not _SASL_NAME.match(user) or not _SASL_NAME.match(password):
            raise StackError(f"SASL user {user!r}: names and passwords may use only letters, digits and ._@-")


def _listener_lines(node: KafkaNode, users: Mapping[str, str]) -> dict[str, str]:
    """The listener part of server.properties: PLAINTEXT (+ SASL_PLAINTEXT when the node has a SASL port)."""
    listeners = [f"PLAINTEXT://{node.host}:{node.broker_port}"]
    advertised = [f"PLAINTEXT://{node.host}:{node.broker_port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    sasl_lines = ""
    if node.sasl_port is not None:
        listeners.append(f"SASL_PLAINTEXT://{node.host}:{node.sasl_port}")
        advertised.append(f"SASL_PLAINTEXT://{node.host}:{node.sasl_port}")
        protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        plain_users = " ".join(f'user_{user}="{password}"' for user, password in users.items())
        prefix = "listener.name.sasl_plaintext"
        sasl_lines = "\n".join(
            [
                f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}",
                f"{prefix}.plain.sasl.jaas.config="
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
                *(
                    f"{prefix}.{mechanism.lower()}.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    for mechanism in SASL_MECHANISMS[1:]
                ),
            ]
        )
    return {
        "listeners": ",".join([*listeners, f"CONTROLLER://{node.host}:{node.controller_port}"]),
        "advertised_listeners": ",".join(advertised),
        "protocol_map": ",".join(protocols),
        "sasl_lines": sasl_lines,
    }


def _render_config(
    data_dir: Path,
    name: str,
    node: KafkaNode,
    nodes: list[KafkaNode],
    partitions: int,
    sasl_users: Mapping[str, str],
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
        quorum_line=quorum,
        log_dir=log_dir,
        partitions=partitions,
        replication=replication,
        min_isr=1 if replication == 1 else 2,
        **_listener_lines(node, sasl_users),
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


def _format_storage(
    libs: Path,
    conf: Path,
    cluster_id: str,
    node: KafkaNode,
    standalone: bool,
    scram_users: Mapping[str, str],
) -> None:
    """Format the node's log directory once; SCRAM credentials live in the metadata log, so they are
    added here (PLAIN users are in the listener's JAAS line)."""
    meta = Path(_log_dir_of(conf)) / "meta.properties"
    if meta.exists():
        return
    args = ["format", f"--cluster-id={cluster_id}", "-c", str(conf)]
    if standalone:
        args.append("--standalone")
    for user, password in scram_users.items():
        for mechanism in SASL_MECHANISMS[1:]:
            args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
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
    data_dir: Path,
    cache_dir: Path,
    name: str,
    nodes: list[KafkaNode],
    partitions: int,
    sasl_users: Mapping[str, str] | None = None,
) -> list[ManagedProcess]:
    """Format (first time) and start every node not already running; returns what this call started.

    ``sasl_users`` (name -> password) may log in on the nodes' SASL listeners with any of
    ``SASL_MECHANISMS``; they are set when a node is formatted, so pass them on its first start.
    """
    users = dict(sasl_users or {})
    _check_sasl_users(users)
    libs = ensure_jars(cache_dir)
    cluster_id = _cluster_id(data_dir, name)
    started = []
    for node in nodes:
        proc_name = f"{name}-{node.node_id}"
        # Reuse a node that runs already: started by this checkout, or answering on its port.
        if load_managed(data_dir, proc_name) is not None or port_open(node.host, node.broker_port):
            continue
        conf = _render_config(data_dir, name, node, nodes, partitions, users)
        scram_users = users if node.sasl_port is not None else {}
        _format_storage(libs, conf, cluster_id, node, standalone=len(nodes) == 1, scram_users=scram_users)
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


def wait_ready(kafka: KafkaTarget, expected_brokers: int, timeout_s: float, log_files: list[str]) -> None:
    """Block until a metadata request lists every broker; fail with the brokers' log tails otherwise."""
    from confluent_kafka.admin import AdminClient

    config = as_client_config(kafka, **{"socket.connection.setup.timeout.ms": 2000, "log_level": 0})
    bootstrap = config["bootstrap.servers"]
    admin = AdminClient(config)
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


def answers(kafka: KafkaTarget, timeout_s: float = 3.0) -> bool:
    """Whether a broker answers a metadata request (with the TLS/SASL settings of a ``client_config``)."""
    from confluent_kafka.admin import AdminClient

    config = as_client_config(kafka, log_level=0)
    if not any(port_open(host, port) for host, port in parse_bootstrap(config["bootstrap.servers"])):
        return False
    try:
        AdminClient(config).list_topics(timeout=timeout_s)
        return True
    except Exception:
        return False
