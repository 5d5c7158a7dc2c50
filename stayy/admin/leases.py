"""Admin of the leader lease rows (one per JOB_NAME)."""

from __future__ import annotations

from django.contrib import admin

from stayy import services
from stayy.admin.common import ReadOnlyAdmin
from stayy.models import LeaderLease


@admin.register(LeaderLease)
class LeaderLeaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "leading", "host", "pid", "backend", "since", "expires_at"]
    fields = ["name", "leading", "holder", "host", "pid", "backend", "since", "expires_at"]
    readonly_fields = ["leading"]

    @admin.display(description="leading now", boolean=True)
    def leading(self, lease: LeaderLease) -> bool:
        # One row per JOB_NAME: a query per row is a query or two.
        current = services.leader_get(name=lease.name)
        return current is not None and current.holder == lease.holder
