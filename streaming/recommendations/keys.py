"""Recommendation key families that ``streaming/keyspace.py`` does not define (yet).

``Keyspace`` already names the per-user lists (``user_recommendations``), the pointer
(``recs_current``), the published versions (``recs_versions``) and the fallback list
(``recs_popular``). Publishing and serving need three more, built the same way from the same tagged
bases so they sit in the right Cluster slot:

- ``{recs}:previous``: STRING, no TTL, the version a rollback returns to; in the ``{recs}`` slot with
  the pointer, so the switch sets both in one script.
- ``{recs}:meta:<version>``: HASH, version TTL, status (writing / complete), counts, metrics; the
  switch refuses a version whose meta is not ``complete``.
- ``{video:ID}:similar:<version>``: STRING (JSON), version TTL, the video's nearest neighbours.
"""

from __future__ import annotations

from typing import Final

from streaming.keyspace import Keyspace

SIMILAR_SUFFIX: Final = ":similar:"
PREVIOUS_SUFFIX: Final = ":previous"
META_SUFFIX: Final = ":meta:"


def recs_previous(keyspace: Keyspace) -> str:
    return keyspace.recs_base() + PREVIOUS_SUFFIX


def recs_meta(keyspace: Keyspace, version: str) -> str:
    return f"{keyspace.recs_base()}{META_SUFFIX}{version}"


def video_similar(keyspace: Keyspace, video_id: str, version: str) -> str:
    return f"{keyspace.video(video_id)}{SIMILAR_SUFFIX}{version}"


def check_version(version: str) -> str:
    """Versions go into key names: no hash-tag braces, separators or spaces."""
    if not version or any(c in version for c in "{}: \t\n*?[]"):
        raise ValueError(f"not a usable model version: {version!r}")
    return version
