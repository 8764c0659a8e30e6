"""The dbt project as dagster-dbt sees it: one cached DbtProject with a manifest that is never stale.

``dagster dev`` re-parses on every load (``prepare_if_dev``). Other entry points (``dagster asset
materialize``, a run worker, tests) parse only when ``target/manifest.json`` is missing or older than a
file of the project, so a fresh clone works and an edited model is never run from an old manifest.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Final

from dagster_dbt import DbtProject

from clickpulse.settings import PROJECT_ROOT, get_settings

logger = logging.getLogger(__name__)

DBT_PROJECT_DIR: Final = PROJECT_ROOT / "dbt_project"
_SOURCES: Final = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
_FILES: Final = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")


def dbt_target(env: str) -> str:
    """The profiles.yml target of an environment."""
    return {"local": "duckdb", "prod": "bigquery"}[env]


def newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _FILES:
        path = project_dir / name
        if path.exists():
            newest = max(newest, path.stat().st_mtime)
    for folder in _SOURCES:
        for path in (project_dir / folder).rglob("*"):
            if path.is_file():
                newest = max(newest, path.stat().st_mtime)
    return newest


def manifest_is_stale(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return not manifest.exists() or manifest.stat().st_mtime < newest_source_mtime(project.project_dir)


@cache
def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, target=dbt_target(get_settings().env))
    project.prepare_if_dev()
    if manifest_is_stale(project):
        logger.info("parsing the dbt project into %s", project.manifest_path)
        project.preparer.prepare(project)
    return project
