"""ClickPulse's consumer against the same aggregation written with Quix Streams, on the same topic.

One private topic is filled with simulated events (``streaming.simulator``; duplicates and malformed
records included), then, back to back on the same private redis-server:

1. ClickPulse's ``RealtimeConsumer`` (in process, its own group and key prefix) runs to the end of the
   topic: contract validation, event_id dedupe and offset watermarks (exactly-once counts), user
   enrichment, per-video totals / minute and hour buckets / HLL uniques, global totals, CTR counters,
   trending, user profiles, the enriched record produced to Kafka and confirmed, offsets stored.
2. The Quix Streams peer (``bench/peer/quix_aggregation.py``, in ``bench/.peer-venv``, a subprocess with
   its own group and key prefix) runs to the end of the same topic, once per ``mode:checkpoint`` run:
   ``full`` does comparable work (contract validation with pydantic, event_id dedupe in Quix state,
   enrichment, the enriched record to a topic, per-video, global and per-user counters), ``counters``
   only the per-video keys (the core aggregation, no dedupe); both pre-aggregate per Quix checkpoint and
   write one Redis pipeline, at-least-once. A 0.25 s checkpoint keeps Redis as fresh as ClickPulse does
   (live snapshots every 250 ms, p99 target 250 ms); 5 s is Quix's default.

Both rates are the topic's records over the time from the first record (or output) to the last Redis
write (the consumer's first batch, which includes the group join, is left out of its timing). Each run's
per-video totals, summed over all videos, are compared with the simulator's ground truth in the note.

``python -m bench peer_bench``; env ``CLICKPULSE_BENCH_PEER_EVENTS`` (default 100000) and
``CLICKPULSE_BENCH_PEER_RUNS`` (default ``full:0.25,full:5,counters:0.25``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

from bench.consumer_bench import (
    _fill,
    _simulated,
    consumer_rate,
    on_private_redis,
    private_redis,
    private_topics,
)
from bench.peer_env import PEER_SCRIPT, peer_python, peer_versions
from clickpulse.settings import Settings, get_settings
from clickpulse.stack.topics import delete_topics, ensure_topics
from streaming.keyspace import Keyspace, Retention
from streaming.redis_conn import connect

logger = logging.getLogger(__name__)

METRICS = ("clicks", "impressions", "conversions")
DEFAULT_RUNS = "full:0.25,full:5,counters:0.25"


def _video_totals(url: str, prefix: str, videos: list[str]) -> dict[str, int]:
    """Sum over ``videos`` of the ``{video:ID}:totals`` counters under ``prefix``."""
    client = connect(url)
    keyspace = Keyspace(prefix=prefix)
    pipe = client.pipeline(transaction=False)
    for video_id in videos:
        pipe.hmget(keyspace.video_totals(video_id), METRICS)
    sums = dict.fromkeys(METRICS, 0)
    for values in pipe.execute():
        for metric, value in zip(METRICS, values, strict=True):
            sums[metric] += int(value or 0)
    client.close()
    return sums


@dataclass(frozen=True, slots=True)
class PeerRun:
    """One run of the Quix peer: ``mode`` counters or full, Quix checkpoint interval in seconds."""

    mode: str
    checkpoint_s: float

    @classmethod
    def parse(cls, spec: str) -> PeerRun:
        mode, _, seconds = spec.strip().partition(":")
        if mode not in ("counters", "full"):
            raise ValueError(f"peer run {spec!r}: mode must be counters or full")
        return cls(mode, float(seconds or "5"))


PEER_WORK = {
    "full": (
        "contract as a pydantic model (model_validate_json), event_id dedupe in Quix state (RocksDB + "
        "changelog topic), enrichment from Redis (cache + HMGET per miss), enriched record to a topic, "
        "per-video totals, minute/hour buckets and HLL uniques, global totals + CTR, profile counts; no "
        "trending, recent lists, live snapshots, dead letters or replay watermarks"
    ),
    "counters": (
        "orjson decode + field checks, then per-video totals, minute/hour buckets and HLL uniques only; "
        "no dedupe, enrichment, output topic, global or per-user state"
    ),
}


def run_peer(
    own: Settings, url: str, prefix: str, spec: PeerRun, outputs: int, output_topic: str
) -> dict[str, Any]:
    """The Quix peer in its own environment until ``outputs`` values reached its sink; its summary.
    Deletes the topics Quix created for its group (the dedupe state's changelog)."""
    retention = Retention.from_settings(own)
    ttls = {
        "minute": retention.minute_s,
        "hour": retention.hour_s,
        "uniq_hour": retention.uniq_hour_s,
        "uniq_day": retention.uniq_day_s,
        "profile": retention.profile_s,
    }
    group = f"bench-quix-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="cp-quix-state-") as state_dir:
        command = [
            str(peer_python()),
            str(PEER_SCRIPT),
            *("--bootstrap", own.kafka_bootstrap_servers, "--topic", own.topic_raw, "--group", group),
            *("--redis-url", url, "--prefix", prefix, "--mode", spec.mode, "--output-topic", output_topic),
            *("--count", str(outputs), "--commit-interval", str(spec.checkpoint_s)),
            *("--ttls", json.dumps(ttls), "--state-dir", state_dir),
        ]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        finally:
            listed = AdminClient({"bootstrap.servers": own.kafka_bootstrap_servers}).list_topics(timeout=10)
            delete_topics(own.kafka_bootstrap_servers, [name for name in listed.topics if group in name])
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"the Quix peer failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run(events: int | None = None, runs: list[str] | None = None) -> list[dict[str, Any]]:
    settings = get_settings()
    events = events or int(os.environ.get("CLICKPULSE_BENCH_PEER_EVENTS", "100000"))
    runs = runs or os.environ.get("CLICKPULSE_BENCH_PEER_RUNS", DEFAULT_RUNS).split(",")
    specs = [PeerRun.parse(spec) for spec in runs]
    versions = peer_versions()  # creates bench/.peer-venv first, outside the timings
    with private_redis() as url, private_topics(on_private_redis(settings, url)) as own:
        sim = _simulated(events, seed=404)
        total = _fill(own, sim)
        truth = sim.truth.to_dict()
        videos = sorted(truth["videos"])
        expected = {m: sum(v[m] for v in truth["videos"].values()) for m in METRICS}

        rate, consumer = consumer_rate(own, total, own.consumer_batch_size)
        stats = consumer.stats
        consumer.close()
        clickpulse_totals = _video_totals(url, own.redis_prefix, videos)

        output_topic = f"{own.topic_enriched}.quix"
        ensure_topics(own.kafka_bootstrap_servers, {output_topic: 6})
        peers: list[tuple[PeerRun, dict[str, Any], dict[str, int]]] = []
        try:
            for spec in specs:
                peer_prefix = f"{own.redis_prefix}quix{len(peers)}"
                outputs = truth["totals"]["valid"] if spec.mode == "full" else total
                peer = run_peer(own, url, peer_prefix, spec, outputs, output_topic)
                peers.append((spec, peer, _video_totals(url, peer_prefix, videos)))
                logger.info("clickpulse %s; quix peer %s: %s", stats, spec, peer)
        finally:
            delete_topics(own.kafka_bootstrap_servers, [output_topic])

    exact = "equal" if clickpulse_totals == expected else f"DIFFER ({clickpulse_totals} vs {expected})"
    rows = []
    for spec, peer, peer_totals in peers:
        peer_rate = total / float(peer["seconds"])
        off = sum(peer_totals.values()) - sum(expected.values())
        note = (
            f"{total} simulated records ({truth['totals']['duplicates']} duplicates, "
            f"{truth['totals']['malformed']} malformed), 6 partitions, one private redis-server, back to "
            "back. ClickPulse: contract validation, dedupe + offset watermarks, enrichment, enriched record "
            "to Kafka, per-video totals, minute/hour buckets and HLL uniques, global/CTR/trending, profiles, "
            f"batch {own.consumer_batch_size}; its per-video totals vs truth: {exact}. Quix peer "
            f"({versions}, own venv, {spec.checkpoint_s:g} s checkpoints, one Redis pipeline each, "
            f"at-least-once): {PEER_WORK[spec.mode]}; its per-video totals vs truth: {off:+d}"
        )
        label = "comparable work" if spec.mode == "full" else "per-video counters only"
        rows.append(
            {
                "name": f"consumer events/s vs Quix Streams peer, {label}, {spec.checkpoint_s:g} s commits",
                "value": round(rate),
                "baseline": round(peer_rate),
                "ratio": round(rate / peer_rate, 3),
                "unit": "events/s",
                "note": note,
            }
        )
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for row in run():
        print(row)
