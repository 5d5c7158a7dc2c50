"""The service's URLs, and benchmark 3's comparisons: ``/bench/users-baseline/``, ``/bench/users-orjson/``."""

from django.urls import path

from bench.site.views import users_baseline, users_orjson
from config.urls import urlpatterns as service_urlpatterns

urlpatterns = [
    path("bench/users-baseline/", users_baseline, name="bench-users-baseline"),
    path("bench/users-orjson/", users_orjson, name="bench-users-orjson"),
    *service_urlpatterns,
]
