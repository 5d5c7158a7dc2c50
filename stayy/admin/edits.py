"""The job page's edit form: change a job's schedule and options live, preview first, or reset them.

The form shows the job's options as they are now; only the fields changed
become an edit. "Preview" checks the edit (with the words ``JOB_OVERRIDES``
uses) and shows the schedule in words and its next five fire times; only
then can it be saved. Saving and resetting call :mod:`stayy.services`, which
stores and audits the edit for the leader to apply within a second.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from stayy import services

BOOLEAN = [("true", "yes"), ("false", "no")]


class JobEditForm(forms.Form):
    """The editable options, pre-filled with the job's current values (one of interval or cron)."""

    interval = forms.IntegerField(required=False, help_text="Seconds between ticks; or give a crontab line.")
    cron = forms.CharField(required=False, help_text="5 fields, e.g. '0 3 * * *'; or give an interval.")
    timezone = forms.CharField(required=False, help_text="IANA time zone of the crontab line (default UTC).")
    enabled = forms.ChoiceField(choices=BOOLEAN)
    timeout = forms.FloatField(help_text="Seconds.")
    retries = forms.IntegerField(help_text="0 to 100.")
    overlap = forms.ChoiceField(choices=[("skip", "skip"), ("queue", "queue")])
    jitter = forms.FloatField(help_text="Seconds a tick may start late (0: none).")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("interval") is not None and data.get("cron"):
            raise forms.ValidationError("Give an interval or a crontab line, not both.")
        if data.get("interval") is None and not data.get("cron"):
            raise forms.ValidationError("Give an interval or a crontab line.")
        return data


def current_values(job: Any) -> dict[str, Any]:
    """The form's initial values: the job's options as the catalog holds them."""
    values: dict[str, Any] = {
        "enabled": "true" if job.enabled else "false",
        "timeout": job.timeout,
        "retries": job.retries,
        "overlap": job.overlap,
        "jitter": job.jitter,
    }
    kind, _, rest = job.trigger.partition(":")
    if kind == "interval":
        values["interval"] = int(rest)
    else:
        expression, _, zone = rest.rpartition("@")
        values["cron"], values["timezone"] = (expression, zone) if expression else (rest, "UTC")
    return values


def changes_from(form: JobEditForm, initial: dict[str, Any]) -> dict[str, Any]:
    """The fields whose value differs from the job's current one, in JOB_OVERRIDES' terms."""
    data = form.cleaned_data
    changes: dict[str, Any] = {}
    if data.get("interval") is not None:
        if data["interval"] != initial.get("interval"):
            changes["interval"] = data["interval"]
    elif (data["cron"], data["timezone"] or "UTC") != (initial.get("cron"), initial.get("timezone")):
        changes["cron"] = data["cron"]
        changes["timezone"] = data["timezone"] or "UTC"
    if data["enabled"] != initial["enabled"]:
        changes["enabled"] = data["enabled"] == "true"
    for key in ("timeout", "retries", "overlap", "jitter"):
        if data[key] != initial[key]:
            changes[key] = data[key]
    return changes


def edit_view(admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """GET: the form. POST ``_preview``: the checked edit with its schedule; POST ``_save``: save it."""
    if not request.user.has_perm("stayy.change_job"):
        raise PermissionDenied
    name = unquote(object_id)
    try:
        job = services.job_get_with_last_run(name=name)
    except services.JobNotFound:
        job = None
    if job is None:
        raise Http404(f"No job {name!r}.")
    initial = current_values(job)
    form = JobEditForm(request.POST if request.method == "POST" else None, initial=initial)
    preview = None
    if request.method == "POST" and form.is_valid():
        changes = changes_from(form, initial)
        if not changes:
            form.add_error(None, "Nothing changed.")
        else:
            try:
                if "_save" in request.POST:
                    services.job_edit(name=job.name, changes=changes, user=request.user)
                    admin.message_user(
                        request,
                        f"Saved {', '.join(changes)} of {job.name}; the leader applies it within seconds.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:stayy_job_change", args=[quote(job.name)]))
                preview = services.job_edit_preview(name=job.name, changes=changes)
            except services.InvalidEdit as exc:
                for field, problem in exc.errors.items():
                    form.add_error(field if field in form.fields else None, problem)
    context = {
        **admin.admin_site.each_context(request),
        "opts": admin.opts,
        "title": f"Edit {job.name}",
        "job": job,
        "form": form,
        "preview": preview,
    }
    return TemplateResponse(request, "admin/stayy/job/edit.html", context)


def reset_view(admin: ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """POST: drop the job's live edits (back to its code and JOB_OVERRIDES)."""
    page = reverse("admin:stayy_job_change", args=[object_id])
    if request.method != "POST":
        return HttpResponseRedirect(page)
    if not request.user.has_perm("stayy.change_job"):
        raise PermissionDenied
    name = unquote(object_id)
    try:
        services.job_reset(name=name, user=request.user)
    except services.JobNotFound as exc:
        raise Http404(str(exc)) from None
    admin.message_user(
        request, f"Reset {name} to its code and JOB_OVERRIDES; applied within seconds.", messages.SUCCESS
    )
    return HttpResponseRedirect(page)
