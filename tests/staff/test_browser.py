"""The desk in a real browser: Debian's Chromium driven by Playwright against a live server.

Skipped when /usr/bin/chromium is missing, unless REQUIRE_BROWSER=1 (as .ci/run sets).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from bot.app import Services, create_app
from tests.conftest import sqlite_url
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import FULL_REPORT
from tests.staff.desk_support import PASSWORD, email_of, make_complaint, make_staff
from tests.webhooks.channel_support import channel_settings, delivery, live_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHAT = 5550077
XSS = "<script>window.__pwned=1</script>"

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the module (skipped, or failed under REQUIRE_BROWSER=1, without)."""
    missing = None
    if sync_playwright is None:
        missing = "the playwright package is not installed"
    elif not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if missing:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    """The local fake Telegram Bot API."""
    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def live(sqlite_template: Path, tmp_path: Path, tg: FakeTelegramAPI) -> Iterator[tuple[Flask, str]]:
    """The real app on a threaded werkzeug server, on a temporary SQLite database."""
    settings = channel_settings(
        sqlite_url(sqlite_template, tmp_path),
        tmp_path,
        tg=tg,
        public_base_url="http://127.0.0.1:5000",  # not https: cookies without Secure
    )
    app = create_app(settings)
    try:
        with live_server(app) as base:
            yield app, base
    finally:
        app.extensions["raporto"].engine.dispose()


@pytest.fixture
def page(browser: Browser, live: tuple[Flask, str]) -> Iterator[Page]:
    """A fresh browser page with the live server as its base URL."""
    context = browser.new_context(base_url=live[1], accept_downloads=True)
    context.set_default_timeout(5_000)
    opened = context.new_page()
    yield opened
    context.close()


def _sign_in(page: Page, role: str) -> None:
    page.goto("/desk/login?lang=en")
    page.fill("#email", email_of(role))
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]:has-text('Sign in')")
    expect(page.locator("nav a", has_text="Inbox")).to_be_visible()


def test_triage_day_in_the_browser(
    page: Page, live: tuple[Flask, str], tg: FakeTelegramAPI
) -> None:
    app, _base = live
    services: Services = app.extensions["raporto"]
    make_staff(services, "triage")
    make_complaint(services, priority="P3", description="A calm report.")
    urgent = make_complaint(
        services,
        channel="telegram",
        phone=str(CHAT),
        language="rom",
        priority="P1",
        urgent=True,
        description=f"The police came at night. {XSS}",
    )
    _sign_in(page, "triage")

    # The most urgent new report heads the inbox.
    page.goto("/desk/?status=new")
    page.locator("a", has_text="RAE-").first.click()
    expect(page.locator("h1")).to_contain_text(urgent)

    # The description renders as text, never as a script.
    expect(page.get_by_text(XSS)).to_be_visible()
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # Triage: change the status.
    page.select_option("#status", "in_review")
    page.click("button:has-text('Change the status')")
    expect(page.locator("main > p strong").first).to_have_text("In review")

    # A follow-up in Romani reaches the Telegram chat through the real delivery worker.
    page.select_option("#template", "received")
    page.click("form[action$='/message'] button[type=submit]")
    expected = services.catalogs.gettext(
        "rom", "We have received your report %(reference)s and are looking at it."
    ) % {"reference": urgent}
    with delivery(services) as worker:
        worker.drain()
    sent = [m for m in tg.sent_messages() if str(m["chat_id"]) == str(CHAT)]
    assert [m["text"] for m in sent] == [expected]

    # The CSV export downloads.
    page.goto("/desk/")
    with page.expect_download() as download_info:
        page.click("a:has-text('Export as CSV')")
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    content = Path(download.path()).read_text(encoding="utf-8-sig")
    assert urgent in content


def test_simulator_completes_a_report_in_the_browser(page: Page, live: tuple[Flask, str]) -> None:
    app, _base = live
    make_staff(app.extensions["raporto"], "admin")
    _sign_in(page, "admin")
    page.goto("/desk/simulator?channel=sms")
    expect(page.locator(".sim-empty")).to_be_visible()
    for text in [*FULL_REPORT, "1"]:
        page.fill("#sim-text", text)
        page.click(".sim-send button[type=submit]")
    last = page.locator(".sim-bot").last
    expect(last).to_contain_text("RAE-")
    page.click("button:has-text('Start over')")
    expect(page.locator(".sim-empty")).to_be_visible()
