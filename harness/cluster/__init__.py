"""A cluster of real service processes sharing one database and one lease, and the evidence they leave.

Used by the cluster and fault tests and by ``scripts/faults.py``. The children run with
:data:`SETTINGS_MODULE` (the service plus the harness's ``testing.slow`` job). This module holds
the bounds every child runs with and the job names the checks read; it imports nothing, while
:mod:`harness.cluster.processes` and :mod:`harness.cluster.evidence` read the service's database
through Django (import them after ``django.setup()``).
"""

SETTINGS_MODULE = "harness.cluster.settings"

#: Lease TTL and stale-run bound of every child process; every time bound of the checks derives from them.
TTL = 3.0
STALE_AFTER = 4.0
#: Heartbeats every max(1, STALE_AFTER / 5) s and reaps every max(1, STALE_AFTER / 3) s: slack for both.
REAP_SLACK = 1.0 + STALE_AFTER / 3
#: Scheduling slack on this 2-core machine (thread start, queries, CPU shared by many workers).
MARGIN = 3.0

PURGE = "stayy.purge_job_runs"
SLOW = "testing.slow"
