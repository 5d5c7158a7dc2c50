"""Admin of the users domain: Django's user admin plus the fields mirrored from upstream.

As in the API, only a superuser grants or takes staff or superuser status,
groups or permissions, or changes or deletes a superuser. A mirrored user's
email, display name and source belong to the sync and are read-only here.
Unticking *active* deactivates a user here, which the sync never undoes;
ticking it lifts that (also the two actions of the list). The change form
carries the user's ``version``: saved after anyone (or the sync) changed the
user, it is refused with a message, never applied over their change.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from users.models import User
from users.services import accounts

STALE_FORM = (
    "This user was changed after you opened this page (by someone else or by the sync)."
    " Open it again to see the current values, then make your change."
)


class UserChangeForm(DjangoUserChangeForm):
    """Django's change form, refusing a stale save and a mirror the upstream deleted being switched on."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    class Meta(DjangoUserChangeForm.Meta):  # type: ignore[name-defined]
        model = User

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        # The instance is the row as read, and locked, by this request (UserAdmin.get_object).
        if cleaned.get("version") is not None and cleaned["version"] != self.instance.version:
            raise forms.ValidationError(STALE_FORM, code="stale")
        if "is_active" in self.changed_data and cleaned.get("is_active"):
            problem = accounts.user_reactivation_refused(user=self.instance)
            if problem:
                self.add_error("is_active", problem)
        return cleaned


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    list_display = [
        "email",
        "display_name",
        "source",
        "is_active",
        "locally_deactivated",
        "is_staff",
        "synced_at",
    ]
    list_filter = ["source", "is_active", "upstream_deleted", "is_staff"]
    search_fields = ["email", "display_name", "username", "external_id"]
    ordering = ["id"]
    actions = ["deactivate_users", "reactivate_users"]
    # Written by the sync, by a deactivation and by the database, never by hand.
    readonly_fields = [
        "external_id",
        "synced_at",
        "upstream_deleted",
        "deactivated_at",
        "deactivated_by",
        "created_at",
        "updated_at",
        "last_login",
        "date_joined",
    ]
    privilege_fields = ["is_staff", "is_superuser", "groups", "user_permissions"]
    fieldsets = (
        (None, {"fields": ("username", "password", "version")}),
        ("Profile", {"fields": ("email", "display_name", "first_name", "last_name")}),
        ("Origin", {"fields": ("source", "external_id", "synced_at", "upstream_deleted")}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "deactivated_at",
                    "deactivated_by",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
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

    @admin.display(boolean=True, description="deactivated here")
    def locally_deactivated(self, obj: User) -> bool:
        return obj.locally_deactivated

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.is_mirror:
            fields += ["source", *accounts.SYNC_OWNED]
        if not request.user.is_superuser:
            fields += self.privilege_fields
        return fields

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        user = super().get_object(request, object_id, from_field)
        # A save holds the row from the form's checks to its write (the admin runs it in a transaction),
        # so that nothing, the sync included, changes it in between.
        if user is not None and request.method == "POST" and transaction.get_connection().in_atomic_block:
            return accounts.user_get_for_change(user_id=user.pk)
        return user

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        accounts.user_admin_save(user=obj, changed=form.changed_data, by=request.user.get_username())

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Deactivate selected users (the sync keeps them off)", permissions=["change"])
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._activation_set(request, queryset, active=False)

    @admin.action(
        description="Reactivate selected users (lifts a deactivation made here)", permissions=["change"]
    )
    def reactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._activation_set(request, queryset, active=True)

    def _activation_set(self, request: HttpRequest, queryset: QuerySet[User], *, active: bool) -> None:
        users = [user for user in queryset if self.has_change_permission(request, user)]
        changed, refused = accounts.users_activation_set(
            users=users, active=active, by=request.user.get_username()
        )
        verb = "reactivated" if active else "deactivated"
        self.message_user(request, f"{changed} user(s) {verb}.", messages.SUCCESS)
        for refusal in refused:
            self.message_user(request, refusal, messages.WARNING)
        skipped = queryset.count() - len(users)
        if skipped:
            self.message_user(request, f"{skipped} superuser(s) left as they are.", messages.WARNING)
