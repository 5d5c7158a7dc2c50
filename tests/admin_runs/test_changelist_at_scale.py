"""The run history changelist with 1,000,000 runs: few queries, each read off an index, no full count.

The rows are inserted once for the module with one ``INSERT ... SELECT FROM
generate_series`` and analysed, so that PostgreSQL plans as it would for a
long-lived history. Every page is requested for real; each query the page made
on the run table is then explained: no sequential scan of the table, and every
read of it sits under a ``LIMIT`` (the capped count and the page itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from stayy.admin.runs import CappedCountPaginator
from stayy.models import JobRun

pytestmark = pytest.mark.django_db

RUN_CHANGELIST = reverse("admin:stayy_jobrun_changelist")
TABLE = JobRun._meta.db_table
ROWS = 1_000_000
JOBS = ["users.sync_third_party_users", "users.refresh_user_stats", "stayy.purge_job_runs", "other.job"]
RARE_ERROR = "ConnectionResetError: peer hung up"
#: Queries of one changelist page: the session, the user, the capped count, the page.
MAX_QUERIES = 4

# Row i (1-based) is scheduled i * 10 s ago; every 20th failed, 1 in 100 manual, 1 in 1000 by command.
INSERT_RUNS = f"""
INSERT INTO {TABLE} (job_name, scheduled_for, trigger, status, active, created_at, started_at,
                     finished_at, duration_ms, heartbeat_at, host, pid, requested_by, error,
                     traceback, summary, log)
SELECT (%(jobs)s::text[])[1 + i %% 4], t,
       CASE WHEN i %% 1000 = 1 THEN 'command' WHEN i %% 100 = 0 THEN 'manual' ELSE 'schedule' END,
       CASE i %% 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'missed' WHEN 2 THEN 'skipped'
                    WHEN 3 THEN 'timed_out' ELSE 'succeeded' END,
       false, t, t, t + interval '1 second', (i * 37) %% 5000, t, 'web-' || (i %% 3), 1000 + i %% 50, '',
       CASE WHEN i %% 100000 = 7 THEN %(rare)s
            WHEN i %% 20 = 0 THEN 'RuntimeError: upstream answered 503 on page ' || (i %% 997)
            WHEN i %% 20 = 1 THEN 'no scheduler ran this tick (leader change or delay)'
            WHEN i %% 20 = 2 THEN 'previous run still running'
            WHEN i %% 20 = 3 THEN 'timed out after 30 s; cancellation requested'
            ELSE '' END,
       '', '{{}}'::jsonb, ''
FROM generate_series(1, %(rows)s) AS i,
     LATERAL (SELECT now() - i * interval '10 seconds' AS t) AS tick
"""


@pytest.fixture(scope="module", autouse=True)
def million_runs(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """1,000,000 committed run rows for every test of this module; removed afterwards."""
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", "this module proves PostgreSQL plans"
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {TABLE}")
            cursor.execute(INSERT_RUNS, {"jobs": JOBS, "rare": RARE_ERROR, "rows": ROWS})
            cursor.execute(f"VACUUM ANALYZE {TABLE}")
    try:
        yield
    finally:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {TABLE}")


def plan_nodes(plan: dict[str, Any], ancestors: tuple[str, ...] = ()) -> Iterator[tuple[dict, tuple]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, with the node types above it."""
    yield plan, ancestors
    for child in plan.get("Plans", []):
        yield from plan_nodes(child, (*ancestors, plan["Node Type"]))


