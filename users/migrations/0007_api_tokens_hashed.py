"""API tokens move from DRF's ``authtoken`` (plain text) to django-rest-knox (SHA-512 digests).

Each existing token is carried over: knox stores the digest of the very same
token string and its first 15 characters as the lookup key, so clients keep
the token they have. A carried-over token expires ``API_TOKEN_TTL_DAYS`` after
this migration, like a new one. Then the plain-text table ``authtoken_token``
is dropped (and Django's record of its migrations with it), so no token stays
readable in the database. Reversing drops nothing and restores nothing: the
plain tokens are gone.
"""

from django.db import migrations
from django.utils import timezone

PLAIN_TABLE = "authtoken_token"


def carry_over_plain_tokens(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS, knox_settings

    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id FROM {PLAIN_TABLE}")
        rows = cursor.fetchall()
    AuthToken = apps.get_model("knox", "AuthToken")
    expiry = timezone.now() + knox_settings.TOKEN_TTL
    AuthToken.objects.using(connection.alias).bulk_create(
        [
            AuthToken(digest=hash_token(key), token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id,
                      expiry=expiry)
            for key, user_id in rows
        ],
        ignore_conflicts=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {PLAIN_TABLE}")
        cursor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0006_user_autovacuum"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(carry_over_plain_tokens, migrations.RunPython.noop)]
