"""Helpers of the browser tests: a headless Chromium driven through chromedriver and selenium.

Without them the tests are skipped, and the reason says what to install; with
``GEOGUESS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("GEOGUESS_REQUIRE_BROWSER") == "1"
INSTALL = (
    "on Debian or Ubuntu install both from the distribution with `sudo apt-get install chromium chromium-driver` "
    "(the driver must match the browser's version); selenium comes with `pip install -e '.[dev]'`"
)


def missing() -> list[str]:
    """What the browser tests lack: ``chromium``, ``chromedriver``, the selenium package; empty when nothing."""
    lacking = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        lacking.append("the selenium package")
    return lacking


def skip_reason(lacking: list[str]) -> str:
    """The skip (or failure) message for a browser test when ``lacking`` is missing."""
    return f"browser test skipped: {' and '.join(lacking)} not found; {INSTALL}"


def browser_or_skip() -> None:
    """Skip the calling test when the browser is missing (fail instead when ``GEOGUESS_REQUIRE_BROWSER=1``)."""
    lacking = missing()
    if lacking:
        if REQUIRED:
            pytest.fail(skip_reason(lacking))
        pytest.skip(skip_reason(lacking))


def chromium(profile: Path, width: int = 1400, height: int = 1000):
    """A headless Chromium with a ``width`` x ``height`` window and its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def wait_for(driver, condition, timeout_s: float = 60):
    """Wait until ``condition(driver)`` is true (selenium's WebDriverWait, polled every 0.1 s)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition)


@contextlib.contextmanager
def chromium_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A :func:`chromium` with a fresh profile folder, quit when the block ends (for module fixtures)."""
    driver = chromium(tmp_path_factory.mktemp("chromium_profile"))
    try:
        yield driver
    finally:
        driver.quit()
