"""At most one executing run per job, enforced by the database.

Before the unique index can be built, a job with several runs still marked
active keeps only its newest one active; the older ones are closed as failed
with the reason (they could only be left over from a lost process).
"""

from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone


def close_extra_active_runs(apps, schema_editor):
    JobRun = apps.get_model("stayy", "JobRun")
    runs = JobRun.objects.using(schema_editor.connection.alias)
    now = timezone.now()
    newest: set[str] = set()
    for run in runs.filter(active=True).order_by("job_name", "-started_at", "-id"):
        if run.job_name not in newest:
            newest.add(run.job_name)
            continue
        fields = {"active": False}
        if run.status == "running":
            fields.update(status="failed", finished_at=now, error="closed: a newer run of the job was active")
        runs.filter(pk=run.pk).update(**fields)


class Migration(migrations.Migration):
    dependencies = [
        ("stayy", "0005_jobrun_autovacuum"),
    ]

    operations = [
        migrations.AddField(
            model_name="jobrun",
            name="forced",
            field=models.BooleanField(
                default=False,
                db_default=False,
                help_text="Started with runjobs --run --force: it may execute beside another run of the job.",
            ),
        ),
        migrations.RunPython(close_extra_active_runs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="jobrun",
            constraint=models.UniqueConstraint(
                condition=Q(active=True, forced=False),
                fields=("job_name",),
                name="stayy_jobrun_one_executing",
            ),
        ),
    ]
