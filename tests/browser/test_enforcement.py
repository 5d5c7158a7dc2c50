"""Without Chromium the browser tests are deselected with one clear line, or fail the run when required."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import PROJECT_DIR


def run_pytest(**env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "STAYY_REQUIRE_BROWSER"
    }
    env.update(env_overrides, STAYY_CHROMIUM="/nonexistent/chromium")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--timeout=120",
            "tests/browser/test_dashboard.py",
            "tests/admin_dashboard/test_charts.py",
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_without_chromium_the_run_passes_and_ends_saying_the_browser_tests_did_not_run():
    result = run_pytest()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "browser tests did not run" in line]
    assert lines == [
        "NOTE: the browser tests did not run (2 deselected): no Chromium at /nonexistent/chromium "
        "(apt-get install chromium, or set STAYY_CHROMIUM)"
    ]
    summary = result.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "2 deselected" in summary and "skipped" not in summary


def test_with_stayy_require_browser_the_run_fails_without_chromium():
    result = run_pytest(STAYY_REQUIRE_BROWSER="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "FAILED: the browser tests did not run (2 deselected): no Chromium at /nonexistent/chromium "
        "(apt-get install chromium, or set STAYY_CHROMIUM); STAYY_REQUIRE_BROWSER=1 requires them"
    ) in result.stdout
    assert "skipped" not in result.stdout.strip().splitlines()[-1]
