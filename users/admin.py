"""Admin of the users domain: Django's user admin plus the fields mirrored from upstream."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from users.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["email", "display_name", "source", "is_active", "is_staff", "synced_at"]
    list_filter = ["source", "is_active", "is_staff"]
    search_fields = ["email", "display_name", "username", "external_id"]
    ordering = ["id"]
    # Written by the sync and by the database, never by hand.
    readonly_fields = ["external_id", "synced_at", "created_at", "updated_at", "last_login", "date_joined"]
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
