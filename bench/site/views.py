"""Benchmark 3's comparisons: the first page of users by hand, and the product's list rendered by orjson.

``users_baseline`` answers with ``values()`` + ``JsonResponse``, by hand.

It does the same work as ``GET /api/users/`` for a staff token: one token
lookup, the count, 50 rows, the same fields and envelope (count, next,
previous, results) — and nothing else (no DRF request/response objects,
no serializer, no filter backends). ``users_orjson`` is the service's own
list view, with its serializer, rendered by drf-orjson-renderer's
``ORJSONRenderer`` in place of DRF's ``JSONRenderer``: the same fields, the
same answer. Bench-only code: not part of the service.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from users.models import User
from users.serializers import UserSerializer
from users.views import UserViewSet

PAGE_SIZE = 50
FIELDS = tuple(UserSerializer.Meta.fields)  # the API's own fields, so both answer the same rows


def users_baseline(request: HttpRequest) -> JsonResponse:
    header = request.headers.get("Authorization", "")
    key = header[len("Token ") :] if header.startswith("Token ") else ""
    try:
        user = TokenAuthentication().authenticate_credentials(key.encode())[0] if key else None
    except AuthenticationFailed:
        user = None
    if user is None or not user.is_staff:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    count = User.objects.count()
    rows = list(User.objects.order_by("id").values(*FIELDS)[:PAGE_SIZE])
    next_url = request.build_absolute_uri("?page=2") if count > PAGE_SIZE else None
    return JsonResponse({"count": count, "next": next_url, "previous": None, "results": rows})


class OrjsonUserViewSet(UserViewSet):
    renderer_classes = [ORJSONRenderer]


users_orjson = OrjsonUserViewSet.as_view({"get": "list"})
