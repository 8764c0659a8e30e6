"""Just enough of dbt's Jinja context for sqlfluff's jinja templater to render our models.

sqlfluff's jinja templater (with ``apply_dbt_builtins``) supplies ``ref``, ``source``, ``config``,
``this`` and ``is_incremental`` (always true) but not ``adapter.dispatch``, real ``var`` values or
``modules``. Every top-level name here becomes a template global (sqlfluff ``library_path``), so
models render to the DuckDB SQL the ``default__`` macros produce, with the vars from
``dbt_project.yml``, without a database or a dbt parse. Lint-only: dbt itself never imports this.
"""

from __future__ import annotations

import datetime as _datetime
import re as _re
from pathlib import Path as _Path
from types import SimpleNamespace as _Namespace
from typing import Any as _Any

import jinja2 as _jinja2
import yaml as _yaml

_PROJECT_FILE = _Path(__file__).resolve().parent.parent / "dbt_project.yml"
_PROJECT_VARS: dict[str, _Any] = _yaml.safe_load(_PROJECT_FILE.read_text())["vars"]
_MISSING = object()


class _CompilerError(Exception):
    """Raised where dbt would raise a compilation error."""


class _Adapter:
    """``adapter.dispatch`` resolving to the ``default__`` implementation of a project macro."""

    @_jinja2.pass_context
    def dispatch(self, context: _jinja2.runtime.Context, macro_name: str, macro_namespace: str = "") -> _Any:
        return context[f"default__{macro_name}"]


def var(name: str, default: _Any = _MISSING) -> _Any:
    """The project's default for a var, like ``dbt compile`` without ``--vars``."""
    value = _PROJECT_VARS.get(name, default)
    if value is _MISSING:
        raise _CompilerError(f"Required var '{name}' not found in dbt_project.yml")
    return value


def _raise_compiler_error(message: str) -> None:
    raise _CompilerError(message)


adapter = _Adapter()
execute = True
target = _Namespace(type="duckdb", name="duckdb", schema="main", database="warehouse")
flags = _Namespace(INTROSPECT=True, FULL_REFRESH=False)
modules = _Namespace(datetime=_datetime, re=_re, pytz=_Namespace(utc=_datetime.UTC))
exceptions = _Namespace(raise_compiler_error=_raise_compiler_error)
