"""``kill -9`` of random gunicorn workers every 2-4 s for 20 s, with a 1-second job ticking every second.

gunicorn replaces each killed worker; a killed leader is replaced within the
lease TTL, and its run is closed as "process lost". No tick executes twice —
counted from the handler's own execution log (a side effect each execution
writes), the "run started" log lines and the run rows — and every tick left a
row. The full-length run (60 s) is ``scripts/faults.py worker-kills``.
"""

from __future__ import annotations

import pytest

from harness.faults import scenarios
from harness.faults.rig import Rig


@pytest.mark.processes
def test_random_worker_kills(rig: Rig) -> None:
    report = scenarios.worker_kills(rig, seconds=14, every=(2.0, 4.0), workers=3)
    print("\n" + report.text())
    assert report.ok, report.text()
    assert report.figures["workers killed"] >= 4
    assert report.figures["ticks executed twice (log lines, handler's own log)"] == 0
    assert report.figures["ticks with two rows"] == 0
    assert report.figures["ticks lost (no row)"] == 0
    assert report.figures["runs left running"] == 0
