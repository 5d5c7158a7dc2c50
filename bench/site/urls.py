"""The service's URLs plus benchmark 3's comparisons (``/bench/users-baseline/``, ``/bench/users-drf/``)."""

from django.urls import path

from bench.site.views import users_baseline, users_plain_drf
from config.urls import urlpatterns as service_urlpatterns

urlpatterns = [
    path("bench/users-baseline/", users_baseline, name="bench-users-baseline"),
    path("bench/users-drf/", users_plain_drf, name="bench-users-drf"),
    *service_urlpatterns,
]
