"""The error search's trigram index covers only runs that have an error text (PostgreSQL only).

Most runs have none: every run row is inserted without one, and a run that
succeeds keeps it empty. With a full index each of those inserts would pay
for a GIN entry no search can use, and that insert is the claim of every
scheduled tick (the figures: bench/README.md, "Decisions"). The admin's
error search adds ``error <> ''`` to its query (a non-empty term matches no
empty text), so it still reads this index.
"""

from django.db import migrations

from stayy.migration_operations import RunSQLOnPostgreSQL

ERROR_TRIGRAM_INDEX = "stayy_jobrun_error_trgm"
FULL = f"CREATE INDEX {ERROR_TRIGRAM_INDEX} ON stayy_jobrun USING gin (UPPER(error) gin_trgm_ops)"


class Migration(migrations.Migration):
    dependencies = [
        ("stayy", "0003_jobrun_log_and_history_indexes"),
    ]

    operations = [
        RunSQLOnPostgreSQL(
            sql=[f"DROP INDEX IF EXISTS {ERROR_TRIGRAM_INDEX}", f"{FULL} WHERE error <> ''"],
            reverse_sql=[f"DROP INDEX IF EXISTS {ERROR_TRIGRAM_INDEX}", FULL],
        ),
    ]
