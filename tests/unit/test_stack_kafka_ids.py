"""The local broker's cluster id: kafka-storage reads an id starting with "-" as an option."""

from __future__ import annotations

from pathlib import Path

from clickpulse.stack.kafka import _cluster_id


def test_cluster_ids_never_start_with_a_dash_and_are_kept(tmp_path: Path) -> None:
    # 1 in 64 random ids start with "-": 3,000 draws would meet one about 47 times without the guard.
    ids = [_cluster_id(tmp_path, f"node{i}") for i in range(3000)]
    assert not [cid for cid in ids if cid.startswith("-")]
    assert len(set(ids)) == len(ids) and all(len(cid) == 22 for cid in ids)
    assert _cluster_id(tmp_path, "node7") == ids[7]  # read back, not drawn again
