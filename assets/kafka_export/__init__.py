"""Hourly export of clicks.enriched into the Parquet lake and the warehouse's raw.click_events."""
