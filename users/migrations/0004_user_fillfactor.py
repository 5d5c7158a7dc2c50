"""Leave 10% of each page of the users table free (PostgreSQL only; nothing on SQLite).

Sync updates change display names and timestamps, which no index covers; with
room on the row's page PostgreSQL makes them HOT updates, which write no index
entries, at the cost of a somewhat larger table (the figures:
bench/README.md, "Decisions"). It applies to pages written from now on;
``VACUUM FULL users_user`` rewrites existing ones.
"""

from django.db import migrations

from stayy.migration_operations import RunSQLOnPostgreSQL


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0003_user_email_ci_unique"),
    ]

    operations = [
        RunSQLOnPostgreSQL(
            sql="ALTER TABLE users_user SET (fillfactor = 90)",
            reverse_sql="ALTER TABLE users_user RESET (fillfactor)",
        ),
    ]
