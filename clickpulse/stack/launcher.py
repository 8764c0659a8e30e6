"""`clickpulse stack up|down|status`: start what is missing, reuse what answers, stop what we started."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clickpulse.settings import Settings
from clickpulse.stack import kafka, redis_acl, redis_server
from clickpulse.stack.addresses import is_loopback, parse_bootstrap, parse_redis_url
from clickpulse.stack.processes import StackError, load_managed, port_open, stop
from clickpulse.stack.redis_server import Probe
from clickpulse.stack.topics import ensure_topics, project_topics
from streaming.kafka_io import KafkaTarget, as_client_config, client_config
from streaming.redis_roles import redact_url

logger = logging.getLogger(__name__)

KAFKA = "kafka"
KAFKA_CLUSTER = "kafka-cluster"
REDIS = "redis"
REDIS_CLUSTER = "redis-cluster"
CLUSTER_BOOTSTRAP = ",".join(n.bootstrap for n in kafka.cluster_nodes())
CLUSTER_REDIS_URL = f"redis://127.0.0.1:{redis_server.CLUSTER_PORTS[0]}/0"


@dataclass
class ServiceStatus:
    name: str
    address: str
    up: bool
    version: str
    started_by_project: bool

    def line(self) -> str:
        state = "up" if self.up else "down"
        owner = "started by clickpulse" if self.started_by_project else "external"
        if not self.up:
            owner = "-"
        return f"{self.name:<14} {self.address:<48} {state:<5} {self.version:<10} {owner}"


def up(settings: Settings, cluster: bool = False) -> list[ServiceStatus]:
    """Bring up Kafka (single node or 3-broker cluster), Redis, and the project topics."""
    if cluster:
        _up_kafka_cluster(settings)
        _up_redis_cluster(settings)
    else:
        _up_kafka(settings)
        up_redis(settings)
    return status(settings, cluster=cluster)


def _up_kafka(settings: Settings) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    connection = client_config(settings)
    if not kafka.answers(connection):
        if settings.kafka_security():
            raise StackError(
                f"Kafka at {bootstrap} does not answer with the CLICKPULSE_KAFKA_* security settings, and "
                "the local Kafka ClickPulse starts is plaintext: start your cluster, or unset them"
            )
        hosts = parse_bootstrap(bootstrap)
        if len(hosts) != 1 or not is_loopback(hosts[0][0]):
            raise StackError(
                f"Kafka at {bootstrap} does not answer, and ClickPulse only starts Kafka on a "
                "single loopback address; start your cluster or fix KAFKA_BOOTSTRAP_SERVERS"
            )
        host, port = hosts[0]
        if port_open(host, port):
            raise StackError(
                f"port {port} is taken by something that is not a Kafka broker; free it or set "
                "KAFKA_BOOTSTRAP_SERVERS to another address"
            )
        nodes = kafka.single_node(host, port)
        logger.info("starting Kafka %s on %s", kafka.kafka_version(), bootstrap)
        started = kafka.start_nodes(
            settings.data_dir, settings.cache_dir, KAFKA, nodes, settings.topic_partitions
        )
        kafka.wait_ready(connection, 1, settings.stack_start_timeout_s, [p.log_file for p in started])
    ensure_topics(connection, project_topics(settings), replication=1)


def _up_kafka_cluster(settings: Settings) -> None:
    nodes = kafka.cluster_nodes()
    started = kafka.start_nodes(
        settings.data_dir, settings.cache_dir, KAFKA_CLUSTER, nodes, settings.topic_partitions
    )
    kafka.wait_ready(CLUSTER_BOOTSTRAP, 3, settings.stack_start_timeout_s, [p.log_file for p in started])
    ensure_topics(CLUSTER_BOOTSTRAP, project_topics(settings), replication=3)


def up_redis(settings: Settings) -> None:
    url = settings.redis_url
    acl_text = redis_acl.stack_acl_text(settings)
    state, _ = redis_server.probe(redis_acl.admin_url(settings, url))
    if state is not Probe.DOWN:
        _sync_acl(settings, REDIS, url, state, acl_text)
        return
    host, port = parse_redis_url(url)
    if not is_loopback(host):
        raise StackError(
            f"Redis at {redact_url(url)} does not answer, and ClickPulse only starts Redis on loopback; "
            "start your Redis or fix REDIS_URL"
        )
    if port_open(host, port):
        raise StackError(
            f"port {port} is taken by something that does not speak Redis; free it or set REDIS_URL"
        )
    proc = redis_server.start_instance(
        settings.data_dir, REDIS, host, port, settings.redis_maxmemory, acl_text=acl_text
    )
    redis_server.wait_ready(
        redis_acl.admin_url(settings, url), settings.stack_start_timeout_s, proc.log_file if proc else None
    )


def _sync_acl(settings: Settings, name: str, url: str, state: Probe, acl_text: str) -> None:
    """A Redis answers at ``url``: bring the users of one the stack started in line with the mode
    (``ACL LOAD``); an external one must already accept the stack's login."""
    if state is Probe.UP and not settings.redis_acl:
        return  # the default user answers: all that ACL mode off needs
    if load_managed(settings.data_dir, name) is not None:
        redis_acl.reload_running(settings, url, redis_server.acl_file(settings.data_dir, name), acl_text)
        return
    if state is Probe.AUTH:
        hint = (
            f"load the users rendered by `clickpulse stack up` into it (see the README section 'Security'; "
            f"the file ClickPulse would use is {redis_server.acl_file(settings.data_dir, name)}), point "
            "CLICKPULSE_REDIS_ACL_SECRETS at the secrets file of the checkout that started it, or set "
            "CLICKPULSE_REDIS_ACL=0 to use a Redis without ACL users as it is"
            if settings.redis_acl
            else "set CLICKPULSE_REDIS_ACL=1 or put the credentials into REDIS_URL"
        )
        if settings.redis_acl:
            redis_acl.write_private(redis_server.acl_file(settings.data_dir, name), acl_text)
        raise StackError(f"Redis at {redact_url(url)} is not run by ClickPulse and refuses its login: {hint}")


