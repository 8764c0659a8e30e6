"""Redis from the Debian package, with AOF and an eviction policy that never evicts live counters."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from enum import StrEnum
from pathlib import Path

from clickpulse.settings import PROJECT_ROOT
from clickpulse.stack.processes import ManagedProcess, StackError, load_managed, log_tail, spawn
from clickpulse.stack.redis_acl import ACL_FILE_NAME, OPEN_ACL, redis_cli_auth
from streaming.redis_roles import RoleCredentials, redact_url, refused_login

logger = logging.getLogger(__name__)

CONF_TEMPLATE = PROJECT_ROOT / "stack" / "redis" / "redis.conf.tmpl"
CLUSTER_PORTS = (17001, 17002, 17003)
CLUSTER_SLOTS = 16_384
CLUSTER_REJOIN_TIMEOUT_S = 60.0  # nodes restarted from nodes.conf, or just joined, until cluster_state:ok


def ensure_redis_server() -> str:
    """Path of redis-server, installing the Debian package when running as root and it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise StackError(
            "redis-server is not on PATH. Install it (Debian/Ubuntu: sudo apt-get install "
            "redis-server; macOS: brew install redis) or point REDIS_URL at a running Redis."
        )
    logger.info("installing redis-server with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    found = shutil.which("redis-server")
    if not found:
        raise StackError("apt-get installed redis-server but it is not on PATH")
    return found


def redis_server_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return "unknown"


def node_dir(data_dir: Path, name: str) -> Path:
    """Where one instance keeps its config, ACL file, AOF and cluster state."""
    return data_dir / "redis" / name


def acl_file(data_dir: Path, name: str) -> Path:
    return node_dir(data_dir, name) / ACL_FILE_NAME


def render_config(
    data_dir: Path,
    name: str,
    host: str,
    port: int,
    maxmemory: str,
    cluster: bool,
    acl_text: str = OPEN_ACL,
) -> Path:
    """The instance's redis.conf and its ACL file (``acl_text``; the open default unless ACL mode)."""
    folder = node_dir(data_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    users = acl_file(data_dir, name)
    users.write_text(acl_text)
    users.chmod(0o600)
    cluster_lines = ""
    if cluster:
        cluster_lines = (
            f"cluster-enabled yes\ncluster-config-file nodes-{port}.conf\n"
            "cluster-node-timeout 5000\ncluster-require-full-coverage no\n"
        )
    conf = folder / "redis.conf"
    conf.write_text(
        CONF_TEMPLATE.read_text().format(
            host=host,
            port=port,
            data_dir=folder,
            maxmemory=maxmemory,
            cluster_lines=cluster_lines,
            acl_file=users,
        )
    )
    return conf


def start_instance(
    data_dir: Path,
    name: str,
    host: str,
    port: int,
    maxmemory: str,
    cluster: bool = False,
    acl_text: str = OPEN_ACL,
) -> ManagedProcess | None:
    """Start one redis-server unless this project already runs it; None when it was running."""
    if load_managed(data_dir, name) is not None:
        return None
    binary = ensure_redis_server()
    conf = render_config(data_dir, name, host, port, maxmemory, cluster, acl_text)
    return spawn(
        data_dir, name, [binary, str(conf)], address=f"{host}:{port}", version=redis_server_version(binary)
    )


def wait_ready(url: str, timeout_s: float, log_file: str | None) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if client.ping():
                info = client.info("persistence")
                if not info.get("loading", 0):
                    return
                last = "loading the AOF"
        except Exception as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StackError(
        f"Redis at {redact_url(url)} did not answer PING within {timeout_s:.0f}s ({last}).\n"
        f"{log_tail(log_file) if log_file else ''}"
    )


def answers(url: str) -> str | None:
    """The server version when Redis answers at ``url``, else None."""
    state, version = probe(url)
    return version if state is Probe.UP else None


class Probe(StrEnum):
    UP = "up"
    AUTH = "auth"  # something answers but refuses these credentials (or none)
    DOWN = "down"


def probe(url: str) -> tuple[Probe, str | None]:
    """Whether Redis answers ``INFO server`` at ``url`` (with the URL's credentials), and its version."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        info = client.info("server")
        return Probe.UP, str(info.get("redis_version", "unknown"))
    except Exception as exc:
        return (Probe.AUTH if refused_login(exc) else Probe.DOWN), None
    finally:
        client.close()


def create_cluster(host: str, ports: tuple[int, ...], credentials: RoleCredentials | None = None) -> None:
    """Join the instances into a cluster of masters (no replicas) unless they already form one.

    Nodes restarted from their ``nodes-<port>.conf`` know each other and own every slot but report
    ``cluster_state:fail`` until they have gossiped again: those are waited for, not created anew.
    Only nodes that know no one and own no slot are joined; anything in between is an error that
    says what each node sees."""
    import redis

    username = credentials.username if credentials else None
    password = credentials.password if credentials else None

    def view(port: int) -> dict[str, str]:
        client = redis.Redis(
            host=host, port=port, username=username, password=password, decode_responses=True
        )
        try:
            return {k: str(v) for k, v in client.cluster("info").items()}
        finally:
            client.close()

    def formed(info: dict[str, str]) -> bool:
        return (
            int(info.get("cluster_known_nodes", 0)) == len(ports)
            and int(info.get("cluster_slots_assigned", 0)) == CLUSTER_SLOTS
        )

    def cluster_ok(port: int) -> bool:
        info = view(port)
        return info.get("cluster_state") == "ok" and formed(info)

    def wait_ok(timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(cluster_ok(p) for p in ports):
                return
            time.sleep(0.3)
        raise StackError(f"the Redis Cluster did not reach cluster_state:ok within {timeout_s:.0f}s")

    views = {port: view(port) for port in ports}
    if all(formed(info) for info in views.values()):
        wait_ok(CLUSTER_REJOIN_TIMEOUT_S)
        return
    fresh = all(
        int(info.get("cluster_known_nodes", 0)) <= 1 and int(info.get("cluster_slots_assigned", 0)) == 0
        for info in views.values()
    )
    if not fresh:
        seen = "; ".join(
            f"{host}:{port} knows {info.get('cluster_known_nodes')} nodes, "
            f"{info.get('cluster_slots_assigned')} slots assigned"
            for port, info in views.items()
        )
        raise StackError(
            f"the Redis Cluster nodes are partly formed ({seen}); stop them with "
            "`clickpulse stack down --cluster` and delete their nodes-<port>.conf files (in "
            ".data/redis/redis-cluster-<port>/) "
            "to form a new cluster"
        )
    cli = shutil.which("redis-cli")
    if cli is None:
        raise StackError("redis-cli (from the redis-tools package) is needed to form the Redis Cluster")
    nodes = [f"{host}:{p}" for p in ports]
    auth_args, auth_env = redis_cli_auth(credentials)
    result = subprocess.run(
        [cli, *auth_args, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **auth_env},
    )
    if result.returncode != 0:
        raise StackError(
            f"redis-cli --cluster create failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    wait_ok(CLUSTER_REJOIN_TIMEOUT_S)
