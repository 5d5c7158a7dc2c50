"""A test-only app with two jobs for the browser tests, installed only by ``tests.browser.settings``.

The tests import this package, never its ``jobs`` module: importing that
would register the test jobs in the test process's own job registry.
"""

#: What ``testing.browser_fail`` raises.
FAILURE_MESSAGE = "upstream answered 503 three times (browser test failure)"
