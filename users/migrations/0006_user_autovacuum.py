"""Vacuum the users table after a fixed number of changed rows, not a fifth of it (PostgreSQL only).

The user list answers its count with ``COUNT(*)``, which PostgreSQL reads
from an index alone only on pages a vacuum marked all-visible. Each sync
update clears that mark on its row's page: 2,000 updated mirrors touch most
pages of a 100,000-user table, and the count then reads the heap, which
slows every list request (the figures: bench/README.md, "Decisions"). By
default autovacuum waits until 20% of the rows changed, 20,000 at 100,000
users; with these settings it runs after 1,000, and only visits the pages
that changed.

The sync's own updates rarely reach that count: they are HOT, and their old
versions are pruned as pages are read, which lowers the count of dead rows.
So the sync also vacuums the table itself after a run that updated users
(``users.repository.sync_vacuum.mirrors_vacuum``).
"""

from django.db import migrations

from stayy.migration_operations import RunSQLOnPostgreSQL


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0005_user_email_one_index"),
    ]

    operations = [
        RunSQLOnPostgreSQL(
            sql="ALTER TABLE users_user SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000)",
            reverse_sql="ALTER TABLE users_user RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)",
        ),
    ]
