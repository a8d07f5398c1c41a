"""Browser tests: the machine's Chromium, driven by Playwright, on a real `serve --demo` process.

- Chromium is Debian's (`apt-get install -y chromium`), at `/usr/bin/chromium` or where
  `AUDIENCE_SYNC_CHROMIUM` says. Playwright never downloads a browser here (no
  `playwright install`). Missing, the tests skip with the reason; under CI=true they fail.
- `demo_server` (one for the browser tests) is `audience-sync serve --demo` on a free port with
  its own SQLite database and var dir; `page` is a tab signed in with its demo key, 1280×800.
- Playwright's sync API marks its event loop as running in this thread while it is started, so
  it lives for one test module only: tests after it (pytest-asyncio's, `asyncio.run`) need the
  thread free of loops.
- `assert_accessible(page)` runs axe-core in the page at both widths; `screenshot(page, name)`
  saves to docs/screenshots/ when AUDIENCE_SYNC_SCREENSHOTS=1 (README's images), else to a tmp dir.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Response,
    ViewportSize,
    expect,
    sync_playwright,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling Google's services (updates,
# sync, safe browsing, QUIC probes): on a machine with no way out that is a stream of failures.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SERIOUS = ("serious", "critical")


def find_chromium() -> str | None:
    """`AUDIENCE_SYNC_CHROMIUM`, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    chosen = os.environ.get("AUDIENCE_SYNC_CHROMIUM")
    candidates = [chosen] if chosen else [DEFAULT_CHROMIUM, shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        where = os.environ.get("AUDIENCE_SYNC_CHROMIUM") or DEFAULT_CHROMIUM
        reason = f"no Chromium at {where}: install it: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
        pytest.skip(reason)
    return found


# -- the server ------------------------------------------------------------------------------


@dataclass
class DemoServer:
    """A running `audience-sync serve --demo`: its URL, the demo tenant's key, its log."""

    url: str
    key: str
    log: Path
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        """Run an `audience-sync` command on the server's database; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "audience_sync.cli", *args],
            env=self.env,
            cwd=self.log.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="package")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`serve --demo` as a user starts it (see tests/e2e/test_serve_demo.py), one for all the
    browser tests (the package), stopped with Ctrl-C (SIGINT) after them, not at the end of the
    whole session: the rest of the suite does not share the machine with it."""
    folder = tmp_path_factory.mktemp("serve-demo")
    port = free_port()
    env = {
        **os.environ,
        "AUDIENCE_SYNC_DATABASE_URL": f"sqlite:///{folder}/demo.db",
        "AUDIENCE_SYNC_VAR_DIR": str(folder / "var"),
        # test_alerts.py sends a test alert to a receiver on 127.0.0.1 (refused by default).
        "AUDIENCE_SYNC_ALERT_ALLOW_PRIVATE_WEBHOOKS": "true",
    }
    log = folder / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "audience_sync.cli", "serve", "--demo", "--port", str(port)],
            env=env,
            cwd=folder,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while (key := re.search(r"Sign in with this key: (as_\S+)", log.read_text())) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve --demo did not start; its log:\n{log.read_text()}")
            time.sleep(0.2)
        yield DemoServer(f"http://127.0.0.1:{port}", key.group(1), log, env)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed browser test shows the end of the server's log beside its own output."""
    report = yield
    server = getattr(item, "funcargs", {}).get("demo_server")
    if report.failed and isinstance(server, DemoServer):
        tail = "\n".join(server.log.read_text(errors="replace").splitlines()[-60:])
        report.sections.append(("serve --demo log (last 60 lines)", tail))
    return report


# -- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium: str) -> Iterator[Browser]:
    # launch() starts Chromium with a fresh temporary profile (user-data dir) and deletes it
    # at close: nothing is shared between runs.
    launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, demo_server: DemoServer) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies), 1280×800, the server as base URL. The page's
    Content-Security-Policy is enforced (no bypass_csp): a script it blocks fails the test, as
    does any answer of the server with a 5xx status."""
    opened = browser.new_context(base_url=demo_server.url, viewport=DESKTOP)
    opened.set_default_timeout(10_000)  # clicks, fills (the server is local); expect() waits 5 s
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 500:
            problems.append(f"{response.status} from {response.url}")

    opened.on("console", on_console)
    opened.on("response", on_response)
    yield opened
    opened.close()
    assert not problems, f"in the browser: {problems}"


@pytest.fixture
def anonymous_page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def page(anonymous_page: Page, demo_server: DemoServer) -> Page:
    """A tab signed in with the demo tenant's key, on the Audiences page."""
    sign_in(anonymous_page, demo_server.key)
    expect(anonymous_page).to_have_url(re.compile(r"/audiences$"))
    return anonymous_page


def visit(page: Page, url: str) -> None:
    """Go to `url`, which must answer 200 (a missing page fails at once, not by timeout)."""
    response = page.goto(url)
    assert response is not None, url
    assert response.status == 200, f"{url} answered {response.status}"


def sign_in(page: Page, key: str) -> None:
    page.goto("/login")
    page.get_by_label("API key").fill(key)
    page.get_by_test_id("sign-in").click()


# -- widths, accessibility, screenshots ------------------------------------------------------


def at_phone_width(page: Page) -> None:
    """Show the page as a phone does (390×844); `at_desktop_width` goes back."""
    page.set_viewport_size(PHONE)


def at_desktop_width(page: Page) -> None:
    page.set_viewport_size(DESKTOP)


def assert_accessible(page: Page, widths: tuple[ViewportSize, ...] = (DESKTOP, PHONE)) -> None:
    """axe-core (bundled with axe-playwright-python) run in the page at each width: fails
    listing every violation of impact serious or critical, with the nodes it found it on.

    axe is injected with `page.evaluate`, which runs through the DevTools protocol, outside the
    page's Content-Security-Policy (`script-src 'self'`): an injected <script> tag
    (`add_script_tag`) is blocked by it, and `bypass_csp=True` would switch the CSP off for the
    whole context, hiding the scripts it blocks from the tests. So the CSP stays on.
    """
    before = page.viewport_size
    found: list[str] = []
    try:
        for size in widths:
            page.set_viewport_size(size)
            found += [f"at {size['width']} px: {line}" for line in axe_violations(page)]
    finally:
        if before is not None:
            page.set_viewport_size(before)
    assert not found, f"axe-core on {page.url}:\n" + "\n".join(found)


def axe_violations(page: Page) -> list[str]:
    """Serious and critical axe-core violations on the page as it is, one line each."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']]}"
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Page, str], Path]:
    """`screenshot(page, name)`: the whole page as `<name>.png` — in docs/screenshots/ with
    AUDIENCE_SYNC_SCREENSHOTS=1 (the README's images), else in pytest's tmp dir."""
    if os.environ.get("AUDIENCE_SYNC_SCREENSHOTS") == "1":
        folder = SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("screenshots")

    def take(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
        return path

    return take
