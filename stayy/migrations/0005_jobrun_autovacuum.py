"""Vacuum the run table after a fixed number of changed rows, not a fifth of it (PostgreSQL only).

Every run ends with an ``UPDATE`` that cannot be HOT (``status`` and
``active`` are in the table's indexes and partial-index predicates), so it
leaves a dead entry in the index of active runs (``stayy_jobrun_active``)
until a vacuum. Each tick's claim and the leader's reaper read that index,
so the claim slows as dead entries pile up (the figures: bench/README.md,
"Decisions"). By default autovacuum waits until 20% of the rows are dead:
200,000 run ends on a history of a million runs.
With these settings it vacuums after 1,000 of them, whatever the history's
size (a vacuum of this table skips the pages that have not changed).
"""

from django.db import migrations

from stayy.migration_operations import RunSQLOnPostgreSQL


class Migration(migrations.Migration):
    dependencies = [
        ("stayy", "0004_jobrun_error_trgm_partial"),
    ]

    operations = [
        RunSQLOnPostgreSQL(
            sql="ALTER TABLE stayy_jobrun SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)",
            reverse_sql="ALTER TABLE stayy_jobrun RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)",
        ),
    ]
