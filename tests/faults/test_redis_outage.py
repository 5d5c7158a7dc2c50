"""Redis stopped for 10 s under a 3-worker gunicorn with jobs on (the lease in Redis).

Killed (connections refused) or hung (SIGSTOP: connections accepted, no
answers, every call times out). Claims stay in the database, so no tick runs
twice; scheduling stops (fail safe) and each process says so once; HTTP —
including the cached stats — keeps answering 200; jobs resume within a
candidate's poll once Redis is back; and every tick of the whole run left one
row: executed, or ``missed``/``skipped`` with the reason. The full-length run
(30 s) is ``scripts/faults.py redis-outage``.
"""

from __future__ import annotations

import pytest

from harness.faults import scenarios
from harness.faults.rig import Rig


@pytest.mark.processes
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_redis_outage_under_load(rig: Rig, how: str) -> None:
    report = scenarios.redis_outage(rig, outage=6, how=how, workers=3)
    print("\n" + report.text())
    assert report.ok, report.text()
    assert report.figures["outage (s)"] >= 6
    assert report.figures["requests during the outage"] > 0
    assert set(report.figures["answers by status"]) == {"200"}
    assert report.figures["ticks lost (no row)"] == 0
    assert report.figures["ticks executed twice (log lines, handler's own log)"] == 0
