"""Dimension CSVs → raw tables, and rows → Redis hash fields."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from assets.warehouse.dimensions import hash_fields, read_dimension_csv
from assets.warehouse.tables import USER_PROFILES, VIDEO_CATALOG


def test_catalog_csv_keeps_contract_columns_with_types(tmp_path: Path) -> None:
    path = tmp_path / "video_catalog.csv"
    path.write_text(
        "video_id,title,series,episode,genre,duration_s,release_date\n"
        'v0001,"The Silent Harbor",,,drama,5400,2024-01-02\n'
        "v0002,Lost Tide: Episode 1,Lost Tide,1,comedy,1500,2023-05-06\n"
    )
    table = read_dimension_csv(str(path), VIDEO_CATALOG)
    assert table.schema == VIDEO_CATALOG.arrow_schema
    rows = table.to_pylist()
    assert rows[0] == {
        "video_id": "v0001",
        "title": "The Silent Harbor",
        "series": "",
        "genre": "drama",
        "duration_s": 5400,
        "release_date": date(2024, 1, 2),
    }
    assert rows[1]["series"] == "Lost Tide"


def test_user_csv_and_hash_fields(tmp_path: Path) -> None:
    path = tmp_path / "user_profiles.csv"
    path.write_text("user_id,country,subscription_tier,signup_date,language\nu1,US,free,2022-03-04,en\n")
    table = read_dimension_csv(str(path), USER_PROFILES)
    assert list(hash_fields(table, "user_id")) == [
        ("u1", {"country": "US", "subscription_tier": "free", "signup_date": "2022-03-04", "language": "en"})
    ]
