"""API docs served with their own assets, the docs switch, and static files under gunicorn without debug."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.observability.support import child_env, gunicorn, this_run_database_url


@pytest.mark.django_db
def test_swagger_ui_is_public_by_default_and_its_assets_are_served_locally(client: Client) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("swagger-ui" in asset for asset in assets), html
    assert not re.search(r'(?:src|href)="https?://', html), "docs must not load anything from a CDN"
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
    assert client.get("/api/schema/").status_code == 200


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_without_debug_admin_assets_are_served_and_docs_can_be_staff_only(tmp_path) -> None:
    env = child_env(
        DATABASE_URL=this_run_database_url(),
        GUNICORN_WORKERS="1",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="test-secret-key-for-a-production-like-process-0123456789",
        API_DOCS_PUBLIC="0",
    )
    with gunicorn(env=env, log_path=tmp_path / "gunicorn.log") as server:
        login = server.get("/admin/login/")
        assert login.status == 200
        stylesheets = re.findall(r'href="(/static/admin/css/[^"]+\.css)"', login.body.decode())
        assert stylesheets
        for sheet in stylesheets:
            assert server.get(sheet).status == 200, sheet
        assert server.get("/api/schema/").status in (401, 403)
        assert server.get("/api/docs/").status in (401, 403)
