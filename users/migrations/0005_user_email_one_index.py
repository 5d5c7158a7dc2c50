"""Three fewer indexes on the users table, each redundant; every insert and email change paid for them.

* ``email`` loses ``unique=True``, and with it the case-sensitive unique index
  and its ``varchar_pattern_ops`` twin: ``users_user_email_ci_unique``
  (``lower(email)``, migration 0003) already refuses every duplicate,
  exact or not, and serves every email lookup of the app.
* The ``varchar_pattern_ops`` index Django adds for the unique ``username``
  (PostgreSQL only) serves ``LIKE 'prefix%'`` only; the app looks usernames
  up by equality (the unique index) and searches them with ``icontains``
  (``UPPER(...) LIKE``), which no such index serves.

Each new mirror writes five index entries instead of eight (the figures:
bench/README.md, "Decisions").
"""

from django.db import migrations, models

from stayy.migration_operations import RunSQLOnPostgreSQL


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0004_user_fillfactor"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="email",
            field=models.EmailField(max_length=254),
        ),
        RunSQLOnPostgreSQL(
            sql="DROP INDEX IF EXISTS users_user_username_06e46fe6_like",
            reverse_sql=(
                "CREATE INDEX IF NOT EXISTS users_user_username_06e46fe6_like"
                " ON users_user (username varchar_pattern_ops)"
            ),
        ),
    ]
