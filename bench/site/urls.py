"""The service's URLs plus the baseline endpoint of benchmark 3 (``/bench/users-baseline/``)."""

from django.urls import path

from bench.site.views import users_baseline
from config.urls import urlpatterns as service_urlpatterns

urlpatterns = [
    path("bench/users-baseline/", users_baseline, name="bench-users-baseline"),
    *service_urlpatterns,
]
