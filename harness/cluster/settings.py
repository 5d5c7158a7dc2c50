"""Settings of the processes a cluster starts: the service's settings plus the slow test job.

Used as ``DJANGO_SETTINGS_MODULE=harness.cluster.settings`` by the cluster's
child processes (and by ``scripts/faults.py``, which reads their database);
the product never installs ``harness.cluster.slowjob``.
"""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "harness.cluster.slowjob.apps.SlowJobConfig"]  # noqa: F405
