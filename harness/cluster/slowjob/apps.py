"""App configuration of the harness-only slow job (its ``jobs.py`` is found by the job registry)."""

from django.apps import AppConfig


class SlowJobConfig(AppConfig):
    name = "harness.cluster.slowjob"
    label = "stayy_test_slowjob"
    verbose_name = "Stayy test slow job"
