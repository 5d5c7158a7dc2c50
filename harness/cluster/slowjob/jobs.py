"""``testing.slow``: sleeps, and writes each execution's start and end to a file.

The file (``STAYY_TEST_EXEC_LOG``) is evidence of execution that does not come
from the run table: the cluster tests compare it with the rows, so "one run
per tick" is proven by what the handler did, not only by the unique index.

* ``STAYY_TEST_SLOW_SECONDS``: how long a run sleeps (default 3).
* ``STAYY_TEST_SLOW_IGNORE_CANCEL=1``: sleep through cancellation (timeout,
  shutdown), like a handler that never calls ``ctx.check()``.
* ``STAYY_TEST_SLOW_STEP``: work in steps of this many seconds instead, each
  after a ``ctx.check()`` and logged as a ``step``, like a batch job.
"""

from __future__ import annotations

import json
import os
import time

from stayy.scheduling import JobContext, job


def _record(event: str, ctx: JobContext) -> None:
    path = os.environ.get("STAYY_TEST_EXEC_LOG")
    if not path:
        return
    line = json.dumps(
        {
            "event": event,
            "run_id": ctx.run_id,
            "scheduled_for": ctx.scheduled_for.isoformat(),
            "trigger": ctx.trigger,
            "pid": os.getpid(),
            "t": time.time(),
        }
    )
    # One write of a short line with O_APPEND: lines of several processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@job("testing.slow", every=1, timeout=30, misfire_grace=60)
def slow(ctx: JobContext) -> dict[str, float]:
    """Sleep ``STAYY_TEST_SLOW_SECONDS`` and log the execution (tests only)."""
    seconds = float(os.environ.get("STAYY_TEST_SLOW_SECONDS", "3"))
    stubborn = os.environ.get("STAYY_TEST_SLOW_IGNORE_CANCEL") == "1"
    step = float(os.environ.get("STAYY_TEST_SLOW_STEP", "0"))
    _record("start", ctx)
    try:
        if step:
            for _ in range(int(seconds / step)):
                ctx.check()
                _record("step", ctx)
                ctx.sleep(step)
        elif stubborn:
            time.sleep(seconds)
        else:
            ctx.sleep(seconds)
    finally:
        _record("end", ctx)
    if not stubborn:
        ctx.check()
    return {"slept": seconds}


@job(
    "testing.atomic",
    every=2,
    timeout=30,
    misfire_grace=60,
    atomic=True,
    retries=3,
    retry_backoff=0.5,
    enabled=False,
)
def atomic_effect(ctx: JobContext) -> None:
    """Write one user per tick, then work in statements for ``STAYY_TEST_SLOW_SECONDS`` (tests only).

    Atomic: the user commits with the run's success, so each tick's user exists exactly once
    however often its runs are killed and retried.
    """
    from django.db import connection

    from users.models import User

    tick = f"{ctx.scheduled_for:%Y%m%d%H%M%S}"
    User.objects.create(
        username=f"atomic-{tick}-r{ctx.run_id}", email=f"atomic-{tick}-r{ctx.run_id}@example.org"
    )
    _record("start", ctx)
    steps = int(float(os.environ.get("STAYY_TEST_SLOW_SECONDS", "1")) / 0.1)
    with connection.cursor() as cursor:
        for _ in range(steps):
            cursor.execute("SELECT pg_sleep(0.1)")
    _record("end", ctx)
