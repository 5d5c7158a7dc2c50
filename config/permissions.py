"""Who may call the staff API: staff accounts holding Django's model permissions.

The API asks for the same permissions as the admin: ``view_<model>`` to read,
``add_``, ``change_`` and ``delete_<model>`` to write. :class:`StaffModelPermissions`
maps an endpoint to them by its HTTP method; an endpoint that acts (run now,
pause, resume) asks for one named permission with :class:`StaffWith`. Only a
superuser may grant or take staff or superuser status, or act on a superuser
(:class:`SuperuserGuard`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions, IsAdminUser
from rest_framework.request import Request
from rest_framework.serializers import BooleanField
from rest_framework.views import APIView

#: Fields whose change needs a superuser.
PRIVILEGE_FIELDS = frozenset({"is_staff", "is_superuser"})


class StaffModelPermissions(DjangoModelPermissions):
    """Staff only, with the model permission of the method; reading needs ``view_<model>``."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        return IsAdminUser().has_permission(request, view) and super().has_permission(request, view)


class StaffWith(BasePermission):
    """Staff only, holding one named permission (``"stayy.change_job"``) for every method."""

    def __init__(self, permission: str) -> None:
        self.permission = permission

    def has_permission(self, request: Request, view: APIView) -> bool:
        return IsAdminUser().has_permission(request, view) and request.user.has_perm(self.permission)


class SuperuserGuard(BasePermission):
    """Only a superuser grants or takes staff or superuser status, or changes or deletes a superuser."""

    message = "Only a superuser may change staff or superuser status, or act on a superuser."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS or request.user.is_superuser or request.method != "POST":
            return True
        # Creating: an account with staff or superuser status.
        return not any(_truthy(value) for value in _privileges(request).values())

    def has_object_permission(self, request: Request, view: APIView, obj: Model) -> bool:
        if request.method in SAFE_METHODS or request.user.is_superuser:
            return True
        if getattr(obj, "is_superuser", False):
            return False
        changes = _privileges(request)
        return all(_truthy(value) == bool(getattr(obj, field)) for field, value in changes.items())


def _privileges(request: Request) -> dict[str, Any]:
    data: Any = request.data
    if not hasattr(data, "keys"):
        return {}
    return {field: data.get(field) for field in PRIVILEGE_FIELDS if field in data}


def _truthy(value: Any) -> bool:
    """The value as the serializers read a boolean (``true``, ``"on"``, ``1``); anything else is false."""
    try:
        return bool(BooleanField().to_internal_value(value))
    except ValidationError:
        return False
