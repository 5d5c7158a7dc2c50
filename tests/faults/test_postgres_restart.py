"""PostgreSQL restarted while a job runs and HTTP load goes on (the private server, not the shared one).

Requests fail at most while the server is down, and succeed from the moment
it is back; the run in flight is recorded (failed, or succeeded if it could
finish); the next ticks succeed in the same processes; no run stays
``running``. The full-length run is ``scripts/faults.py postgres-restart``.
"""

from __future__ import annotations

import pytest

from harness.faults import scenarios
from harness.faults.rig import Rig


@pytest.mark.processes
def test_postgres_restart_during_a_run_under_load(rig: Rig) -> None:
    report = scenarios.postgres_restart(rig, restarts=1)
    print("\n" + report.text())
    assert report.ok, report.text()
    assert report.figures["restarts"] == 1
    assert report.figures["failed requests outside restarts"] == 0
    assert sum(report.figures["runs in flight ended"].values()) == 1
    assert report.figures["runs left running"] == 0
