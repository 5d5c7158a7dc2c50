"""Admin of the users domain: Django's user admin plus the fields mirrored from upstream.

As in the API, only a superuser grants or takes staff or superuser status,
groups or permissions, or changes or deletes a superuser.
"""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from users.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["email", "display_name", "source", "is_active", "is_staff", "synced_at"]
    list_filter = ["source", "is_active", "is_staff"]
    search_fields = ["email", "display_name", "username", "external_id"]
    ordering = ["id"]
    # Written by the sync and by the database, never by hand.
    readonly_fields = ["external_id", "synced_at", "created_at", "updated_at", "last_login", "date_joined"]
    privilege_fields = ["is_staff", "is_superuser", "groups", "user_permissions"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("email", "display_name", "first_name", "last_name")}),
        ("Origin", {"fields": ("source", "external_id", "synced_at")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "password1", "password2"),
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += self.privilege_fields
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)