def explain(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        (raw,) = cursor.fetchone()
    document = raw if isinstance(raw, list) else json.loads(raw)
    return document[0]["Plan"]


def check_plan(sql: str, *, limited: bool = True) -> list[str]:
    """The problems of one query's plan on the run table (empty: it reads the table well).

    ``limited``: every read of the table must sit under a ``LIMIT``.
    """
    problems = []
    reads = 0
    for node, above in plan_nodes(explain(sql)):
        if node.get("Relation Name") != TABLE:
            continue
        reads += 1
        kind = node["Node Type"]
        if kind not in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"):
            problems.append(f"{kind} on {TABLE}")
        if limited and "Limit" not in above:
            problems.append(f"{kind} on {TABLE} is not under a LIMIT (unbounded read or count)")
    assert reads, f"the query does not read {TABLE}: {sql}"
    return problems


def changelist(client: Client, params: dict[str, str]) -> tuple[Any, list[str]]:
    """The changelist page for ``params`` and the SQL of the queries it made on the run table."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(RUN_CHANGELIST, params)
    assert response.status_code == 200, response.content[:2000]
    queries = [q["sql"] for q in captured.captured_queries]
    assert len(queries) <= MAX_QUERIES, "\n".join(queries)
    return response, [sql for sql in queries if f'"{TABLE}"' in sql]


def assert_fast_page(client: Client, params: dict[str, str]) -> Any:
    response, run_queries = changelist(client, params)
    # The capped count and the page: nothing else reads the history.
    assert len(run_queries) == 2, run_queries
    counts = [sql for sql in run_queries if "COUNT(" in sql.upper()]
    assert len(counts) == 1, run_queries
    (page,) = [sql for sql in run_queries if sql not in counts]
    # A page that holds every matching run (fewer than a page, as counted) is read without a LIMIT.
    whole = response.context["cl"].result_count < response.context["cl"].list_per_page
    problems = {counts[0]: check_plan(counts[0]), page: check_plan(page, limited=not whole)}
    assert not any(problems.values()), json.dumps(problems, indent=2)
    return response


def shown_runs(response: Any) -> list[JobRun]:
    return list(response.context["cl"].result_list)


def test_the_table_holds_a_million_runs() -> None:
    # Planner statistics, not a count: the count of a million rows is what the admin must avoid.
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [TABLE])
        (estimate,) = cursor.fetchone()
    assert estimate == pytest.approx(ROWS, rel=0.05)


def test_unfiltered_page_is_the_newest_runs_with_a_capped_count(superuser_client: Client) -> None:
    response = assert_fast_page(superuser_client, {})
    runs = shown_runs(response)
    assert len(runs) == 100
    times = [run.scheduled_for for run in runs]
    assert times == sorted(times, reverse=True)
    newest = JobRun.objects.order_by("-scheduled_for", "-id").first()
    assert runs[0].pk == newest.pk
    assert f"{CappedCountPaginator.cap}+ job runs" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "matches"),
    [
        ({"job_name": "users.refresh_user_stats"}, lambda run: run.job_name == "users.refresh_user_stats"),
        ({"job_name": "no.such.job"}, lambda run: False),
        ({"status__exact": "failed"}, lambda run: run.status == "failed"),
        ({"status__exact": "queued"}, lambda run: False),
        ({"trigger__exact": "command"}, lambda run: run.trigger == "command"),
        ({"trigger__exact": "manual"}, lambda run: run.trigger == "manual"),
        ({"q": "upstream answered"}, lambda run: "upstream answered" in run.error),
        ({"q": "no run failed like this"}, lambda run: False),
        (
            {"job_name": "stayy.purge_job_runs", "status__exact": "timed_out"},
            lambda run: (run.job_name, run.status) == ("stayy.purge_job_runs", "timed_out"),
        ),
        ({"p": "3"}, lambda run: True),
    ],
    ids=[
        "job",
        "unknown-job",
        "status",
        "empty-status",
        "trigger",
        "trigger-manual",
        "search",
        "search-nothing",
        "job+status",
        "page-3",
    ],
)
def test_each_filter_reads_an_index_and_shows_the_newest_matching_runs(
    superuser_client: Client, params: dict[str, str], matches: Any
) -> None:
    response = assert_fast_page(superuser_client, params)
    runs = shown_runs(response)
    assert all(matches(run) for run in runs)
    times = [run.scheduled_for for run in runs]
    assert times == sorted(times, reverse=True)
    expected = JobRun.objects.all()
    for key, value in params.items():
        if key == "q":
            expected = expected.filter(error__icontains=value)
        elif key != "p":
            expected = expected.filter(**{key.removesuffix("__exact"): value})
    offset = (int(params.get("p", 1)) - 1) * 100  # the admin numbers pages from 1
    assert [run.pk for run in runs] == list(
        expected.order_by("-scheduled_for", "-id").values_list("pk", flat=True)[offset : offset + 100]
    )


def test_searching_a_rare_error_finds_every_run_with_it(superuser_client: Client) -> None:
    response = assert_fast_page(superuser_client, {"q": "PEER HUNG"})
    runs = shown_runs(response)
    assert len(runs) == ROWS // 100_000
    assert {run.error for run in runs} == {RARE_ERROR}
    assert f"{len(runs)} job runs" in response.content.decode()


def test_date_filters_read_an_index(superuser_client: Client) -> None:
    response, _ = changelist(superuser_client, {})
    (date_filter,) = [spec for spec in response.context["cl"].filter_specs if spec.title == "scheduled for"]
    links = {str(title): params for title, params in date_filter.links if params}
    assert {"Today", "Past 7 days", "This month", "This year"} <= set(links)
    for title, params in links.items():
        response = assert_fast_page(superuser_client, {key: str(value) for key, value in params.items()})
        runs = shown_runs(response)
        since, until = params["scheduled_for__gte"], params["scheduled_for__lt"]
        assert all(since <= run.scheduled_for < until for run in runs), title
        if title != "Today":  # the newest row is 10 s old: "Today" is empty for 10 s after midnight
            assert len(runs) == 100, title


def test_oldest_first_is_read_off_the_index_too(superuser_client: Client) -> None:
    # The only sortable column: "scheduled for" (list_display index 1).
    response = assert_fast_page(superuser_client, {"o": "1"})
    runs = shown_runs(response)
    times = [run.scheduled_for for run in runs]
    assert times == sorted(times)
    oldest = JobRun.objects.order_by("scheduled_for", "id").first()
    assert runs[0].scheduled_for == oldest.scheduled_for


@pytest.mark.parametrize("column", [0, 2, 3, 4, 5, 6])
def test_other_columns_are_not_sortable_even_by_url(superuser_client: Client, column: int) -> None:
    response = assert_fast_page(superuser_client, {"o": str(column)})
    content = response.content.decode()
    assert content.count('class="sortable') == 1  # the "scheduled for" header only
    times = [run.scheduled_for for run in shown_runs(response)]
    assert times == sorted(times, reverse=True), "the ordering asked for was not ignored"
