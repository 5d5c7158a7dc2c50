"""Admin of the alert deliveries: each alert per channel, its status, attempts and last error."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from stayy.admin.common import ReadOnlyAdmin
from stayy.models import AlertDelivery


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "job_name", "event", "channel", "status", "attempts", "delivered_at", "run"]
    list_filter = ["status", "event", "channel"]
    search_fields = ["job_name"]
    fields = [
        "event", "job_name", "run", "channel", "status", "attempts", "last_error",
        "created_at", "next_attempt_at", "delivered_at", "payload",
    ]  # fmt: skip
    readonly_fields = ["run"]
    show_full_result_count = False

    @admin.display(description="run")
    def run(self, delivery: AlertDelivery) -> SafeString | str:
        if delivery.run_id is None:
            return "-"
        url = reverse("admin:stayy_jobrun_change", args=[delivery.run_id])
        return format_html('<a href="{}">{}</a>', url, delivery.run_id)
