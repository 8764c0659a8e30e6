"""The ACL rules of every ClickPulse Redis user, derived from the keyspace (``streaming/keyspace.py``).

Write access is granted per key family (``%RW~``), reads where a role needs them (``%R~``), channels
per role (``&``), commands by category minus what no component uses. Redis checks the keys a Lua
script touches against the caller's patterns too, so the consumer's batch scripts stay inside its
families. See the README section "Security" for the table and what each limit protects.
"""

from __future__ import annotations

from typing import Final

from streaming.keyspace import SUFFIXES, Keyspace, glob_escape
from streaming.redis_roles import Role

INGEST_CHANNELS: Final = "ingest:*"


def _glob_escape(text: str) -> str:
    """A literal for an ACL pattern; the ACL file separates rules by spaces."""
    if any(c.isspace() for c in text):
        raise ValueError(f"a Redis ACL pattern cannot contain whitespace: {text!r}")
    return glob_escape(text)


# Commands every role's client needs: connect, PING, INFO (``connect`` probes INFO cluster), and the
# Cluster topology reads of a ``RedisCluster`` client. ``-@dangerous`` drops CLIENT KILL and friends.
_CLIENT: Final = (
    "+@connection",
    "-@dangerous",
    "+info",
    "+cluster|slots",
    "+cluster|shards",
    "+cluster|nodes",
    "+cluster|info",
    "+cluster|myid",
    "+cluster|keyslot",
)
# Key names are not filtered by ACL for keyless commands: no role but admin may list keys.
_NO_KEY_LISTING: Final = ("-scan", "-randomkey", "-keys")
_SCRIPTS: Final = ("+eval", "+evalsha", "+script|load", "+script|exists")
_SUBSCRIBE: Final = ("+subscribe", "+unsubscribe", "+psubscribe", "+punsubscribe", "+ping")


def _suffix(name: str) -> str:
    return SUFFIXES[name]


def role_rules(keyspace: Keyspace, bridge_channel: str = "ingest:events") -> dict[Role, list[str]]:
    """ACL rules (after ``user <name> on <password>``) of every role, for the keyspace's prefix and
    channel namespace. Write access is by exact key family; reads are wider where a role needs them."""
    p = _glob_escape(keyspace.prefix)
    video, user = f"{p}:{{video:*}}", f"{p}:{{user:*}}"
    recs, glob = f"{p}:{{recs}}", f"{p}:{{global}}"
    live_channels = "&" + _glob_escape(keyspace.live_channel_start()) + "*"
    ingest_channels = ["&" + INGEST_CHANNELS]
    if not bridge_channel.startswith("ingest:"):
        ingest_channels.append("&" + _glob_escape(bridge_channel))

    recommendations = [
        f"{user}{_suffix('recs')}*",
        f"{video}:similar:*",
        f"{recs}:*",
    ]
    consumer_writes = [
        video,  # the Lua calls' declared KEYS are the tagged base keys
        *(f"{video}{_suffix(s)}" for s in ("totals", "uniq")),
        *(f"{video}{_suffix(s)}*" for s in ("seen", "minute", "hour", "uniq_hour", "uniq_day")),
        user,
        f"{user}{_suffix('profile')}",
        f"{user}{_suffix('recent')}",
        glob,
        f"{glob}:*",
        f"{p}:{{wm}}{_suffix('wm')}",
        f"{p}:{{wm-*}}{_suffix('wm')}",
    ]
    consumer_reads = [
        f"{user}{_suffix('attrs')}",
        f"{video}{_suffix('meta')}",
        *recommendations,
    ]
    publisher_writes = [
        *recommendations,
        f"{video}{_suffix('meta')}",
        f"{user}{_suffix('attrs')}",
    ]
    writer_commands = ["+@read", "+@write", *_CLIENT, *_NO_KEY_LISTING, *_SCRIPTS]
    return {
        Role.ADMIN: ["~*", "&*", "+@all"],
        Role.CONSUMER: [
            "resetkeys",
            *(f"%RW~{k}" for k in consumer_writes),
            *(f"%R~{k}" for k in consumer_reads),
            "resetchannels",
            live_channels,
            "-@all",
            *writer_commands,
            "+publish",
        ],
        Role.API: [
            # Read-only by command: no write command is granted, and Redis checks the commands a
            # script runs too. The key pattern is not %R~ only because EVALSHA declares its keys
            # read-write (the stats script sums buckets inside Redis).
            "resetkeys",
            f"~{p}:*",
            "resetchannels",
            live_channels,
            "-@all",
            "+@read",
            *_CLIENT,
            *_NO_KEY_LISTING,
            *_SCRIPTS,
            *_SUBSCRIBE,
        ],
        Role.PUBLISHER: [
            "resetkeys",
            *(f"%RW~{k}" for k in publisher_writes),
            f"%R~{p}:*",  # the reconciliation check reads the live counters
            "resetchannels",
            "-@all",
            *writer_commands,
        ],
        Role.BRIDGE: [
            "resetkeys",
            "resetchannels",
            *ingest_channels,
            "-@all",
            *_CLIENT,
            *_SUBSCRIBE,
        ],
        Role.INGEST: [
            "resetkeys",
            "resetchannels",
            *ingest_channels,
            "-@all",
            *_CLIENT,
            "+publish",
        ],
    }
