"""Playwright driving Debian's Chromium, for the tests that look at the site in a browser
(never a downloaded browser; nothing may leave file://).

Where the browser is missing, its tests skip on a developer's machine but FAIL under CI
(the environment variable ``CI`` set, as `.ci/run` and CI services do): CI must not pass
without having run them. Tests mark themselves ``skipif(browser.reason() is not None, ...)``
(``reason()`` is None under CI) and open the browser with :func:`chromium`, which calls
:func:`require`.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def in_ci() -> bool:
    """Whether this is a CI run (``CI`` set to anything but empty, 0, false or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing() -> str | None:
    """What the browser tests lack here (chromium, playwright), or None."""
    if shutil.which("chromium") is None:
        return "chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; it uses the system chromium)"
    return None


def reason() -> str | None:
    """Why the browser tests may skip here, or None. Under CI a missing browser is no reason
    to skip: this is None there, so the tests run and :func:`chromium` fails them."""
    return None if in_ci() else missing()


def require() -> None:
    """Skip the calling test where the browser is missing, or fail it under CI."""
    why = missing()
    if why is None:
        return
    if in_ci():
        pytest.fail(f"CI={os.environ.get('CI')}: the browser tests must run in CI, but {why}", pytrace=False)
    pytest.skip(why)


@contextlib.contextmanager
def chromium():
    """The system Chromium, headless, closed afterwards (skips or fails first: :func:`require`)."""
    require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def offline(page, outside: list) -> None:
    """Let ``page`` load file:// URLs only; every other request is aborted and listed in ``outside``."""
    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()
    page.route("**/*", route)
