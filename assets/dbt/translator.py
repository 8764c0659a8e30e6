"""How dbt resources become Dagster assets: sources on raw tables map to the assets that write them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from assets.warehouse.tables import CLICK_EVENTS, USER_PROFILES, VIDEO_CATALOG

logger = logging.getLogger(__name__)

# raw table → the asset that writes it; a dbt source on that table is that asset.
RAW_TABLE_ASSETS: Final[dict[str, dg.AssetKey]] = {
    CLICK_EVENTS.name: dg.AssetKey("raw_click_events"),
    VIDEO_CATALOG.name: dg.AssetKey("video_catalog"),
    USER_PROFILES.name: dg.AssetKey("user_profiles"),
}


class ClickPulseDbtTranslator(DagsterDbtTranslator):
    """Models keep their name as key and are grouped by layer (staging, intermediate, marts)."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_code_references=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            mapped = RAW_TABLE_ASSETS.get(dbt_resource_props["name"])
            if mapped is not None:
                return mapped
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return str(fqn[1])
        return super().get_group_name(dbt_resource_props)
