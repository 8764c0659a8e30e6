"""Headless Chromium for the browser tests, from the OS packages (test tools' own downloads fail here).

``ensure_chromium()`` returns the Chromium and chromedriver paths; on a fresh machine without them it
installs the Debian packages ``chromium`` and ``chromium-driver`` with apt-get (running ``apt-get update``
first) when the process runs as root, and otherwise raises ``BrowserUnavailableError`` saying what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

PACKAGES: Final = ("chromium", "chromium-driver")
BROWSER_NAMES: Final = ("chromium", "chromium-browser")
DRIVER_NAMES: Final = ("chromedriver",)
APT_TIMEOUT_S: Final = 900


class BrowserUnavailableError(RuntimeError):
    """Chromium or chromedriver is missing and could not be installed."""


def _find(names: tuple[str, ...], env_var: str) -> str | None:
    given = os.environ.get(env_var)
    if given and Path(given).is_file() and os.access(given, os.X_OK):
        return given
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if found:
            return found
    return None


def find_chromium() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) paths, each None when absent; ``CHROMIUM_BIN`` / ``CHROMEDRIVER_BIN`` win."""
    return _find(BROWSER_NAMES, "CHROMIUM_BIN"), _find(DRIVER_NAMES, "CHROMEDRIVER_BIN")


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
    ):
        logger.info("running %s", " ".join(command))
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise BrowserUnavailableError(
                f"`{' '.join(command)}` failed (exit {result.returncode}): " + " / ".join(tail)
            )


def ensure_chromium() -> tuple[str, str]:
    """The Chromium and chromedriver paths, installing the Debian packages when missing (as root)."""
    browser, driver = find_chromium()
    if browser and driver:
        return browser, driver
    missing = [p for p, path in zip(PACKAGES, (browser, driver), strict=True) if path is None]
    if shutil.which("apt-get") is None:
        raise BrowserUnavailableError(
            f"{' and '.join(missing)} not found and apt-get is not available: install Chromium and its "
            "chromedriver, or point CHROMIUM_BIN / CHROMEDRIVER_BIN at them"
        )
    if os.geteuid() != 0:
        raise BrowserUnavailableError(
            f"{' and '.join(missing)} not found: run `sudo apt-get install -y chromium chromium-driver` "
            "(or set CHROMIUM_BIN / CHROMEDRIVER_BIN)"
        )
    _apt_install()
    browser, driver = find_chromium()
    if not (browser and driver):
        raise BrowserUnavailableError("apt-get installed chromium and chromium-driver, but not on PATH")
    return browser, driver
