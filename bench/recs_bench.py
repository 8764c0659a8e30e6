"""Recommendations benchmark: training at 1M and 10M interactions, publishing, API latency.

Rows (``run() -> list[dict]``), each with a baseline measured in the same run:

1. Training (``train_and_evaluate``: three models, holdout evaluation, refit, every user's top N) on
   synthetic interactions with planted taste clusters, 1M and 10M pairs, each size in a fresh process.
   Baseline: a bare ``implicit`` ALS fit of the same matrix with the same parameters (the library alone).
   Target: 10M in under 10 minutes. Peak memory: the process's peak RSS (``ru_maxrss``) against its RSS
   with the interactions loaded, before training.
2. Publish time per 100K users (``RecsStore.publish``: JSON lists, pipelines, pointer switch) against
   ``redis-benchmark`` sending the same number of SETs with the same payload size, pipeline depth and TTL.
3. ``GET /v1/recommendations/{user_id}`` in the real API process (uvicorn, one worker) on the published
   lists, against the same server's ``/bench/constant`` route (``bench/api_load.py``, shared with the
   stats benchmark): saturation throughput (closed loop; target >= 0.5 of the constant route) and p50 /
   p99 at half of that rate (open loop; target p99 <= 25 ms).

``python -m bench recs_bench`` runs it; ``make bench`` runs all benchmarks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import subprocess
import time
import uuid
from typing import Any, Final
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.api_load import compare_with_constant, comparison_rows, free_port, row, start_api, stop_api
from clickpulse.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SIZES: Final = {  # interactions -> (users, videos)
    1_000_000: (50_000, 5_000),
    10_000_000: (400_000, 20_000),
}
TRAIN_TARGET_S: Final = 600.0
PUBLISH_USERS: Final = 100_000
PUBLISH_VIDEOS: Final = 5_000
READ_KEY: Final = "bench-recs-read-key"


def synthetic_interactions(
    pairs: int, users: int, videos: int, seed: int = 0, clusters: int = 20
) -> pa.Table:
    """The interactions mart's columns for ``pairs`` distinct user x video pairs with planted clusters:
    each user mostly (85 %) engages with videos of one cluster, Zipf popularity inside it."""
    rng = np.random.default_rng(seed)
    video_cluster = rng.integers(0, clusters, videos)
    user_cluster = rng.integers(0, clusters, users)
    popularity = 1.0 / rng.permutation(np.arange(1, videos + 1)) ** 1.05
    activity = rng.lognormal(0.0, 1.0, users)
    activity /= activity.sum()
    members = [np.flatnonzero(video_cluster == c) for c in range(clusters)]
    weights = [popularity[m] / popularity[m].sum() for m in members]
    codes = np.zeros(0, np.int64)
    while len(codes) < pairs:
        draw = int((pairs - len(codes)) * 1.4) + 1000
        user = rng.choice(users, draw, p=activity)
        video = rng.choice(videos, draw, p=popularity / popularity.sum())
        taste = rng.random(draw) < 0.85
        for c in range(clusters):
            rows = np.flatnonzero(taste & (user_cluster[user] == c))
            video[rows] = members[c][rng.choice(len(members[c]), len(rows), p=weights[c])]
        codes = np.unique(np.concatenate([codes, user.astype(np.int64) * videos + video]))
    codes = rng.choice(codes, pairs, replace=False)
    user, video = (codes // videos).astype(np.int32), (codes % videos).astype(np.int32)
    n = len(codes)
    clicks = rng.poisson(1.5, n) * (rng.random(n) < 0.7)
    conversions = (rng.random(n) < 0.08) * (clicks > 0)
    impressions = rng.poisson(2.0, n) + (clicks == 0)
    end_ms = 1_767_225_600_000  # 2026-01-01 UTC
    last = end_ms - rng.integers(0, 30 * 86_400_000, n)
    first = last - rng.integers(0, 3 * 86_400_000, n)

    def ids(prefix: str, values: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")

    return pa.table(
        {
            "user_id": ids("u", user),
            "video_id": ids("v", video),
            "impressions": pa.array(impressions, pa.int64()),
            "clicks": pa.array(clicks, pa.int64()),
            "conversions": pa.array(conversions.astype(np.int64), pa.int64()),
            "first_event_time": pa.array(first, pa.timestamp("ms")),
            "last_event_time": pa.array(last, pa.timestamp("ms")),
        }
    )


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_child(pairs: int, queue: Any) -> None:
    """In a fresh process: the pipeline as the asset runs it, from the mart's Arrow table."""
    from assets.recommendations.training import TrainingConfig, train_and_evaluate

    users, videos = SIZES[pairs]
    table = synthetic_interactions(pairs, users, videos)
    loaded_mb = _rss_mb()
    began = time.perf_counter()
    result = train_and_evaluate(table.to_pandas(), TrainingConfig.from_settings(get_settings()))
    seconds = time.perf_counter() - began
    queue.put(
        {
            "seconds": seconds,
            "loaded_mb": loaded_mb,
            "peak_mb": _peak_mb(),
            "chosen": result.chosen,
            "ndcg": result.chosen_ndcg,
            "popularity_ndcg": result.popularity_ndcg,
            "timings": result.timings,
        }
    )


