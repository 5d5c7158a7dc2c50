"""API docs served with their own assets, the docs switch, static files under gunicorn without debug,
and the project's docs (settings, layout, links) in agreement with the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.test import Client

from config import env as config_env
from tests.observability.support import child_env, gunicorn, this_run_database_url
from tests.support import PROJECT_DIR


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


# --- The project's docs agree with the code ----------------------------------------------------------

CONFIGURATION_DOC = PROJECT_DIR / "docs" / "configuration.md"
LAYOUT_DOC = PROJECT_DIR / "docs" / "layout.md"
# The typed readers of config/env.py; the first argument is the variable, the second (if any) its default.
#: Every reader of config/env.py: a new one counts without being listed here.
ENV_READERS = {name for name in dir(config_env) if name.startswith("env_")}
ANY_DEFAULT = object()  # the read's default is not a literal, or there is none: the doc says it in words


def service_sources() -> list[Path]:
    files = [PROJECT_DIR / "gunicorn.conf.py", PROJECT_DIR / "manage.py"]
    for package in ("config", "stayy", "users"):
        files += sorted((PROJECT_DIR / package).rglob("*.py"))
    return files


def _is_os_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _is_environ_get(func: ast.Attribute) -> bool:
    return func.attr == "get" and _is_os_environ(func.value)


def _literal_default(node: ast.expr | None) -> object:
    if node is None:
        return ANY_DEFAULT
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return ANY_DEFAULT
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, str) and value:
        return value
    return ANY_DEFAULT


def settings_read_by_the_service() -> dict[str, list[object]]:
    """Every environment variable the service's code reads, with the default of each read."""
    reads: dict[str, list[object]] = {}
    for path in service_sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            name: str | None = None
            default: ast.expr | None = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                environ_get = (
                    isinstance(func, ast.Attribute) and called == "get" and _is_os_environ(func.value)
                )
                getenv = isinstance(func, ast.Attribute) and called == "getenv"
                if called in ENV_READERS or environ_get or getenv:
                    name = node.args[0].value
                    keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                    default = node.args[1] if len(node.args) > 1 else keywords.get("default")
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and _is_os_environ(node.value)
                and isinstance(node.slice, ast.Constant)
            ):
                name = node.slice.value
            if isinstance(name, str):
                reads.setdefault(name, []).append(_literal_default(default))
    return reads


def documented_settings() -> dict[str, list[str]]:
    """Setting name → the default cells of its rows in docs/configuration.md (backticks removed)."""
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION_DOC.read_text().splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]+)` \|([^|]*)\|", line)
        if match:
            rows.setdefault(match.group(1), []).append(match.group(2).replace("`", "").strip())
    return rows


def test_every_setting_the_service_reads_is_documented_once_with_its_default() -> None:
    reads = settings_read_by_the_service()
    documented = documented_settings()
    assert len(reads) > 40, sorted(reads)  # the scan found the reads at all
    problems = []
    for name, defaults in sorted(reads.items()):
        if name not in documented:
            problems.append(f"{name}: read by the code, missing from docs/configuration.md")
            continue
        if len(documented[name]) > 1:
            problems.append(f"{name}: documented {len(documented[name])} times")
        cell = documented[name][0]
        if not cell:
            problems.append(f"{name}: no default documented")
        for default in defaults:
            if default is not ANY_DEFAULT and not (cell == default or cell.startswith(f"{default} ")):
                problems.append(f"{name}: the code's default is {default!r}, the doc says {cell!r}")
    assert not problems, "\n".join(problems)


def test_every_documented_setting_is_read_somewhere() -> None:
    """No row documents a setting nothing reads (the service, the Makefile, or the browser tests)."""
    makefile = (PROJECT_DIR / "Makefile").read_text()
    make_defaults = dict(re.findall(r"^([A-Z_]+) \?= (.+)$", makefile, flags=re.MULTILINE))
    browser_conftest = (PROJECT_DIR / "tests" / "browser" / "conftest.py").read_text()
    browser_settings = set(re.findall(r'^[A-Z_]+_ENV = "([A-Z_]+)"$', browser_conftest, flags=re.MULTILINE))
    read = set(settings_read_by_the_service()) | set(make_defaults) | browser_settings
    documented = documented_settings()
    unread = sorted(set(documented) - read)
    assert not unread, f"documented in docs/configuration.md but read nowhere: {unread}"
    for name in set(documented) & set(make_defaults):
        assert documented[name][0] == make_defaults[name].strip(), name


def test_the_configuration_page_starts_with_the_ten_essentials() -> None:
    text = CONFIGURATION_DOC.read_text()
    first_section = text.split("\n## ")[1]
    assert first_section.startswith("Essentials")
    rows = [line for line in first_section.splitlines() if re.match(r"^\| `[A-Z]", line)]
    assert len(rows) == 10, rows


def test_the_readme_is_short_and_keeps_the_two_commands_and_the_job_options_precedence() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "make run" in readme
    assert "make test" in readme  # CI (.ci/run) calls it
    assert re.search(r"`JOB_OVERRIDES`[^.]*wins over the `@job\(\.\.\.\)` arguments", readme)


def _modules_named_in_layout() -> set[str]:
    """Paths of the modules docs/layout.md names: ``x.py`` under the package named last at a line's start."""
    named: set[str] = set()
    package = ""
    for line in LAYOUT_DOC.read_text().splitlines():
        heading = line.startswith("## ")
        if heading:
            package = ""
        start = re.match(r"^(?:## )?`([\w/.]+/)`", line)
        if start:
            package = start.group(1)
        for token in re.findall(r"`([\w/.]+\.py)`", line):
            named.add(token if "/" in token else package + token)
    return named


def test_the_layout_page_names_every_module_and_only_modules_that_exist() -> None:
    named = _modules_named_in_layout()
    modules = {
        str(path.relative_to(PROJECT_DIR))
        for package in ("config", "stayy", "users")
        for path in (PROJECT_DIR / package).rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    }
    missing = sorted(modules - named)
    assert not missing, f"add these to docs/layout.md: {missing}"
    gone = sorted(path for path in named if not (PROJECT_DIR / path).is_file())
    assert not gone, f"docs/layout.md names modules that do not exist: {gone}"


def _slug(heading: str) -> str:
    text = heading.strip().lower().replace("`", "")
    text = "".join(char for char in text if char.isalnum() or char in " -_")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            slug = _slug(line.lstrip("#"))
            candidate, number = slug, 0
            while candidate in anchors:
                number += 1
                candidate = f"{slug}-{number}"
            anchors.add(candidate)
    return anchors


def test_links_between_the_docs_resolve() -> None:
    pages = [
        PROJECT_DIR / "README.md",
        PROJECT_DIR / "bench" / "README.md",
        PROJECT_DIR / "scripts" / "README.md",
    ]
    pages += sorted((PROJECT_DIR / "docs").glob("*.md"))
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{page.relative_to(PROJECT_DIR)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(PROJECT_DIR)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
