"""URLs of the jobs API, included at ``api/`` under the ``stayy_api`` namespace.

``jobs/`` is the catalog (one object, not a page of jobs); ``jobs/{name}/...``
comes from a router with a lookup that accepts dots; the runs of a job are
explicit paths, because ``str`` path segments accept dots too.
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from stayy.api.views import JobCatalogView, JobRunViewSet, JobViewSet

app_name = "stayy_api"

# SimpleRouter: a DefaultRouter's API root at "api/" would shadow other apps' routes there.
router = SimpleRouter(trailing_slash=True)
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("jobs/", JobCatalogView.as_view(), name="job-list"),
    *router.urls,
    path(
        "jobs/<str:job_name>/runs/",
        JobRunViewSet.as_view({"get": "list"}),
        name="job-run-list",
    ),
    path(
        # Any id reaches the view: one that is not a number is a JSON 404 there, not an HTML page.
        "jobs/<str:job_name>/runs/<str:pk>/",
        JobRunViewSet.as_view({"get": "retrieve"}),
        name="job-run-detail",
    ),
]
