"""The run table's storage settings on PostgreSQL (migration ``stayy.0005``)."""

from __future__ import annotations

import pytest
from django.db import connection

from stayy.models import JobRun


@pytest.mark.django_db
def test_autovacuum_cleans_the_run_table_after_a_fixed_number_of_run_ends():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [JobRun._meta.db_table])
        (options,) = cursor.fetchone()

    assert set(options or []) >= {"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=1000"}
