"""The baseline of benchmark 3: the first page of users with ``values()`` + ``JsonResponse``, by hand.

It does the same work as ``GET /api/users/`` for a staff token: one token
lookup, the count, 50 rows, the same fields and envelope (count, next,
previous, results) — and nothing else (no DRF request/response objects,
no serializer, no filter backends). Bench-only code: not part of the service.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from users.models import User
from users.serializers import UserSerializer

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
