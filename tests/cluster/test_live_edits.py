"""A live edit sent to an instance that does not lead takes effect in every process within 2 s.

Two gunicorn instances, two workers each, jobs on. The edit goes to a
follower's API; the leader, in the other instance, runs the job on the new
schedule within the bound, every worker of both instances answers the new
representation, and no tick runs twice across the change.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from harness.cluster import PURGE
from harness.cluster.evidence import live_leader_pid
from harness.cluster.processes import Cluster
from stayy.models import JobRun
from tests.cluster.conftest import TwoInstances

#: The leader polls the catalog every half second; a tick in flight may take as long again.
EDIT_BOUND = 2.0


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_an_edit_on_a_follower_takes_effect_in_every_process_within_two_seconds(
    cluster: Cluster, two_instances: TwoInstances
) -> None:
    # The purge job runs every second here; the edit moves it to every 3 s.
    a, b, follower, token = two_instances.a, two_instances.b, two_instances.follower, two_instances.token
    path = f"/api/jobs/{PURGE}/"

    answer = follower.request("PATCH", path, token=token, json_body={"interval": 3})
    edited_at = timezone.now()
    edited_mono = time.monotonic()
    assert answer.status == 200, answer.body
    assert answer.json()["trigger"] == "interval:3"

    # Every process answers the new representation at once (the catalog is shared).
    for instance in (a, b):
        for _ in range(6):  # requests spread over both workers
            body = instance.request("GET", path, token=token).json()
            assert (body["trigger"], body["schedule_source"], body["edited_by"]) == (
                "interval:3",
                "edited",
                "ops",
            )

    # The leader follows: after the bound, only ticks on the 3 s grid run.
    time.sleep(EDIT_BOUND + 7)
    runs = list(JobRun.objects.filter(job_name=PURGE, trigger="schedule", created_at__gt=edited_at))
    after_bound = [r for r in runs if r.created_at > edited_at + timedelta(seconds=EDIT_BOUND)]
    off_grid = [r.scheduled_for for r in after_bound if r.scheduled_for.timestamp() % 3]
    assert len(after_bound) >= 2, f"{len(after_bound)} runs in the 7 s after the bound"
    assert not off_grid, (
        f"ticks of the old schedule {time.monotonic() - edited_mono:.1f} s after the edit: {off_grid}"
    )
    per_tick = Counter(r.scheduled_for for r in runs)
    assert max(per_tick.values()) == 1, f"a tick ran twice: {per_tick.most_common(1)}"
    assert all(r.status == "succeeded" for r in after_bound), [
        (r.scheduled_for, r.status) for r in after_bound
    ]
    assert {r.pid for r in after_bound} == {live_leader_pid(cluster.job_name)}
