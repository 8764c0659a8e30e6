"""Sub-commands that are listed by name and short help, and imported only when they run.

`clickpulse --help` must start fast, so the modules behind heavy commands (Kafka clients, FastAPI,
Dagster, Great Expectations) are not imported to list them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer import _click as click
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazySpec:
    module: str
    attr: str
    help: str


class LazyCommand(TyperCommand):
    """A placeholder that knows its help line; parsing and running go to the real command."""

    def __init__(self, name: str, spec: LazySpec) -> None:
        super().__init__(name, help=spec.help, short_help=spec.help)
        self.spec = spec
        self._real: click.Command | None = None

    def load(self) -> click.Command:
        if self._real is None:
            target = getattr(importlib.import_module(self.spec.module), self.spec.attr)
            if isinstance(target, typer.Typer):
                self._real = typer.main.get_command(target)
            else:
                holder = typer.Typer(add_completion=False)
                holder.command(self.name, help=self.spec.help)(target)
                self._real = typer.main.get_command(holder)
            self._real.name = self.name
        return self._real

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    """A typer group whose extra commands come from ``lazy_commands`` (name → LazySpec)."""

    lazy_commands: dict[str, LazySpec] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return LazyCommand(cmd_name, self.lazy_commands[cmd_name])
        return super().get_command(ctx, cmd_name)
