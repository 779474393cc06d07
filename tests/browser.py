"""Playwright driving Debian's Chromium, for the tests that look at the site in a browser
(never a downloaded browser; nothing may leave file://)."""

from __future__ import annotations

import contextlib
import shutil

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if shutil.which("chromium") is None:
        return "chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; it uses the system chromium)"
    return None


@contextlib.contextmanager
def chromium():
    """The system Chromium, headless, closed afterwards."""
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
