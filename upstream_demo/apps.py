"""App configuration of the demo third-party user service (it brings the ``demo_upstream`` command)."""

from django.apps import AppConfig


class UpstreamDemoConfig(AppConfig):
    name = "upstream_demo"
    verbose_name = "Demo upstream user service"
