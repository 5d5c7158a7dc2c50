"""Upgrading a database that holds data: a migration that cannot apply stops with one clear line;
a data migration changes the database being migrated, never the default one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader

from harness.faults.rig import register_database, unregister_database
from tests.jobs.support import run_manage, subprocess_env
from tests.support import child_database_url

#: The users model as a migration left it (the current one has columns a later migration adds).
HISTORICAL_USER = (
    "from django.db import connection; "
    "from django.db.migrations.loader import MigrationLoader; "
    "state = MigrationLoader(connection).project_state(('users', '{migration}')); "
    "User = state.apps.get_model('users', 'User'); "
)
CREATE_TWINS = HISTORICAL_USER.format(migration="0002_synccursor") + (
    "User.objects.create(username='ann', email='Ann@example.org'); "
    "User.objects.create(username='ann2', email='ann@example.org'); "
    "User.objects.create(username='bob', email='bob@example.org')"
)


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty database of its own (the migrations run in a child process)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
        return
    name = f"stayy_upgrade_{uuid.uuid4().hex[:10]}"
    test_database_url = child_database_url()
    with psycopg.connect(test_database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield test_database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(test_database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db
def test_addresses_that_differ_only_in_case_stop_the_email_index_with_one_line(database_url):
    env = subprocess_env(DATABASE_URL=database_url)
    assert run_manage("migrate", "users", "0002", env=env).returncode == 0
    assert run_manage("shell", "-c", CREATE_TWINS, env=env).returncode == 0

    refused = run_manage("migrate", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "CommandError: users.0003: 1 email address(es) belong to more than one user when case is ignored: "
        "ann@example.org (users 1, 2). Give each user an address of its own, then run migrate again."
    ]
    plan = run_manage("showmigrations", "users", env=env).stdout
    assert "[ ] 0003_user_email_ci_unique" in plan, "the refused migration was recorded as applied"

    fix = "from users.models import User; User.objects.filter(pk=2).update(email='ann.two@example.org')"
    assert run_manage("shell", "-c", fix, env=env).returncode == 0
    done = run_manage("migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert "[X] 0005_user_email_one_index" in run_manage("showmigrations", "users", env=env).stdout


@pytest.mark.django_db
def test_inactive_mirrors_start_as_deleted_upstream_and_the_migration_reverses(database_url):
    env = subprocess_env(DATABASE_URL=database_url)
    assert run_manage("migrate", "users", "0007", env=env).returncode == 0
    create = HISTORICAL_USER.format(migration="0007_api_tokens_hashed") + (
        "User.objects.create(username='gone', email='gone@example.org', source='third_party',"
        " is_active=False); "
        "User.objects.create(username='here', email='here@example.org', source='third_party'); "
        "User.objects.create(username='off', email='off@example.org', is_active=False)"
    )
    assert run_manage("shell", "-c", create, env=env).returncode == 0

    done = run_manage("migrate", "users", "0008", env=env)
    assert done.returncode == 0, done.stderr
    show = (
        "from users.models import User; "
        "print(sorted(User.objects.values_list('username', 'upstream_deleted', 'version', 'deactivated_by')))"
    )
    shown = run_manage("shell", "-c", show, env=env)
    assert shown.stdout.strip().splitlines()[-1] == (
        "[('gone', True, 1, ''), ('here', False, 1, ''), ('off', False, 1, '')]"
    ), shown.stderr

    back = run_manage("migrate", "users", "0007", env=env)
    assert back.returncode == 0, back.stderr
    assert "[ ] 0008_user_local_decisions" in run_manage("showmigrations", "users", env=env).stdout


#: The alias of the database that :func:`migrated_alias` migrates in this process.
MIGRATED = "migrated"


@pytest.fixture(scope="module")
def migrated_alias(django_db_setup: None) -> Iterator[str]:
    """An empty PostgreSQL database, reachable in this process as the alias :data:`MIGRATED`.

    Module-scoped so the alias exists before a test's database setup, which then lets the test
    (``django_db(databases=...)``) use it."""
    name = f"{connection.settings_dict['NAME']}_migrated_{uuid.uuid4().hex[:8]}"
    test_database_url = child_database_url()
    with psycopg.connect(test_database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    register_database(MIGRATED, test_database_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield MIGRATED
    finally:
        unregister_database(MIGRATED)
        with psycopg.connect(test_database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(databases=["default", MIGRATED])
def test_the_deleted_upstream_data_migration_changes_the_database_being_migrated(
    migrated_alias, django_user_model
):
    here = django_user_model.objects.create_user(
        username="mirror", email="mirror@example.org", source="third_party", is_active=False
    )
    call_command("migrate", "users", "0007", database=migrated_alias, interactive=False, verbosity=0)
    state = MigrationLoader(connections[migrated_alias]).project_state(("users", "0007_api_tokens_hashed"))
    state.apps.get_model("users", "User").objects.using(migrated_alias).create(
        username="mirror", email="mirror@example.org", source="third_party", is_active=False
    )

    call_command("migrate", "users", "0008", database=migrated_alias, interactive=False, verbosity=0)

    there = django_user_model.objects.using(migrated_alias).filter(username="mirror")
    assert list(there.values_list("upstream_deleted", flat=True)) == [True]
    here.refresh_from_db()
    assert here.upstream_deleted is False, "the migration of another database changed the default one"
