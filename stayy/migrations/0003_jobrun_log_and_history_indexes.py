"""Per-run logs, and indexes that keep the run history pages fast at millions of rows.

Each history index matches one filter (none, job, status, trigger) plus the
newest-first order ``(scheduled_for DESC, id DESC)``. The error search
(``UPPER(error) LIKE UPPER('%…%')``, Django's ``icontains``) gets a trigram GIN
index on PostgreSQL; SQLite has no such index and skips that step.
"""

from django.db import migrations, models

from stayy.migration_operations import RunSQLOnPostgreSQL

ERROR_TRIGRAM_INDEX = "stayy_jobrun_error_trgm"


class Migration(migrations.Migration):
    dependencies = [
        ("stayy", "0002_job_schedule_since_nullable"),
    ]

    operations = [
        migrations.AddField(
            model_name="jobrun",
            name="log",
            field=models.TextField(
                blank=True,
                help_text="The lines the run logged, capped at JOB_RUN_LOG_MAX_BYTES (the start is kept).",
            ),
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(fields=["-scheduled_for", "-id"], name="stayy_jobrun_newest"),
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(fields=["job_name", "-scheduled_for", "-id"], name="stayy_jobrun_job_newest"),
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(fields=["status", "-scheduled_for", "-id"], name="stayy_jobrun_status_newest"),
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(
                fields=["trigger", "-scheduled_for", "-id"], name="stayy_jobrun_trigger_newest"
            ),
        ),
        # Replaced by the indexes above, which also cover the id tie-break of the order.
        migrations.RemoveIndex(model_name="jobrun", name="stayy_jobrun_job_sched"),
        migrations.RemoveIndex(model_name="jobrun", name="stayy_jobrun_sched"),
        migrations.RemoveIndex(model_name="jobrun", name="stayy_jobrun_status_sched"),
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
        RunSQLOnPostgreSQL(
            sql=[
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                f"CREATE INDEX IF NOT EXISTS {ERROR_TRIGRAM_INDEX} ON stayy_jobrun "
                "USING gin (UPPER(error) gin_trgm_ops)",
            ],
            reverse_sql=[f"DROP INDEX IF EXISTS {ERROR_TRIGRAM_INDEX}"],
        ),
    ]
