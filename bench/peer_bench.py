"""ClickPulse's consumer against the same aggregation written with Quix Streams, on the same topic.

One private topic is filled with simulated events (``streaming.simulator``; duplicates and malformed
records included), then, back to back on the same private redis-server:

1. ClickPulse's ``RealtimeConsumer`` (in process, its own group and key prefix) runs to the end of the
   topic: contract validation, event_id dedupe and offset watermarks (exactly-once counts), user
   enrichment, per-video totals / minute and hour buckets / HLL uniques, global totals, CTR counters,
   trending, user profiles, the enriched record produced to Kafka and confirmed, offsets stored.
2. The Quix Streams peer (``bench/peer/quix_aggregation.py``, in ``bench/.peer-venv``, a subprocess with
   its own group and key prefix) runs to the end of the same topic: JSON decode + the checks the
   aggregation needs, then the per-video keys only (totals, minute and hour buckets, HLL uniques),
   pre-aggregated per Quix checkpoint and written with one pipeline, at-least-once (no dedupe). Once
   per checkpoint interval: 0.25 s keeps Redis as fresh as ClickPulse does; 5 s is Quix's default.

Both rates count records from the first record to the last Redis write (the consumer's first batch,
which includes the group join, is left out of its timing). Both runs are then checked against the
simulator's ground truth: per-video totals summed over all videos.

``python -m bench peer_bench``; env ``CLICKPULSE_BENCH_PEER_EVENTS`` (default 100000) and
``CLICKPULSE_BENCH_PEER_CHECKPOINTS`` (Quix checkpoint intervals in seconds, default ``0.25,5``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import uuid
from typing import Any

from bench.consumer_bench import _fill, _simulated, consumer_rate, private_redis, private_topics
from bench.peer_env import PEER_SCRIPT, peer_python, peer_versions
from clickpulse.settings import Settings, get_settings
from streaming.keyspace import Keyspace, Retention
from streaming.redis_conn import connect

logger = logging.getLogger(__name__)

METRICS = ("clicks", "impressions", "conversions")


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


def run_peer(own: Settings, url: str, prefix: str, records: int, checkpoint_s: float) -> dict[str, Any]:
    """The Quix peer in its own environment, to ``records`` records; its JSON summary."""
    retention = Retention.from_settings(own)
    ttls = {
        "minute": retention.minute_s,
        "hour": retention.hour_s,
        "uniq_hour": retention.uniq_hour_s,
        "uniq_day": retention.uniq_day_s,
    }
    with tempfile.TemporaryDirectory(prefix="cp-quix-state-") as state_dir:
        command = [
            str(peer_python()),
            str(PEER_SCRIPT),
            "--bootstrap",
            own.kafka_bootstrap_servers,
            "--topic",
            own.topic_raw,
            "--group",
            f"bench-quix-{uuid.uuid4().hex[:8]}",
            "--redis-url",
            url,
            "--prefix",
            prefix,
            "--count",
            str(records),
            "--commit-interval",
            str(checkpoint_s),
            "--ttls",
            json.dumps(ttls),
            "--state-dir",
            state_dir,
        ]
        out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"the Quix peer failed ({out.returncode}): {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run(events: int | None = None, checkpoints: list[float] | None = None) -> list[dict[str, Any]]:
    settings = get_settings()
    events = events or int(os.environ.get("CLICKPULSE_BENCH_PEER_EVENTS", "100000"))
    checkpoints = checkpoints or [
        float(s) for s in os.environ.get("CLICKPULSE_BENCH_PEER_CHECKPOINTS", "0.25,5").split(",")
    ]
    versions = peer_versions()  # creates bench/.peer-venv first, outside the timings
    with private_redis() as url, private_topics(settings.model_copy(update={"redis_url": url})) as own:
        sim = _simulated(events, seed=404)
        total = _fill(own, sim)
        truth = sim.truth.to_dict()
        videos = sorted(truth["videos"])
        expected = {m: sum(v[m] for v in truth["videos"].values()) for m in METRICS}

        rate, consumer = consumer_rate(own, total, own.consumer_batch_size)
        stats = consumer.stats
        consumer.close()
        clickpulse_totals = _video_totals(url, own.redis_prefix, videos)

        peers: list[tuple[float, dict[str, Any], dict[str, int]]] = []
        for checkpoint_s in checkpoints:
            peer_prefix = f"{own.redis_prefix}quix{len(peers)}"
            peer = run_peer(own, url, peer_prefix, total, checkpoint_s)
            peers.append((checkpoint_s, peer, _video_totals(url, peer_prefix, videos)))
            logger.info("clickpulse %s; quix peer (%g s checkpoints) %s", stats, checkpoint_s, peer)

    exact = "equal" if clickpulse_totals == expected else f"DIFFER ({clickpulse_totals} vs {expected})"
    rows = []
    for checkpoint_s, peer, peer_totals in peers:
        peer_rate = float(peer["rate"])
        over = sum(peer_totals.values()) - sum(expected.values())
        note = (
            f"{total} simulated records ({truth['totals']['duplicates']} duplicates, "
            f"{truth['totals']['malformed']} malformed), 6 partitions, one private redis-server, back to "
            "back. ClickPulse: contract validation, dedupe + offset watermarks, enrichment, per-video "
            "totals, minute/hour buckets and HLL uniques, global/CTR/trending, profiles, enriched record "
            f"to Kafka, batch {own.consumer_batch_size}; its per-video totals vs truth: {exact}. "
            f"Quix peer ({versions}, own venv): JSON decode + field checks, then per-video totals, "
            f"minute/hour buckets and HLL uniques only, pre-aggregated per {checkpoint_s:g} s checkpoint, "
            f"one pipeline, at-least-once; its totals vs truth: {over:+d} (no dedupe)"
        )
        rows.append(
            {
                "name": f"consumer events/s vs Quix Streams peer, {checkpoint_s:g} s checkpoints",
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
