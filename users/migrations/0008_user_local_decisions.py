"""Local decisions and optimistic concurrency on the users table.

* ``upstream_deleted``: the upstream's latest record of a mirror is a
  tombstone. Until now a tombstone was the only thing that switched a mirror
  off, so every inactive mirror starts as deleted upstream.
* ``deactivated_at`` / ``deactivated_by``: a deactivation by staff, which the
  sync never undoes.
* ``version``: bumped by every save; a save that read an older one is refused.
"""

from typing import Any

from django.db import migrations, models


def inactive_mirrors_deleted_upstream(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("users", "User")
    users = User.objects.using(schema_editor.connection.alias)
    users.filter(source="third_party", is_active=False).update(upstream_deleted=True)


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0007_api_tokens_hashed"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="deactivated_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When staff deactivated this account here (the sync keeps it off).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="deactivated_by",
            field=models.CharField(blank=True, help_text="Who deactivated it here.", max_length=150),
        ),
        migrations.AddField(
            model_name="user",
            name="upstream_deleted",
            field=models.BooleanField(
                default=False, help_text="The upstream user service deleted or disabled this user."
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="version",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.RunPython(inactive_mirrors_deleted_upstream, migrations.RunPython.noop, elidable=True),
    ]
