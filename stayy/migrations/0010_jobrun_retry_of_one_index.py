# The unique constraint stayy_jobrun_one_retry_per_run indexes retry_of_id already: the foreign
# key's own index goes. Only the index is dropped; Django's AlterField would also drop and re-add
# (and so re-validate) the foreign key, locking the run table for a scan of it.

import django.db.models.deletion
from django.db import migrations, models

INDEX = "stayy_jobrun_retry_of_id_feb1f779"


class Migration(migrations.Migration):

    dependencies = [
        ("stayy", "0009_alerts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="jobrun",
                    name="retry_of",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        help_text="The run retried.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="retries",
                        to="stayy.jobrun",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "stayy_jobrun" ("retry_of_id")',
                ),
            ],
        ),
    ]
