"""Settings of the gunicorn the browser tests start: the service's settings plus two test jobs.

Used as ``DJANGO_SETTINGS_MODULE=tests.browser.settings`` by that child process
only; the product never installs ``tests.browser.jobapp``.
"""

from django.conf import global_settings

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.browser.jobapp.apps.BrowserJobsConfig"]  # noqa: F405

# The test process stores the admin's password with the suite's fast hasher; the server must read it.
PASSWORD_HASHERS = [*global_settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.MD5PasswordHasher"]
