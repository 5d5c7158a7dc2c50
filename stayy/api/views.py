"""Staff endpoints of the job runtime: the catalog, run history, run now, pause and resume.

Views are thin: they call :mod:`stayy.services` for every read and action.
No job runs inside a request; run-now queues a run that the leader executes.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import StrictPageNumberPagination
from config.permissions import StaffModelPermissions, StaffWith
from stayy import services
from stayy.api.serializers import (
    JobCatalogSerializer,
    JobEditSerializer,
    JobRunDetailSerializer,
    JobRunSerializer,
    JobSerializer,
    RunRequestedSerializer,
    run_url,
)
from stayy.models import Job, JobRun

NOT_FOUND = OpenApiResponse(description="No job of that name is registered.")
JOB_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="Job name, e.g. users.refresh_user_stats."
)


def _job_with_last_run(name: str) -> Job:
    try:
        job = services.job_get_with_last_run(name=name)
    except services.JobNotFound as exc:
        raise NotFound(str(exc)) from None
    if job is None:  # deleted between the two queries
        raise NotFound(f"unknown job {name!r}")
    return job


class RunPagination(StrictPageNumberPagination):
    page_size = 50
    max_page_size = 500


@extend_schema(tags=["jobs"])
class JobCatalogView(APIView):
    """Every registered job with its schedule, pause state and newest run, and who leads."""

    def get_permissions(self) -> list[BasePermission]:
        return [StaffWith("stayy.view_job")]

    @extend_schema(
        operation_id="jobs_list",
        summary="List the jobs with the current leader",
        responses=JobCatalogSerializer,
    )
    def get(self, request: Request) -> Response:
        catalog = {
            "leader": services.leader_get(),
            "lease_backend": services.lease_backend(),
            "jobs": services.job_list(),
        }
        return Response(JobCatalogSerializer(catalog, context={"request": request}).data)


@extend_schema(tags=["jobs"])
class JobViewSet(viewsets.GenericViewSet[Job]):
    """One job of the catalog, and the commands that act on it across the cluster."""

    serializer_class = JobSerializer
    lookup_field = "name"
    # Job names contain dots (users.refresh_user_stats), which DRF's default lookup rejects;
    # any segment reaches the view, and a name the registry does not know is a JSON 404.
    lookup_value_regex = r"[^/]+"
    filter_backends: list[Any] = []

    def get_parsers(self) -> list[BaseParser]:
        # An edit is JSON: its values keep their JSON types (a form would make every value a string).
        if getattr(getattr(self, "request", None), "method", "") == "PATCH":
            return [JSONParser()]
        return super().get_parsers()

    def get_permissions(self) -> list[BasePermission]:
        # Reading a job needs view_job; run now, pause and resume need change_job.
        return [StaffWith("stayy.view_job" if self.action == "retrieve" else "stayy.change_job")]

    @extend_schema(
        summary="Show one job", parameters=[JOB_NAME], responses={200: JobSerializer, 404: NOT_FOUND}
    )
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(self.get_serializer(_job_with_last_run(name)).data)

    @extend_schema(
        summary="Edit a job's schedule and options live",
        parameters=[JOB_NAME],
        description=(
            "Any of interval, cron (with timezone), enabled, timeout, retries, overlap, jitter, alert_after, "
            "as JSON; an empty object changes nothing. Edits win "
            "over JOB_OVERRIDES and the code, are stored and audited, and the leader applies them within "
            "a second: the run in flight finishes, and the next tick follows the new schedule."
        ),
        request=JobEditSerializer,
        responses={
            200: JobSerializer,
            400: OpenApiResponse(description="A bad value, naming the field."),
            404: NOT_FOUND,
        },
    )
    def partial_update(self, request: Request, name: str) -> Response:
        edit = JobEditSerializer(data=request.data)
        edit.is_valid(raise_exception=True)
        if not edit.validated_data:
            return Response(self.get_serializer(_job_with_last_run(name)).data)
        try:
            job = services.job_edit(name=name, changes=edit.validated_data, user=request.user)
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None
        except services.InvalidEdit as exc:
            raise ValidationError({field: [problem] for field, problem in exc.errors.items()}) from None
        return Response(self.get_serializer(job).data)

    @extend_schema(
        summary="Drop a job's live edits",
        parameters=[JOB_NAME],
        description="Back to its code declaration plus JOB_OVERRIDES.",
        request=None,
        responses={200: JobSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, name: str) -> Response:
        try:
            job = services.job_reset(name=name, user=request.user)
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None
        return Response(self.get_serializer(job).data)

    @extend_schema(
        summary="Run a job now, on the leader",
        parameters=[JOB_NAME],
        description="Queues a manual run; the leader starts it within seconds. Never runs in the request.",
        request=None,
        responses={202: RunRequestedSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, name: str) -> Response:
        try:
            run = services.job_request_run(name=name, requested_by=request.user.get_username())
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None
        body = {"run_id": run.pk, "status": run.status, "url": run_url(run, request=request)}
        return Response(RunRequestedSerializer(body).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Pause a job across the cluster",
        parameters=[JOB_NAME],
        request=None,
        responses={200: JobSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        try:
            services.job_pause(name=name, requested_by=request.user.get_username())
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None
        return Response(self.get_serializer(_job_with_last_run(name)).data)

    @extend_schema(
        summary="Resume a paused job",
        parameters=[JOB_NAME],
        description="Ticks that fell in the pause are not owed a run.",
        request=None,
        responses={200: JobSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        try:
            services.job_resume(name=name, requested_by=request.user.get_username())
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None
        return Response(self.get_serializer(_job_with_last_run(name)).data)


@extend_schema(tags=["jobs"])
@extend_schema_view(
    list=extend_schema(
        summary="List a job's runs, newest first",
        responses={200: JobRunSerializer(many=True), 404: NOT_FOUND},
    ),
    retrieve=extend_schema(
        summary="Show one run with its traceback",
        responses={
            200: JobRunDetailSerializer,
            404: OpenApiResponse(description="No job of that name, or no run of that id for the job."),
        },
    ),
)
class JobRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[JobRun]):
    """The run history of one job: executed runs, and ticks skipped or missed with the reason."""

    permission_classes = [StaffModelPermissions]
    serializer_class = JobRunSerializer
    pagination_class = RunPagination
    filter_backends = [DjangoFilterBackend]
    filterset_fields = ["status", "trigger"]

    def get_queryset(self) -> QuerySet[JobRun]:
        if getattr(self, "swagger_fake_view", False):
            # Schema generation has no job name in the URL; it needs only the model.
            return JobRun.objects.none()
        try:
            return services.job_runs(name=self.kwargs["job_name"])
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None

    def get_serializer_class(self) -> type[JobRunSerializer]:
        return JobRunDetailSerializer if self.action == "retrieve" else JobRunSerializer

    def get_object(self) -> JobRun:
        job_name, pk = self.kwargs["job_name"], self.kwargs["pk"]
        run_id = int(pk) if pk.isascii() and pk.isdigit() else 0  # no run has id 0
        try:
            run = services.job_run_get(name=job_name, run_id=run_id)
        except services.JobNotFound as exc:
            raise NotFound(str(exc)) from None
        if run is None:
            raise NotFound(f"job {job_name!r} has no run {pk[:40]!r}")
        self.check_object_permissions(self.request, run)
        return run
