"""Settings of the processes the benchmarks start: the service's settings plus the bench-only app and URLs.

Everything else (middleware, database, connection reuse, DRF) is exactly the
service's, so the product endpoint and the baseline run on the same server
with the same settings.
"""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.site.apps.BenchSiteConfig"]  # noqa: F405
ROOT_URLCONF = "bench.site.urls"
