"""The Kafka export domain's Definitions."""

from __future__ import annotations

import dagster as dg

from assets.kafka_export.assets import raw_click_events
from assets.kafka_export.checks import great_expectations_suite, row_count_matches_kafka

defs = dg.Definitions(
    assets=[raw_click_events], asset_checks=[great_expectations_suite, row_count_matches_kafka]
)
