"""Sign-in limits (django-axes), shared by the API sign-in and the admin login: failures count per
(username, client address) and per client address, in the database; past a limit the client gets 429
with ``Retry-After`` until the cool-off has passed, and staff can clear a lockout in the admin."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"
ADMIN_LOGIN = "/admin/login/"
GOOD = {"username": "plain", "password": "plain-pass-123"}
BAD = {"username": "plain", "password": "wrong"}
HERE = "203.0.113.7"
ELSEWHERE = "198.51.100.9"


@pytest.fixture
def limits(settings) -> Callable[..., None]:
    """Set the limits for the test: failures per (username, address), per address, cool-off seconds."""

    def set_limits(per_user: int, *, per_address: int = 1000, cool_off: float = 60, proxies: int = 0) -> None:
        settings.AXES_FAILURE_LIMIT = per_user
        settings.SIGN_IN_ADDRESS_FAILURE_LIMIT = per_address
        settings.AXES_COOLOFF_TIME = timedelta(seconds=cool_off)
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": proxies}

    return set_limits


def post(body: dict[str, str], *, address: str = HERE, **extra: Any) -> Any:
    return APIClient().post(TOKEN_URL, body, format="json", REMOTE_ADDR=address, **extra)


def admin_login(username: str, password: str, *, address: str = HERE) -> Any:
    return Client().post(
        ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def failures(**where: Any) -> int:
    return AccessAttempt.objects.filter(**where).aggregate(total=Sum("failures_since_start"))["total"] or 0


def test_the_defaults_lock_a_username_at_an_address_after_five_failures(plain_user):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.SIGN_IN_ADDRESS_FAILURE_LIMIT == 50
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 900
    codes = [post(BAD).status_code for _ in range(6)]
    assert codes == [400] * 4 + [429, 429]


def test_429_is_json_with_retry_after_and_even_the_right_password_is_refused(plain_user, limits):
    limits(3, cool_off=60)
    assert [post(BAD).status_code for _ in range(2)] == [400, 400]
    assert post(BAD).status_code == 429  # the failure that reaches the limit is refused already

    refused = post(GOOD)

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json() == {
        "detail": f"Too many failed sign-ins; try again in {refused['Retry-After']} seconds."
    }


def test_successful_sign_ins_are_not_counted_and_do_not_reset_the_count(plain_user, limits):
    limits(3)
    assert [post(GOOD).status_code for _ in range(5)] == [200] * 5
    assert [post(BAD).status_code for _ in range(2)] == [400] * 2
    assert post(GOOD).status_code == 200
    assert post(BAD).status_code == 429


def test_a_request_without_credentials_checks_no_password_and_is_not_counted(plain_user, limits):
    limits(2)
    assert [post({}).status_code for _ in range(5)] == [400] * 5
    assert failures() == 0
    assert post(GOOD).status_code == 200


def test_sign_ins_are_allowed_again_once_the_cool_off_has_passed(plain_user, limits):
    limits(2, cool_off=2)
    assert [post(BAD).status_code for _ in range(2)] == [400, 429]
    refused = post(GOOD)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) <= 2
    time.sleep(math.ceil(float(refused["Retry-After"])) + 0.2)
    assert post(GOOD).status_code == 200


def test_sign_ins_refused_during_a_lockout_do_not_extend_it(plain_user, limits):
    limits(2, cool_off=3)
    post(BAD)
    post(BAD)
    time.sleep(1.5)
    assert post(BAD).status_code == 429
    assert failures(username="plain") == 2
    time.sleep(1.7)
    assert post(GOOD).status_code == 200


def test_the_failures_are_counted_in_the_database(plain_user, limits):
    """The attempts are rows in the shared database, so every worker and host sees the same counts."""
    limits(5)
    for _ in range(3):
        post(BAD)
    attempt = AccessAttempt.objects.get(username="plain", ip_address=HERE)
    assert attempt.failures_since_start == 3
    assert "wrong" not in attempt.post_data


def test_a_locked_username_still_signs_in_from_another_address(plain_user, limits):
    limits(2)
    for _ in range(2):
        post(BAD)
    assert post(GOOD).status_code == 429
    assert post(GOOD, address=ELSEWHERE).status_code == 200


def test_guessing_usernames_behind_a_shared_address_does_not_lock_out_the_other_users_there(
    plain_user, staff_user, limits
):
    limits(3, per_address=50)
    guessed = ["admin", "root", "alice", "bob", "staff"]
    for name in guessed:
        for _ in range(3):
            post({"username": name, "password": "guess"})
    # Each guessed name is locked at this address (the real "staff" too: its password was guessed)...
    assert post({"username": "staff", "password": "staff-pass-123"}).status_code == 429
    assert post({"username": "staff", "password": "staff-pass-123"}, address=ELSEWHERE).status_code == 200
    # ...while another user behind the same address signs in as usual.
    assert post(GOOD).status_code == 200
    assert failures(ip_address=HERE) == 15


def test_past_the_address_limit_every_sign_in_from_that_address_is_refused(plain_user, limits):
    limits(3, per_address=6)
    for name in ("admin", "root"):
        for _ in range(2):
            assert post({"username": name, "password": "guess"}).status_code == 400
    assert post({"username": "alice", "password": "guess"}).status_code == 400
    assert post({"username": "bob", "password": "guess"}).status_code == 429  # the 6th from the address

    refused = post(GOOD)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert post(GOOD, address=ELSEWHERE).status_code == 200


def test_a_client_cannot_dodge_it_with_x_forwarded_for(plain_user, limits):
    """Without trusted proxies, X-Forwarded-For is ignored: it is whatever the client wrote."""
    limits(2, proxies=0)
    for i in range(2):
        post(BAD, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert post(GOOD, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
    assert AccessAttempt.objects.get().ip_address == HERE


def test_behind_a_trusted_proxy_the_forwarded_address_counts(plain_user, limits):
    limits(2, proxies=1)
    for _ in range(2):
        post(BAD, HTTP_X_FORWARDED_FOR="192.0.2.250, 192.0.2.1")
    assert post(GOOD, HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 429
    # Another client behind the same proxy (same REMOTE_ADDR) is not blocked.
    assert post(GOOD, HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 200


def test_a_forwarded_entry_that_is_no_address_counts_as_the_proxys_address(plain_user, limits):
    limits(2, proxies=1)
    for _ in range(2):
        assert post(BAD, HTTP_X_FORWARDED_FOR="not-an-address").status_code in (400, 429)
    assert AccessAttempt.objects.get().ip_address == HERE
    assert post(GOOD, HTTP_X_FORWARDED_FOR="<script>").status_code == 429


def test_revoking_a_token_is_not_limited(plain_user, limits):
    limits(1)
    token = post(GOOD).json()["token"]
    assert post(BAD).status_code == 429
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.delete(TOKEN_URL, REMOTE_ADDR=HERE).status_code == 204


def test_the_admin_login_is_limited_too_and_shares_the_count_with_the_api(staff_user, limits):
    limits(4, cool_off=60)
    for _ in range(2):
        page = admin_login("staff", "wrong")
        assert page.status_code == 200 and b"Please enter the correct username" in page.content
    for _ in range(2):
        post({"username": "staff", "password": "wrong"})

    locked = admin_login("staff", "staff-pass-123")  # the right password, after four failures

    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= 60
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in Client().session
    assert post({"username": "staff", "password": "staff-pass-123"}).status_code == 429
    assert admin_login("staff", "staff-pass-123", address=ELSEWHERE).status_code == 302


def test_staff_see_the_lockout_in_the_admin_and_can_clear_it(plain_user, django_user_model, limits):
    limits(2)
    for _ in range(2):
        post(BAD)
    assert post(GOOD).status_code == 429
    admin = django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password="x"
    )
    staff = Client()
    staff.force_login(admin)

    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"plain" in listing.content and HERE.encode() in listing.content

    attempt = AccessAttempt.objects.get(username="plain")
    cleared = staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert cleared.status_code == 302
    assert post(GOOD).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_are_all_counted(plain_user, live_server, limits):
    """Real concurrent requests (threads against a threaded HTTP server, each with its own database
    connection): every failure lands in the count, none overwrites another."""
    limits(1000, per_address=1000)
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)
    codes: list[int] = []

    def guess() -> None:
        start.wait()
        for _ in range(per_thread):
            request = urllib.request.Request(
                live_server.url + TOKEN_URL,
                data=json.dumps(BAD).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    codes.append(answer.status)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert codes == [400] * (threads * per_thread)
    assert failures(username="plain", ip_address="127.0.0.1") == threads * per_thread


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_stop_at_the_limit(plain_user, live_server, limits):
    """With a limit of 5 and 40 concurrent wrong guesses, at most one guess per concurrent request past
    the limit gets a password check; the rest are refused, and the right password is refused after."""
    limits(5, per_address=1000)
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)
    codes: list[int] = []

    def send(body: dict[str, str]) -> int:
        request = urllib.request.Request(
            live_server.url + TOKEN_URL,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def guess() -> None:
        start.wait()
        for _ in range(per_thread):
            codes.append(send(BAD))

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    counted = failures(username="plain", ip_address="127.0.0.1")
    assert 5 <= counted <= 5 + threads
    assert codes.count(429) >= threads * per_thread - counted
    assert send(GOOD) == 429


@pytest.mark.sqlite
@pytest.mark.django_db(transaction=True)
def test_on_the_sqlite_default_concurrent_failures_count_and_lock(plain_user, live_server, limits):
    """The SQLite default without Redis (``make run``): the limiter and its counts work the same."""
    limits(30, per_address=1000)

    def send(body: dict[str, str]) -> int:
        request = urllib.request.Request(
            live_server.url + TOKEN_URL,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    codes: list[int] = []
    start = threading.Barrier(4)

    def guess() -> None:
        start.wait()
        codes.extend(send(BAD) for _ in range(5))

    workers = [threading.Thread(target=guess) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert codes == [400] * 20
    assert failures(username="plain") == 20
    token = send(GOOD)
    assert token == 200
    limits(21)
    assert send(BAD) == 429
    assert send(GOOD) == 429
