"""The warehouse erasure's SQL: BigQuery statements parse, carry the user id only as a parameter, and
refuse identifiers that are not plain names; the plan deletes rejected rows before the events."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from orchestration.erasure import (
    bigquery_delete_rejected_sql,
    bigquery_delete_sql,
    bigquery_erase_plan,
    bigquery_user_tables_sql,
    bq_table,
    erase_user_bigquery,
)

HOSTILE = "u'; drop table raw.click_events; --"


def parse(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)


def test_statements_parse_in_bigquery_dialect_with_the_user_as_a_parameter() -> None:
    plan = bigquery_erase_plan(
        "my-proj",
        "clickpulse_raw",
        {"clickpulse_raw": ["click_events", "user_profiles"], "clickpulse": ["dim_users"]},
    )
    assert [table for table, _ in plan] == [
        "clickpulse_raw.rejected_rows",
        "clickpulse_raw.click_events",
        "clickpulse_raw.user_profiles",
        "clickpulse.dim_users",
    ]
    for _, sql in plan:
        tree = parse(sql)
        assert isinstance(tree, exp.Delete)
        assert {p.name for p in tree.find_all(exp.Parameter)} == {"user_id"}
        strings = [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]
        assert set(strings) <= {"$.user_id"}, "only the JSON path is a literal"
    delete = parse(bigquery_delete_sql("my-proj", "clickpulse", "dim_users"))
    target = delete.this
    assert (target.catalog, target.db, target.name) == ("my-proj", "clickpulse", "dim_users")
    rejected = parse(bigquery_delete_rejected_sql("my-proj", "clickpulse_raw"))
    assert {t.name for t in rejected.find_all(exp.Table)} == {"rejected_rows", "click_events"}
    listing = parse(bigquery_user_tables_sql("my-proj", "clickpulse"))
    assert isinstance(listing, exp.Select) and not list(listing.find_all(exp.Parameter))


@pytest.mark.parametrize(
    ("project", "dataset", "table"),
    [
        ("my-proj", "clickpulse", "t` where true; --"),
        ("my-proj", "click pulse", "t"),
        ("My_Proj!", "clickpulse", "t"),
        ("my-proj", "clickpulse", ""),
    ],
)
def test_identifiers_that_are_not_plain_names_are_refused(project: str, dataset: str, table: str) -> None:
    with pytest.raises(ValueError):
        bq_table(project, dataset, table)


class FakeBigQuery:
    """Records each query and its parameters; answers the catalog queries with fixed tables."""

    def __init__(self, tables: dict[str, list[str]]) -> None:
        self.tables = tables
        self.calls: list[tuple[str, Any]] = []

    def query(self, sql: str, job_config: Any = None) -> Any:
        self.calls.append((sql, job_config))
        if "INFORMATION_SCHEMA" in sql:
            dataset = sql.split("`")[1].split(".")[1]
            return SimpleNamespace(result=lambda: [(t,) for t in self.tables[dataset]])
        return SimpleNamespace(result=lambda: None, num_dml_affected_rows=3)


def test_erase_runs_each_delete_with_the_id_as_a_string_parameter() -> None:
    client = FakeBigQuery({"raw": ["click_events", "user_profiles"], "marts": ["dim_users"]})
    results = erase_user_bigquery(client, "my-proj", "raw", ["raw", "marts"], HOSTILE)
    assert [(r.table, r.rows) for r in results] == [
        ("raw.rejected_rows", 3),
        ("raw.click_events", 3),
        ("raw.user_profiles", 3),
        ("marts.dim_users", 3),
    ]
    deletes = [(sql, config) for sql, config in client.calls if sql.startswith("delete")]
    assert len(deletes) == 4
    for sql, config in deletes:
        assert HOSTILE not in sql
        (param,) = config.query_parameters
        assert (param.name, param.type_, param.value) == ("user_id", "STRING", HOSTILE)
