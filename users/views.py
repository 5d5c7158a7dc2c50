"""HTTP interface of the users domain: parse the request, call a service, shape the answer.

Permissions: the user directory is for staff holding the user model's
permissions (``view_user`` to read, ``add_``/``change_``/``delete_user`` to
write; only a superuser touches staff or superuser status or a superuser), the
sync trigger for staff holding ``stayy.change_job``; a signed-in user may read
and edit their own profile and read the stats.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from knox.auth import TokenAuthentication
from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from config.permissions import StaffModelPermissions, StaffWith, SuperuserGuard
from stayy import services as job_services
from users.filters import UserFilter
from users.models import User
from users.pagination import UserPagination
from users.serializers import (
    AuthTokenSerializer,
    DetailSerializer,
    JobRunQueuedSerializer,
    ProfileUpdateSerializer,
    TokenSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserStatsSerializer,
    UserUpdateSerializer,
)
from users.services import accounts

SYNC_JOB_NAME = "users.sync_third_party_users"
SIGN_IN_FAILED = "Unable to log in with provided credentials."


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Temporarily unavailable."
    default_code = "service_unavailable"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the users."
    default_code = "conflict"


@contextmanager
def service_errors_as_400() -> Iterator[None]:
    """Services raise Django's ValidationError, which DRF's handler would turn into a 500, and
    UserConflict, a 409 keyed by field like a 400."""
    try:
        yield
    except DjangoValidationError as exc:
        raise ValidationError(as_serializer_error(exc)) from None
    except accounts.UserConflict as exc:
        raise Conflict(exc.errors) from None


CONFLICT = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The users' current state refuses the request; the body names each field and why"
    " (a taken email or username, a field the sync owns, a stale `version`).",
)


class TokenObtainView(APIView):
    """Exchange a username and password for a new API token (POST), or revoke the caller's (DELETE).

    Sign-ins go through the limiter the admin login shares (django-axes): past the
    limits, the request is answered 429 with ``Retry-After`` by axes' middleware
    (``users.lockout``), whatever this view answered.
    """

    def get_authenticators(self) -> list[BaseAuthentication]:
        # Sign-in: credentials travel in the body; a stale session cookie must not
        # demand a CSRF token, nor a stale token header get in the way.
        # Revoking: the token in the header is the one revoked.
        return [TokenAuthentication()] if self._method() == "DELETE" else []

    def get_permissions(self) -> list[BasePermission]:
        return [IsAuthenticated()] if self._method() == "DELETE" else [AllowAny()]

    def _method(self) -> str:
        # Schema generation builds the view without a request.
        return getattr(getattr(self, "request", None), "method", "") or ""

    @extend_schema(
        summary="Exchange a username and password for a new API token",
        description=(
            "Each sign-in issues a new token, valid until `expiry` (`API_TOKEN_TTL_DAYS` after it was "
            "issued; use does not extend it). Send it as `Authorization: Token <token>`. A password "
            "change revokes all of the user's tokens."
        ),
        request=AuthTokenSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(description="Missing fields, or wrong credentials."),
            429: OpenApiResponse(
                DetailSerializer,
                description="Too many failed sign-ins (this username from this address, or this address); "
                "see Retry-After.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The limiter counts on, and marks, Django's request (axes' middleware reads it).
        user = accounts.auth_sign_in(request=request._request, **serializer.validated_data)
        if user is None:
            raise ValidationError({"non_field_errors": [SIGN_IN_FAILED]})
        token, expiry = accounts.auth_token_obtain(user=user)
        return Response(TokenSerializer({"token": token, "expiry": expiry}).data)

    @extend_schema(
        summary="Revoke your API token (sign out everywhere it is used)",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request) -> Response:
        # knox's TokenAuthentication put the caller's token row in request.auth.
        accounts.auth_token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List users (staff with view_user)"),
    create=extend_schema(
        summary="Create a local user (staff with add_user)",
        request=UserCreateSerializer,
        responses={201: UserSerializer, 409: CONFLICT},
    ),
    retrieve=extend_schema(summary="Get a user (staff with view_user)"),
    partial_update=extend_schema(
        summary="Change a user (staff with change_user)",
        request=UserUpdateSerializer,
        responses={200: UserSerializer, 409: CONFLICT},
    ),
    destroy=extend_schema(
        summary="Deactivate a user (staff with delete_user); the row is kept, and the sync keeps it off",
        responses={204: None},
    ),
)
class UserViewSet(GenericViewSet):
    serializer_class = UserSerializer
    pagination_class = UserPagination
    filterset_class = UserFilter
    search_fields = ["email", "display_name", "username"]
    ordering_fields = ["id", "email", "created_at", "updated_at"]
    ordering = ["id"]
    # Any segment: /users/me/, /users/stats/ and /users/sync/ are routed before the
    # detail routes, and /users/abc/ reaches the view, which answers a JSON 404.
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return accounts.user_list()

    def get_permissions(self) -> list[BasePermission]:
        if self.action in ("me", "stats"):
            return [IsAuthenticated()]
        if self.action == "sync":
            return [StaffWith("stayy.change_job")]
        return [StaffModelPermissions(), SuperuserGuard()]

    def _user(self, pk: str) -> User:
        user = accounts.user_get(user_id=int(pk)) if pk.isascii() and pk.isdigit() else None
        if user is None:
            raise NotFound("No user with this id.")
        return user

    def list(self, request: Request) -> Response:
        users = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(users)
        return self.get_paginated_response(UserSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors_as_400():
            user = accounts.user_create(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(UserSerializer(self._user(pk)).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        user = self._user(pk)
        self.check_object_permissions(request, user)
        serializer = UserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors_as_400():
            user = accounts.user_update(
                user=user, by=request.user.get_username(), **serializer.validated_data
            )
        return Response(UserSerializer(user).data)

    def destroy(self, request: Request, pk: str) -> Response:
        user = self._user(pk)
        self.check_object_permissions(request, user)
        with service_errors_as_400():
            accounts.user_deactivate(user=user, by=request.user.get_username())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], summary="Your own profile", responses=UserSerializer)
    @extend_schema(
        methods=["PATCH"],
        summary="Change your display name or email (not of a mirrored user: the sync sets them)",
        request=ProfileUpdateSerializer,
        responses={200: UserSerializer, 409: CONFLICT},
    )
    @action(detail=False, methods=["get", "patch"])
    def me(self, request: Request) -> Response:
        user = cast(User, request.user)
        if request.method == "PATCH":
            serializer = ProfileUpdateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            with service_errors_as_400():
                user = accounts.user_profile_update(user=user, **serializer.validated_data)
        return Response(UserSerializer(user).data)

    @extend_schema(summary="User counts (cached, refreshed every 30 s)", responses=UserStatsSerializer)
    @action(detail=False, methods=["get"])
    def stats(self, request: Request) -> Response:
        return Response(UserStatsSerializer(accounts.user_stats_get()).data)

    @extend_schema(
        summary="Queue a sync from the third-party user service (staff)",
        request=None,
        responses={202: JobRunQueuedSerializer, 503: DetailSerializer},
    )
    @action(detail=False, methods=["post"])
    def sync(self, request: Request) -> Response:
        # Queued, never run here: the job leader claims the run within seconds.
        try:
            run = job_services.job_request_run(name=SYNC_JOB_NAME, requested_by=request.user.get_username())
        except job_services.JobNotFound:
            raise ServiceUnavailable(
                f"The job {SYNC_JOB_NAME} is not registered in this deployment."
            ) from None
        url = request.build_absolute_uri(f"/api/jobs/{SYNC_JOB_NAME}/runs/{run.pk}/")
        body = {"run_id": run.pk, "status": run.status, "url": url}
        return Response(JobRunQueuedSerializer(body).data, status=status.HTTP_202_ACCEPTED)
