"""The realtime consumer group: clicks.raw → Redis counters, profiles, live Pub/Sub, clicks.enriched."""

from streaming.consumer.app import RealtimeConsumer, RunStats
from streaming.consumer.live import UserClickHook, UserClickPublisher, UserClicks

__all__ = ["RealtimeConsumer", "RunStats", "UserClickHook", "UserClickPublisher", "UserClicks"]
