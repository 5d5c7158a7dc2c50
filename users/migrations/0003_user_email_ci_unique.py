"""One address per person: a unique index on ``lower(email)``.

A database that already holds addresses differing only in case cannot take
the index; the migration then stops with one line naming them (``migrate``
exits 1, nothing changed) instead of PostgreSQL's error.
"""

import django.db.models.functions.text
from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower

#: Addresses named in the error, at most.
SHOWN = 5


def refuse_case_duplicates(apps, schema_editor):
    User = apps.get_model("users", "User")
    users = User.objects.using(schema_editor.connection.alias)
    shared = list(
        users.annotate(address=Lower("email"))
        .values("address")
        .annotate(holders=Count("id"))
        .filter(holders__gt=1)
        .order_by("address")
        .values_list("address", flat=True)
    )
    if not shared:
        return
    examples = []
    for address in shared[:SHOWN]:
        ids = sorted(users.annotate(address=Lower("email")).filter(address=address).values_list("id", flat=True))
        examples.append(f"{address} (users {', '.join(map(str, ids))})")
    more = f" and {len(shared) - SHOWN} more" if len(shared) > SHOWN else ""
    raise CommandError(
        f"users.0003: {len(shared)} email address(es) belong to more than one user when case is ignored: "
        f"{'; '.join(examples)}{more}. Give each user an address of its own, then run migrate again."
    )


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('users', '0002_synccursor'),
    ]

    operations = [
        migrations.RunPython(refuse_case_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='user',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('email'), name='users_user_email_ci_unique', violation_error_message='A user with this email address already exists.'),
        ),
    ]