def _up_redis_cluster(settings: Settings) -> None:
    acl_text = redis_acl.stack_acl_text(settings)
    for port in redis_server.CLUSTER_PORTS:
        name = f"{REDIS_CLUSTER}-{port}"
        url = f"redis://127.0.0.1:{port}/0"
        state, _ = redis_server.probe(redis_acl.admin_url(settings, url))
        if state is not Probe.DOWN:
            _sync_acl(settings, name, url, state, acl_text)
            continue
        proc = redis_server.start_instance(
            settings.data_dir,
            name,
            "127.0.0.1",
            port,
            settings.redis_maxmemory,
            cluster=True,
            acl_text=acl_text,
        )
        redis_server.wait_ready(
            redis_acl.admin_url(settings, url),
            settings.stack_start_timeout_s,
            proc.log_file if proc else None,
        )
    admin = redis_acl.admin_credentials(settings)
    redis_server.create_cluster("127.0.0.1", redis_server.CLUSTER_PORTS, admin)


def down(settings: Settings, cluster: bool = False) -> list[str]:
    """Stop what this project started (both modes unless ``cluster`` limits it); returns their names."""
    names = [f"{KAFKA_CLUSTER}-{n.node_id}" for n in kafka.cluster_nodes()]
    names += [f"{REDIS_CLUSTER}-{p}" for p in redis_server.CLUSTER_PORTS]
    if not cluster:
        names = [f"{KAFKA}-1", REDIS, *names]
    return [name for name in names if stop(settings.data_dir, name)]


def status(settings: Settings, cluster: bool = False) -> list[ServiceStatus]:
    out = [
        _kafka_status(KAFKA, f"{KAFKA}-1", client_config(settings), settings),
        _redis_status(REDIS, REDIS, settings.redis_url, settings),
    ]
    if cluster or any(
        load_managed(settings.data_dir, f"{KAFKA_CLUSTER}-{n.node_id}") for n in kafka.cluster_nodes()
    ):
        for node in kafka.cluster_nodes():
            out.append(
                _kafka_status(
                    f"kafka-node-{node.node_id}", f"{KAFKA_CLUSTER}-{node.node_id}", node.bootstrap, settings
                )
            )
        for port in redis_server.CLUSTER_PORTS:
            out.append(
                _redis_status(
                    f"redis-{port}", f"{REDIS_CLUSTER}-{port}", f"redis://127.0.0.1:{port}/0", settings
                )
            )
    return out


def _kafka_status(label: str, proc_name: str, target: KafkaTarget, settings: Settings) -> ServiceStatus:
    managed = load_managed(settings.data_dir, proc_name)
    alive = kafka.answers(target, timeout_s=2)
    version = managed.version if managed else ("4.x (external)" if alive else "-")
    address = as_client_config(target)["bootstrap.servers"]
    return ServiceStatus(label, address, alive, version, managed is not None)


def _redis_status(label: str, proc_name: str, url: str, settings: Settings) -> ServiceStatus:
    managed = load_managed(settings.data_dir, proc_name)
    state, version = redis_server.probe(redis_acl.admin_url(settings, url))
    if state is Probe.AUTH:
        version = "login refused" if settings.redis_acl else "needs ACL"
    address = redact_url(url) + (" (acl)" if settings.redis_acl else "")
    return ServiceStatus(label, address, state is Probe.UP, version or "-", managed is not None)
