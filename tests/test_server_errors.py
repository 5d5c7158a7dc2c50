"""What a request that raises gets back: 503 + Retry-After while PostgreSQL is unreachable, JSON 500s."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client, RequestFactory

from config.errors import server_error
from tests.support import free_port


@pytest.fixture
def database_unreachable():
    """Point this process's connection at a port where nothing listens, then restore it."""
    saved = connection.settings_dict["PORT"], connection.settings_dict["HOST"]
    connection.close()
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", free_port()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"], connection.settings_dict["HOST"] = saved


@pytest.mark.django_db(transaction=True)
def test_api_answers_503_while_the_database_is_unreachable(settings, database_unreachable):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    # Token authentication reads the database: the connection is refused.
    response = client.get("/api/users/me/", HTTP_AUTHORIZATION="Token whatever")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"detail": "The database is unavailable; try again shortly."}


@pytest.mark.django_db
def test_other_errors_stay_500_json_under_api_and_html_elsewhere():
    factory = RequestFactory()
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        api = server_error(factory.get("/api/users/"))
        admin = server_error(factory.get("/admin/"))
    assert api.status_code == 500
    assert api["Content-Type"] == "application/json"
    assert admin.status_code == 500
    assert admin["Content-Type"].startswith("text/html")
