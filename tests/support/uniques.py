"""Checking HyperLogLog unique counts against the users a test knows were sent.

Redis's HLL reports the true count within about 2% for all but unlucky sets: two users landing in
the same one of its 16,384 registers lose one count (about 1% of sets of ~70 users lose two, which
exceeds the 2% bound at that size). Registers depend only on the set added, so a counter that added
exactly the true users reports what a fresh HLL of those users reports; that is the exact check used
when the 2% bound does not hold.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any


def close_enough(estimate: int, truth: int) -> bool:
    """HyperLogLog estimates: within 2% (at least 1, for small counts)."""
    return abs(estimate - truth) <= max(1, round(0.02 * truth))


def reference_estimate(client: Any, users: Iterable[str]) -> int:
    """What a HyperLogLog holding exactly ``users`` reports, built in a scratch key of the same Redis
    (plain calls: a Redis Cluster client refuses PFCOUNT in a pipeline)."""
    key = f"test:hll-reference:{uuid.uuid4().hex}"
    try:
        client.pfadd(key, *users)
        return int(client.pfcount(key))
    finally:
        client.delete(key)


def uniques_problem(client: Any, what: str, estimate: int, users: Collection[str]) -> str | None:
    """None when ``estimate`` is within 2% of the true count, or is what an HLL of exactly the true
    users gives (an HLL collision, not a counting error); else the mismatch, with both numbers."""
    if close_enough(estimate, len(users)):
        return None
    reference = reference_estimate(client, users)
    if estimate == reference:
        return None
    return f"{what} uniques {estimate} vs truth {len(users)} (HLL of the true set: {reference})"
