"""App configuration of the Stayy runtime; starts the embedded job server where it should run."""

from django.apps import AppConfig


class StayyConfig(AppConfig):
    name = "stayy"
    verbose_name = "Stayy jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from stayy.runtime import embedded
        from stayy.scheduling import registry

        registry.autodiscover()
        registry.apply_overrides()
        embedded.start_from_ready()
