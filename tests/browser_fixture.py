"""A real headless browser for the tests: Debian's Chromium and its driver, through Selenium.

When chromium or chromium-driver is missing it is installed with apt (root on
Debian, like tests/slurm_fixture.py installs SLURM); elsewhere the test is
skipped with the reason, and under ``CI`` it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from slurm_fixture import root_on_debian_reason, skip_or_fail

PACKAGES = ("chromium", "chromium-driver")


def _binaries() -> tuple[str | None, str | None]:
    return shutil.which("chromium"), shutil.which("chromedriver")


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installed from apt when missing."""
    browser, driver = _binaries()
    if browser and driver:
        return browser, driver
    reason = root_on_debian_reason()
    if reason:
        skip_or_fail(f"no chromium/chromedriver: {reason}")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                               env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        except subprocess.TimeoutExpired:
            skip_or_fail(f"'{' '.join(cmd)}' did not finish in 900 s")
        if r.returncode != 0:
            skip_or_fail(f"'{' '.join(cmd)}' failed (exit {r.returncode}): {r.stderr[-2000:]}")
    browser, driver = _binaries()
    if not (browser and driver):
        skip_or_fail(f"apt installed {PACKAGES} but chromium or chromedriver is still not on PATH")
    return browser, driver  # type: ignore[return-value]


@pytest.fixture(scope="module")
def chrome() -> Iterator:
    """A headless Chromium driven by Selenium (downloads go to ``chrome.download_dir``)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install -e '.[test]')")
    browser, driver = ensure_chromium()
    downloads = tempfile.mkdtemp(prefix="nudask-downloads-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                              "download.prompt_for_download": False})  # fmt: skip
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
    except Exception as err:  # the browser would not start: say why
        skip_or_fail(f"headless chromium did not start: {type(err).__name__}: {err}")
    session.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    session.download_dir = downloads
    yield session
    session.quit()
    shutil.rmtree(downloads, ignore_errors=True)
