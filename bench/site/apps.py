"""App config of the bench-only app (its ``jobs.py`` is discovered like any app's)."""

from django.apps import AppConfig


class BenchSiteConfig(AppConfig):
    name = "bench.site"
    label = "bench_site"
    verbose_name = "Benchmarks (bench only)"
