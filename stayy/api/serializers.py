"""Representations of the jobs API: the catalog with its leader, a job, its runs, a run request.

All of them are read-only: the API changes state only through the services
(run now, pause, resume), never by writing a representation back.
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from stayy.models import Job, JobRun, LeaderLease

NAMESPACE = "stayy_api"


def run_url(run: JobRun, *, request: Any, format: str | None = None) -> str:
    """Runs sit under their job: ``jobs/{job_name}/runs/{id}/``."""
    return reverse(
        f"{NAMESPACE}:job-run-detail",
        kwargs={"job_name": run.job_name, "pk": run.pk},
        request=request,
        format=format,
    )


class LeaderSerializer(serializers.ModelSerializer[LeaderLease]):
    """The process whose job server currently schedules the cluster's jobs."""

    class Meta:
        model = LeaderLease
        fields = ["host", "pid", "since", "backend"]
        read_only_fields = fields


class LastRunSerializer(serializers.Serializer[Any]):
    """The newest run of a job that left the queue (queued requests are not counted)."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=JobRun.Status.choices)
    scheduled_for = serializers.DateTimeField()


class JobSerializer(serializers.ModelSerializer[Job]):
    """A job of the catalog: its schedule, pause state, next tick and newest run.

    Expects the job annotated with ``last_run_id``, ``last_run_status`` and
    ``last_run_at`` (as :func:`stayy.services.job_list` returns them).
    """

    trigger = serializers.CharField(read_only=True, help_text="Machine form, e.g. 'interval:30'.")
    schedule = serializers.CharField(read_only=True, help_text="The trigger in words.")
    last_run = serializers.SerializerMethodField()
    schedule_source = serializers.ChoiceField(
        choices=["code", "env", "edited"],
        read_only=True,
        help_text="Where the schedule comes from: the code, JOB_OVERRIDES, or a live edit (which wins).",
    )
    url = serializers.HyperlinkedIdentityField(view_name=f"{NAMESPACE}:job-detail", lookup_field="name")

    class Meta:
        model = Job
        fields = [
            "name",
            "description",
            "trigger",
            "schedule",
            "timeout",
            "misfire_grace",
            "overlap",
            "retries",
            "retry_backoff",
            "atomic",
            "jitter",
            "alert_after",
            "enabled",
            "paused",
            "next_run_at",
            "schedule_source",
            "edits",
            "edited_by",
            "edited_at",
            "last_run",
            "url",
        ]
        read_only_fields = fields

    @extend_schema_field(LastRunSerializer(allow_null=True))
    def get_last_run(self, job: Job) -> dict[str, Any] | None:
        run_id = getattr(job, "last_run_id", None)
        if run_id is None:
            return None
        return LastRunSerializer(
            {"id": run_id, "status": job.last_run_status, "scheduled_for": job.last_run_at}  # type: ignore[attr-defined]
        ).data


class JobCatalogSerializer(serializers.Serializer[Any]):
    """Every registered job, who leads the job servers, and where the lease lives."""

    leader = LeaderSerializer(allow_null=True, read_only=True)
    lease_backend = serializers.ChoiceField(choices=["redis", "database"], read_only=True)
    jobs = JobSerializer(many=True, read_only=True)


class RunUrlField(serializers.HyperlinkedIdentityField):
    """The URL of a run, which sits under its job: ``jobs/{job_name}/runs/{id}/``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(view_name=f"{NAMESPACE}:job-run-detail", **kwargs)

    def get_url(self, obj: Any, view_name: str, request: Any, format: str | None) -> str:
        return run_url(obj, request=request, format=format)


class JobRunSerializer(serializers.ModelSerializer[JobRun]):
    """One run of a job: executed, or a tick that was skipped or missed, with why."""

    url = RunUrlField()

    class Meta:
        model = JobRun
        fields = [
            "id",
            "job_name",
            "scheduled_for",
            "started_at",
            "finished_at",
            "status",
            "duration_ms",
            "host",
            "pid",
            "trigger",
            "attempt",
            "retry_of",
            "requested_by",
            "error",
            "summary",
            "url",
        ]
        read_only_fields = fields


class JobRunDetailSerializer(JobRunSerializer):
    """One run of a job, with the traceback of its failure and the lines it logged."""

    class Meta(JobRunSerializer.Meta):
        fields = [*JobRunSerializer.Meta.fields, "traceback", "log"]
        read_only_fields = fields


class RunRequestedSerializer(serializers.Serializer[Any]):
    """A manual run request, queued for the leader; follow ``url`` to see it start and finish."""

    run_id = serializers.IntegerField()
    status = serializers.CharField(help_text="Always 'queued': the leader has not claimed it yet.")
    url = serializers.URLField()


class JobEditSerializer(serializers.Serializer):
    """A live edit: any of the editable options, in JOB_OVERRIDES' keys and terms.

    The values are checked by the job runtime with the same rules and words as ``JOB_OVERRIDES``;
    here only the shape: a JSON object of known keys (an empty one changes nothing).
    """

    interval = serializers.JSONField(required=False, help_text="Seconds between ticks (a whole number).")
    cron = serializers.JSONField(required=False, help_text="A 5-field crontab line.")
    timezone = serializers.JSONField(required=False, help_text="IANA time zone of the crontab line.")
    enabled = serializers.JSONField(required=False, help_text="true or false.")
    timeout = serializers.JSONField(required=False, help_text="Seconds.")
    retries = serializers.JSONField(required=False, help_text="0 to 100.")
    overlap = serializers.JSONField(required=False, help_text="'skip' or 'queue'.")
    jitter = serializers.JSONField(required=False, help_text="Seconds (0: none).")
    alert_after = serializers.JSONField(
        required=False, help_text="Seconds without a success before the job is reported overdue."
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object of options."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            allowed = ", ".join(self.fields)
            raise serializers.ValidationError(
                {key: [f"This option cannot be edited; editable: {allowed}."] for key in unknown}
            )
        return dict(data)


#: The edit's documented shape. The runtime checks more than a schema can say (a crontab line's
#: fields, a time zone's name) and answers those with a 400 naming the field.
JOB_EDIT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "interval": {"type": "integer", "minimum": 1, "description": "Seconds between ticks."},
        "cron": {"type": "string", "description": "A 5-field crontab line, e.g. '0 3 * * *'."},
        "timezone": {"type": "string", "description": "IANA time zone of the crontab line."},
        "enabled": {"type": "boolean"},
        "timeout": {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1e9,
            "description": "Seconds.",
        },
        "retries": {"type": "integer", "minimum": 0, "maximum": 100},
        "overlap": {"type": "string", "enum": ["skip", "queue"]},
        "jitter": {"type": "number", "minimum": 0, "maximum": 1e9, "description": "Seconds (0: none)."},
        "alert_after": {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1e9,
            "description": "Seconds without a success before the job is reported overdue.",
        },
    },
}


class JobEditSchema(OpenApiSerializerExtension):
    """The edit is documented by its JSON schema, not by the fields that only carry its values."""

    target_class = JobEditSerializer

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        # A copy: the schema's post-processing hooks rewrite what they are given in place.
        return copy.deepcopy(JOB_EDIT_SCHEMA)
