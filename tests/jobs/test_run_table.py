"""The run table's storage settings on PostgreSQL (migration ``stayy.0005``)."""

from __future__ import annotations

import pytest

from stayy.models import JobRun
from tests.support import storage_parameters


@pytest.mark.django_db
def test_autovacuum_cleans_the_run_table_after_a_fixed_number_of_run_ends():
    assert storage_parameters(JobRun._meta.db_table) >= {
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=1000",
    }