def _bare_als_child(pairs: int, queue: Any) -> None:
    """In a fresh process: only ``implicit``'s ALS fit on the same matrix (confidence log1p of clicks)."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    settings = get_settings()
    users, videos = SIZES[pairs]
    table = synthetic_interactions(pairs, users, videos)
    user = pc.cast(pc.utf8_slice_codeunits(table["user_id"], 1), pa.int32()).to_numpy()
    video = pc.cast(pc.utf8_slice_codeunits(table["video_id"], 1), pa.int32()).to_numpy()
    weight = np.log1p(table["clicks"].to_numpy() + 0.1 * table["impressions"].to_numpy()).astype(np.float32)
    matrix = sp.csr_matrix((weight, (user, video)), shape=(users, videos))
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=settings.recs_als_factors,
            regularization=settings.recs_als_regularization,
            alpha=settings.recs_als_alpha,
            iterations=settings.recs_als_iterations,
            num_threads=settings.recs_num_threads,
            random_state=0,
        )
        began = time.perf_counter()
        model.fit(matrix, show_progress=False)
    queue.put({"seconds": time.perf_counter() - began})


def _in_child(target: Any, pairs: int, timeout_s: float = 3600) -> dict[str, Any]:
    """Run ``target(pairs, queue)`` in a fresh interpreter, so its peak RSS is its own."""
    import queue as queues

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(pairs, results))
    process.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                result: dict[str, Any] = results.get(timeout=1.0)
                return result
            except queues.Empty:
                if not process.is_alive():
                    raise RuntimeError(f"{target.__name__} exited with {process.exitcode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{target.__name__} took longer than {timeout_s:.0f} s") from None
    finally:
        process.join(60)
        if process.is_alive():
            process.terminate()


def _training_sizes() -> dict[int, tuple[int, int]]:
    """``CLICKPULSE_BENCH_RECS_SIZES`` (e.g. ``1M``; default every size) picks the training sizes: the 10M
    run alone takes about as long as the rest of ``make bench``."""
    wanted = os.environ.get("CLICKPULSE_BENCH_RECS_SIZES")
    if not wanted:
        return dict(SIZES)
    by_label = {f"{pairs // 1_000_000}M": pairs for pairs in SIZES}
    chosen = [by_label[label.strip().upper()] for label in wanted.split(",")]
    return {pairs: SIZES[pairs] for pairs in chosen}


def training_rows() -> list[dict[str, Any]]:
    rows = []
    for pairs, (users, videos) in _training_sizes().items():
        label = f"{pairs // 1_000_000}M"
        logger.info("training on %s interactions (%d users, %d videos)", label, users, videos)
        trained = _in_child(_train_child, pairs)
        bare = _in_child(_bare_als_child, pairs)
        met = "met" if trained["seconds"] < TRAIN_TARGET_S else "MISSED"
        timings = ", ".join(f"{k[:-2]} {v:.0f}s" for k, v in trained["timings"].items() if v >= 1)
        rows.append(
            row(
                f"recs training time, {label} interactions",
                trained["seconds"],
                bare["seconds"],
                "s",
                f"{users:,} users x {videos:,} videos; baseline = bare implicit ALS fit, same matrix and "
                f"parameters; chose {trained['chosen']} (NDCG@10 {trained['ndcg']:.3f} vs popularity "
                f"{trained['popularity_ndcg']:.3f}); {timings}"
                + (f"; target < {TRAIN_TARGET_S:.0f} s ({met})" if pairs >= 10_000_000 else ""),
            )
        )
        rows.append(
            row(
                f"recs training peak memory, {label} interactions",
                trained["peak_mb"],
                trained["loaded_mb"],
                "MB",
                "peak RSS of the training process; baseline = its RSS with the interactions loaded",
            )
        )
    return rows


def _synthetic_lists(users: int, videos: int, top_n: int, seed: int = 1) -> tuple[list[Any], list[Any]]:
    rng = np.random.default_rng(seed)
    catalog = np.array([f"v{i}" for i in range(videos)], dtype=object)
    picks = rng.integers(0, videos, (users, top_n))
    scores = np.round(np.sort(rng.random((users, top_n)))[:, ::-1] * 10, 5)
    user_lists = [
        (f"u{i}", list(zip(catalog[picks[i]].tolist(), scores[i].tolist(), strict=True)))
        for i in range(users)
    ]
    similar = [
        (str(catalog[v]), list(zip(catalog[picks[v, :20]].tolist(), scores[v, :20].tolist(), strict=True)))
        for v in range(videos)
    ]
    return user_lists, similar


def _benchmark_login(url: str) -> list[str]:
    """redis-benchmark's login for the user in ``url`` (it reads no REDISCLI_AUTH, so the password is an
    argument, visible in this machine's process list while it runs)."""
    parsed = urlparse(url)
    if parsed.password is None:
        return []
    return ["--user", unquote(parsed.username or "default"), "-a", unquote(parsed.password)]


