"""The README documents what the code reads: every environment variable and every CLI command."""

from __future__ import annotations

from clickpulse.cli import ClickPulseGroup, app
from clickpulse.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [f.alias for f in Settings.model_fields.values() if f.alias and f"`{f.alias}`" not in README]
    assert missing == []


def test_every_command_is_documented() -> None:
    import typer.main

    group = typer.main.get_command(app)
    names = set(ClickPulseGroup.lazy_commands) | set(getattr(group, "commands", {}))
    missing = [name for name in sorted(names) if f"clickpulse {name}" not in README]
    assert missing == []
