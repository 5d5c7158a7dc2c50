"""The rig of a fault run: private servers, a database of its own, a cluster, an API token.

The process running the faults (pytest, or ``scripts/faults.py``) reads the
private database through a Django database alias of its own
(:data:`ALIAS`), added at run time, so the faults never touch the database
the test run (or the caller's ``DATABASE_URL``) uses.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import dj_database_url
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from knox.models import AuthToken

from harness.cluster.processes import Cluster
from harness.faults.servers import PostgresServer, RedisServer
from users.models import User

ALIAS = "faults"
TEMPLATE = "stayy_faults_template"

#: Children run as in production: debug off (no SQL kept per connection), a secret key of their own.
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


def register_database(alias: str, url: str) -> None:
    """Make ``url`` reachable as ``connections[alias]`` (and ``.using(alias)``) in this process."""
    config = dj_database_url.parse(url, conn_max_age=0)
    config["OPTIONS"] = {"connect_timeout": 5}
    default = connections.settings[DEFAULT_DB_ALIAS]
    connections.settings[alias] = connections.configure_settings({DEFAULT_DB_ALIAS: default, alias: config})[
        alias
    ]


def unregister_database(alias: str) -> None:
    if alias not in connections.settings:
        return
    connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


def prepare_template(postgres: PostgresServer) -> None:
    """A migrated database that each fault run's database is copied from (``CREATE … TEMPLATE``)."""
    postgres.create_database(TEMPLATE)
    register_database(TEMPLATE, postgres.url(TEMPLATE))
    try:
        call_command("migrate", database=TEMPLATE, interactive=False, verbosity=0)
    finally:
        unregister_database(TEMPLATE)  # a template must have no open connection


@dataclass
class Rig:
    postgres: PostgresServer
    redis: RedisServer
    database: str
    cluster: Cluster

    @property
    def database_url(self) -> str:
        return self.postgres.url(self.database)

    def reconnect(self) -> None:
        """Drop this process's connection to the private database (after a restart)."""
        connections[ALIAS].close()

    def api_token(self, *, staff: bool = False) -> str:
        """A token of a new active user (a superuser if ``staff``) in the rig's database."""
        name = f"load-{uuid.uuid4().hex[:8]}"
        user = User.objects.db_manager(ALIAS).create_user(
            username=name,
            email=f"{name}@example.com",
            password=secrets.token_urlsafe(16),
            is_staff=staff,
            is_superuser=staff,
        )
        _, token = AuthToken.objects.db_manager(ALIAS).create(user=user)
        return str(token)


def open_rig(postgres: PostgresServer, *, workdir: Path, redis: RedisServer | None = None) -> Rig:
    """A fresh database (from the template) and Redis, a cluster pointed at them; close with
    :func:`close_rig`."""
    database = f"faults_{uuid.uuid4().hex[:10]}"
    postgres.create_database(database, template=TEMPLATE)
    if redis is None:
        redis = RedisServer(workdir / "redis.log")
        redis.start()
    cluster = Cluster(
        tmp_path=workdir,
        job_name=f"faults-{uuid.uuid4().hex[:12]}",
        exec_log=workdir / "exec.log",
        database_url=postgres.url(database),
    )
    register_database(ALIAS, postgres.url(database))
    return Rig(postgres=postgres, redis=redis, database=database, cluster=cluster)


def close_rig(rig: Rig) -> None:
    rig.cluster.kill_all()
    rig.redis.kill()
    unregister_database(ALIAS)
    if rig.postgres.running():
        rig.postgres.drop_database(rig.database)