def _redis_benchmark_seconds(
    settings: Settings, prefix: str, commands: int, payload_bytes: int, depth: int
) -> float:
    """redis-benchmark: ``commands`` SETs of ``payload_bytes`` with EX, pipelined ``depth`` deep, 1 client."""
    from clickpulse.stack.addresses import parse_redis_url

    host, port = parse_redis_url(settings.redis_url)
    payload = "x" * payload_bytes
    command = [
        "redis-benchmark", "-h", host, "-p", str(port), *_benchmark_login(settings.redis_url),
        "-c", "1", "-P", str(depth), "-n", str(commands),
        "-r", str(commands), "--csv", "SET", f"{prefix}:rb:__rand_int__", payload, "EX", "600",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    rps = float(out.stdout.strip().splitlines()[-1].split(",")[1].strip('"'))
    return commands / rps


def publish_rows(settings: Settings, prefix: str) -> list[dict[str, Any]]:
    from streaming.keyspace import Keyspace
    from streaming.recommendations.store import RecsStore, encode_list
    from streaming.redis_conn import connect

    client = connect(settings.redis_url)
    store = RecsStore(client, Keyspace(prefix=prefix, channel_prefix=prefix), ttl_s=3600)
    user_lists, similar = _synthetic_lists(PUBLISH_USERS, PUBLISH_VIDEOS, settings.recs_top_n)
    popular = user_lists[0][1]
    began = time.perf_counter()
    report = store.publish("bench-1", user_lists, similar, popular)
    seconds = time.perf_counter() - began
    writes = report.users + report.videos + 1
    sizes = [len(encode_list("bench-1", items)) for _, items in user_lists[:1000]]
    payload = int(np.mean(sizes))
    baseline = _redis_benchmark_seconds(settings, prefix, writes, payload, store.chunk)
    client.close()
    per_100k = seconds * 100_000 / PUBLISH_USERS
    return [
        row(
            "recs publish time per 100K users",
            per_100k,
            baseline * 100_000 / PUBLISH_USERS,
            "s",
            f"{report.users:,} user lists of {settings.recs_top_n} + {report.videos:,} similar lists "
            f"({payload} B JSON each), pipelines of {store.chunk}, then the pointer switch; baseline = "
            f"redis-benchmark, {writes:,} SET EX of {payload} B, same pipeline depth, 1 client",
        )
    ]


def api_rows(settings: Settings, prefix: str) -> list[dict[str, Any]]:
    """Saturation and half-saturation latency of the blended endpoint on the users published by
    ``publish_rows`` (plus recent clicks and trending, as the consumer keeps them) against /bench/constant."""
    from streaming.keyspace import Keyspace
    from streaming.redis_conn import connect

    client = connect(settings.redis_url)
    ks = Keyspace(prefix=prefix, channel_prefix=prefix)
    rng = np.random.default_rng(2)
    pipe = client.pipeline(transaction=False)
    for i in range(5000):
        key = ks.user_recent(f"u{i}")
        pipe.rpush(key, *[f"v{v}" for v in rng.integers(0, PUBLISH_VIDEOS, 8)])
        pipe.expire(key, 3600)
    pipe.zadd(ks.trending(), {f"v{v}": float(PUBLISH_VIDEOS - v) for v in range(200)})
    pipe.execute()
    client.close()
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "CLICKPULSE_REDIS_PREFIX": prefix,
        "CLICKPULSE_LIVE_CHANNEL_PREFIX": prefix,
        "CLICKPULSE_READ_KEYS": READ_KEY,
        "CLICKPULSE_API_BENCH_ROUTES": "true",
        "CLICKPULSE_REDIS_ACL": "1" if settings.redis_acl else "0",
    }
    # 4 in 5 requests for users with a list (half of them with recent clicks), 1 in 5 cold start
    paths = [
        f"/v1/recommendations/u{int(u)}?k=10" if u >= 0 else f"/v1/recommendations/new{i}?k=10"
        for i, u in enumerate(np.where(rng.random(4000) < 0.8, rng.integers(0, 10_000, 4000), -1))
    ]
    port = free_port()
    process = start_api(env, port)
    try:
        measured = compare_with_constant(process, port, paths, READ_KEY)
    finally:
        stop_api(process)
    setup = (
        "1 uvicorn worker, k=10, 4,000 requests in turn: 4 in 5 for users with a published list (half "
        "of them with recent clicks), 1 in 5 cold start"
    )
    return comparison_rows("recommendations", measured, setup)


def run() -> list[dict[str, Any]]:
    """Publishing and the API on a redis-server of the benchmark's own (other work on the shared one,
    such as another consumer's multi-millisecond Lua batches, would queue ahead of the reads being timed),
    then the training sizes."""
    from bench.consumer_bench import on_private_redis, private_redis

    prefix = f"bench-recs-{uuid.uuid4().hex[:8]}"
    rows: list[dict[str, Any]] = []
    with private_redis() as url:
        settings = on_private_redis(get_settings(), url)
        rows.extend(publish_rows(settings, prefix))
        rows.extend(api_rows(settings, prefix))
    rows.extend(training_rows())
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for result in run():
        print(result)
