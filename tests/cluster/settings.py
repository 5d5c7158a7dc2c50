"""Settings of the processes the cluster tests start: the service's settings plus the slow test job.

Used as ``DJANGO_SETTINGS_MODULE=tests.cluster.settings`` by child processes
only; the product never installs ``tests.cluster.slowjob``.
"""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.cluster.slowjob.apps.SlowJobConfig"]  # noqa: F405
