"""App configuration of the browser tests' jobs (its ``jobs.py`` is found by the job registry)."""

from django.apps import AppConfig


class BrowserJobsConfig(AppConfig):
    name = "tests.browser.jobapp"
    label = "stayy_test_browserjobs"
    verbose_name = "Stayy browser test jobs"
