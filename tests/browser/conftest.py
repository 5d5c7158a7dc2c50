"""Browser tests: find Chromium, say clearly when the tests cannot run, and start server and browser.

The tests that use ``browser_page`` drive Debian's Chromium (``/usr/bin/chromium``,
or the path in ``STAYY_CHROMIUM``) through Playwright. Without it they are
deselected at collection (never skipped) and the session ends with one line
saying why; with ``STAYY_REQUIRE_BROWSER=1`` (set by ``.ci/run``) the session
fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import connections

from tests.observability.support import Gunicorn, child_env, gunicorn
from tests.support import PROJECT_DIR, child_database_url

T = TypeVar("T")

CHROMIUM_ENV = "STAYY_CHROMIUM"
REQUIRE_ENV = "STAYY_REQUIRE_BROWSER"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "browser"
HERE = Path(__file__).resolve().parent

_NOT_RUN = pytest.StashKey[str]()


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM


def chromium_missing() -> str | None:
    """Why Chromium cannot be used here, or ``None`` if it can."""
    path = chromium_path()
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        return f"no Chromium at {path} (apt-get install chromium, or set {CHROMIUM_ENV})"
    return None


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def needs_browser(item: pytest.Item) -> bool:
    return "browser_page" in getattr(item, "fixturenames", ())


# First, before -m/-k: the note is then also the last line of the SQLite pass, which ends `make test`.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if needs_browser(item)]
    reason = chromium_missing()
    if not ours or reason is None:
        return
    config.hook.pytest_deselected(items=ours)
    items[:] = [item for item in items if not needs_browser(item)]
    config.stash[_NOT_RUN] = f"the browser tests did not run ({len(ours)} deselected): {reason}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _NOT_RUN in session.config.stash and browser_required():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _NOT_RUN not in config.stash:
        return
    if browser_required():
        terminalreporter.write_line(
            f"FAILED: {config.stash[_NOT_RUN]}; {REQUIRE_ENV}=1 requires them", red=True, bold=True
        )
    else:
        terminalreporter.write_line(f"NOTE: {config.stash[_NOT_RUN]}", yellow=True, bold=True)


def in_thread(function: Callable[[], T]) -> T:
    """Run ORM code beside Playwright: its sync API keeps an event loop running in this thread,
    where Django refuses database calls."""

    def call() -> T:
        try:
            return function()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def browser_server_env(**extra: str) -> dict[str, str]:
    """The environment of the browser tests' gunicorn: jobs on, this run's database, the test jobs."""
    return child_env(
        DJANGO_SETTINGS_MODULE="tests.browser.settings",
        DATABASE_URL=child_database_url(),
        JOB_ENABLE="1",
        JOB_NAME=f"browser-{uuid.uuid4().hex[:8]}",
        JOB_LEASE_TTL="5",
        JOB_SHUTDOWN_GRACE="3",
        GUNICORN_WORKERS="1",
        **extra,
    )


@pytest.fixture
def job_server(transactional_db: None, tmp_path: Path) -> Iterator[Gunicorn]:
    """A real gunicorn with the embedded job server on, on this run's database, with the test jobs."""
    with gunicorn(env=browser_server_env(), log_path=tmp_path / "gunicorn.log") as server:
        yield server


@pytest.fixture
def admin_login(transactional_db: None) -> tuple[str, str]:
    from django.contrib.auth import get_user_model

    username, password = "ops-admin", "browser-pass-123"
    get_user_model().objects.create_superuser(username=username, email="ops@example.com", password=password)
    return username, password


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A page in headless Chromium; the browser closes when the test ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(15_000)
            yield context.new_page()
        finally:
            browser.close()
