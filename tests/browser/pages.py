"""Chromium as the browser tests start it, and pages signed in to the live server."""

import shutil

from playwright.sync_api import Browser, Page

from tests.factories import user_with_role
from webapp.accounts.roles import Role

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags that keep chromium from reaching for the network these machines do not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-test-password"
VIEWPORT = {"width": 1280, "height": 800}


def sign_in(browser: Browser, live_server, username: str, timezone_id: str | None = None) -> Page:
    """A new page signed in as `username`, in a browser whose clock is in `timezone_id` (the machine's if None)."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True, timezone_id=timezone_id)
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def signed_in_page(browser: Browser, live_server, username: str, role: Role, timezone_id: str | None = None) -> Page:
    user = user_with_role(username, role)
    user.set_password(PASSWORD)
    user.save()
    return sign_in(browser, live_server, username, timezone_id)
