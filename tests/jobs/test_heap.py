"""Serving processes freeze their startup objects, so full garbage collections leave them out."""

from __future__ import annotations

import gc
import signal
import sys
import uuid

import pytest

from stayy.runtime import heap
from tests.jobs.support import BIN_DIR, free_port, parent_pid, running, subprocess_env, wait_until
from tests.support import json_log_lines

#: Far fewer objects than Django, DRF and the app leave tracked once loaded (about 100,000).
LOADED_APP_OBJECTS = 10_000


def test_frozen_objects_are_left_out_and_new_ones_are_collected_as_before():
    made_before = [object()]
    try:
        frozen = heap.freeze_startup_objects()
        # Not compared with a second count: other threads of the test process free or make objects.
        assert frozen > 0
        made_after = [object()]
        tracked = gc.get_objects()
        assert not any(each is made_before for each in tracked)
        assert any(each is made_after for each in tracked)
    finally:
        gc.unfreeze()
    assert any(each is made_before for each in gc.get_objects())


def _freezes(output: str) -> dict[int, int]:
    """pid -> objects frozen, from the JSON log lines of :func:`heap.freeze_startup_objects`."""
    return {
        record["pid"]: int(record["message"].split()[1])
        for record in json_log_lines(output)
        if record["logger"] == "stayy.runtime" and record["message"].startswith("froze ")
    }


@pytest.mark.processes
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_each_gunicorn_worker_freezes_the_loaded_app(tmp_path):
    port = free_port()
    env = subprocess_env(
        GUNICORN_WORKERS="2",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_ACCESS_LOG="",
        JOB_ENABLE="0",
        LOG_FORMAT="json",
    )
    argv = [str(BIN_DIR / "gunicorn"), "-c", "gunicorn.conf.py"]
    with running(argv, env=env, log_path=tmp_path / "gunicorn.log") as master:

        def both_workers() -> dict[int, int] | None:
            found = _freezes(master.output())
            return found if len(found) == 2 else None

        freezes = wait_until(both_workers, timeout=60, message="two workers did not log their freeze")
        assert {parent_pid(pid) for pid in freezes} == {master.pid}, freezes
        assert min(freezes.values()) > LOADED_APP_OBJECTS, freezes
        master.signal(signal.SIGTERM)
        assert master.wait(timeout=30) == 0, master.output()


@pytest.mark.processes
@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_runjobs_freezes_the_loaded_app(tmp_path):
    env = subprocess_env(JOB_NAME=f"test-heap-{uuid.uuid4().hex[:8]}", LOG_FORMAT="json")
    argv = [sys.executable, "manage.py", "runjobs"]
    with running(argv, env=env, log_path=tmp_path / "runjobs.log") as process:
        freezes = wait_until(
            lambda: _freezes(process.output()) or None, timeout=60, message="runjobs did not log its freeze"
        )
        assert list(freezes) == [process.pid]
        assert freezes[process.pid] > LOADED_APP_OBJECTS
        process.signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.output()
