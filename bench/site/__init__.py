"""A bench-only Django app and settings: the baseline view of benchmark 3 and the tick jobs of benchmark 4.

Used as ``DJANGO_SETTINGS_MODULE=bench.site.settings`` by the processes the
benchmarks start; the product never installs it.
"""
