"""The dimension domain's Definitions."""

from __future__ import annotations

import dagster as dg

from assets.warehouse.assets import user_profiles, video_catalog

defs = dg.Definitions(assets=[video_catalog, user_profiles])
