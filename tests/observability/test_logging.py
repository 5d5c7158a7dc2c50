"""Log lines: the run context on every record, the plain and JSON formats, LOG_FORMAT."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from stayy.observability.logcontext import RunContextFilter, RunLog, bind_run, current_run
from stayy.observability.logformat import JsonFormatter, PlainFormatter
from tests.observability.support import PROJECT_DIR, child_env

JSON_KEYS = {"ts", "level", "logger", "pid", "message", "job", "run_id", "exc_info"}


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, logging.Handler, io.StringIO]]:
    """A logger writing to a string through a handler set up like the service's."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunContextFilter())
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("tests.observability.capture")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, handler, stream
    finally:
        logger.removeHandler(handler)


def test_bind_run_tags_every_record_inside_it(capture) -> None:
    logger, _, stream = capture
    logger.info("before")
    with bind_run("users.sync_third_party_users", 42):
        assert current_run() == ("users.sync_third_party_users", 42)
        logger.info("during")
        with bind_run("stayy.purge_job_runs", 7):
            logger.info("nested")
        logger.info("after nested")
    logger.info("after")
    assert current_run() is None
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("tests.observability.capture: before")
    assert lines[1].endswith("tests.observability.capture [job=users.sync_third_party_users run=42]: during")
    assert "[job=stayy.purge_job_runs run=7]: nested" in lines[2]
    assert "[job=users.sync_third_party_users run=42]: after nested" in lines[3]
    assert lines[4].endswith("tests.observability.capture: after")


def test_plain_line_shape(capture) -> None:
    logger, _, stream = capture
    with bind_run("x.job", 5):
        logger.warning("hello %s", "world")
    line = stream.getvalue().strip()
    _date, _time, level, pid, rest = line.split(" ", 4)
    assert level == "WARNING" and pid.isdigit()
    assert rest == "tests.observability.capture [job=x.job run=5]: hello world"


def test_runs_in_different_threads_do_not_share_context(capture) -> None:
    logger, _, stream = capture
    barrier = threading.Barrier(2)

    def run(job: str, run_id: int) -> None:
        with bind_run(job, run_id):
            barrier.wait(timeout=5)
            logger.info("from %s", job)
            barrier.wait(timeout=5)

    threads = [threading.Thread(target=run, args=(f"job.{i}", i)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    lines = stream.getvalue().splitlines()
    assert any("[job=job.1 run=1]: from job.1" in line for line in lines)
    assert any("[job=job.2 run=2]: from job.2" in line for line in lines)
    assert len(lines) == 2


def test_values_passed_as_extra_win(capture) -> None:
    # The job context's logger is a LoggerAdapter that passes job and run_id itself.
    logger, _, stream = capture
    adapter = logging.LoggerAdapter(logger, {"job": "from.ctx", "run_id": 9})
    adapter.info("adapted")
    with bind_run("from.ctx", 9):
        adapter.info("adapted and bound")
    lines = stream.getvalue().splitlines()
    assert all("[job=from.ctx run=9]" in line for line in lines)


def test_json_lines_carry_the_run(capture) -> None:
    logger, handler, stream = capture
    handler.setFormatter(JsonFormatter())
    logger.info("outside")
    with bind_run("users.refresh_user_stats", 1234):
        logger.info("inside %d", 1)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it failed")
    outside, inside, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    for line in (outside, inside, failed):
        assert set(line) >= JSON_KEYS
        assert line["logger"] == "tests.observability.capture"
        assert isinstance(line["pid"], int)
        assert line["ts"].endswith("+00:00")
    assert outside["job"] is None and outside["run_id"] is None and outside["exc_info"] is None
    assert inside["message"] == "inside 1" and inside["level"] == "INFO"
    assert inside["job"] == "users.refresh_user_stats" and inside["run_id"] == 1234
    assert failed["level"] == "ERROR"
    assert "ValueError: boom" in failed["exc_info"]
    assert "Traceback" in failed["exc_info"]


def test_the_service_handler_adds_the_run_context() -> None:
    console = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    assert console, "LOGGING installs one console handler on the root logger"
    assert any(isinstance(f, RunContextFilter) for f in console[0].filters)
    assert isinstance(console[0].formatter, PlainFormatter | JsonFormatter)


SNIPPET = """
import logging, django
django.setup()
from stayy.observability.logcontext import bind_run
with bind_run("users.sync_third_party_users", 77):
    logging.getLogger("users.services").warning("synced %d", 3)
logging.getLogger("django.request").warning("a django line")
"""


def test_log_format_json_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SNIPPET],
        cwd=PROJECT_DIR,
        env=child_env(LOG_FORMAT="json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["logger"] for line in lines] == ["users.services", "django.request"]
    synced, django_line = lines
    assert synced["message"] == "synced 3" and synced["level"] == "WARNING"
    assert synced["job"] == "users.sync_third_party_users" and synced["run_id"] == 77
    assert django_line["job"] is None and django_line["run_id"] is None


def test_log_format_plain_is_the_default() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SNIPPET],
        cwd=PROJECT_DIR,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    synced, django_line = result.stderr.splitlines()
    assert synced.endswith("users.services [job=users.sync_third_party_users run=77]: synced 3")
    assert django_line.endswith("django.request: a django line")


@pytest.mark.parametrize("value", ["xml", "JSONL", "1"])
def test_a_bad_log_format_stops_startup_with_one_line(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=child_env(LOG_FORMAT=value),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"stayy: invalid setting LOG_FORMAT: expected plain or json; got {value!r}"
    )


# --- per-run log capture -----------------------------------------------------------------


def test_run_log_keeps_every_line_under_its_cap() -> None:
    log = RunLog(max_bytes=1024)
    log.append("first")
    log.append("second")
    assert log.text() == "first\nsecond\n"


def test_run_log_keeps_the_start_and_says_how_much_was_dropped() -> None:
    log = RunLog(max_bytes=1024)
    lines = [f"{i:03d} " + "äbc" * 20 for i in range(40)]  # multi-byte characters
    for line in lines:
        log.append(line)
    text = log.text()
    total = sum(len(line.encode()) + 1 for line in lines)
    body, note = text.removesuffix("\n").rsplit("\n", 1)
    kept = len(body.encode()) + 1
    dropped = int(note.split(" more bytes dropped")[0].rsplit(" ", 1)[1])

    assert len(text.encode()) <= 1024
    assert text.startswith(lines[0] + "\n" + lines[1] + "\n")
    assert note.startswith("[log capped at 1024 bytes (JOB_RUN_LOG_MAX_BYTES): ")
    assert kept + dropped == total
    # The line that crossed the cap is cut on a character boundary; later lines are dropped whole.
    last_kept = body.splitlines()[-1]
    crossing = next(line for line in lines if line.startswith(last_kept[:4]))
    assert crossing.startswith(last_kept) and len(last_kept) < len(crossing)
    assert note.endswith(f"in {len(lines) - lines.index(crossing)} line(s)]")


def test_run_log_replaces_nul_characters() -> None:
    log = RunLog(max_bytes=1024)
    log.append("a\x00b")
    assert log.text() == "a\ufffdb\n"


def test_bind_run_with_a_log_captures_every_logger_of_the_thread_and_nothing_else() -> None:
    service = logging.getLogger("tests.observability.service")
    library = logging.getLogger("tests.observability.library")
    log, other_log = RunLog(max_bytes=4096), RunLog(max_bytes=4096)
    inside, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        assert inside.wait(5)
        service.warning("another thread, no run")
        # A record that names its run is kept for it, whichever thread writes it (the watchdog does).
        logging.LoggerAdapter(service, {"job": "x.job", "run_id": 1}).warning("named run 1")
        logging.LoggerAdapter(service, {"job": "y.job", "run_id": 2}).warning("named run 2")
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    service.warning("before")
    with bind_run("y.job", 2, log=other_log), bind_run("x.job", 1, log=log):
        service.warning("service %d", 1)
        library.error("library")
        inside.set()
        assert done.wait(5)
    thread.join(5)
    service.warning("after")

    messages = [line.split(": ", 1)[1] for line in log.text().splitlines()]
    assert messages == ["service 1", "library", "named run 1"]
    assert [line.split(": ", 1)[1] for line in other_log.text().splitlines()] == ["named run 2"]
    assert log.text().splitlines()[0].split(" ")[1:3] == ["WARNING", "tests.observability.service:"]


def test_capture_survives_a_logging_reconfiguration() -> None:
    root = logging.getLogger()
    with bind_run("x.job", 3, log=RunLog(max_bytes=1024)):
        pass
    for handler in [h for h in root.handlers if type(h).__name__ == "_RunLogHandler"]:
        root.removeHandler(handler)  # as logging.config.dictConfig would
    log = RunLog(max_bytes=1024)
    with bind_run("x.job", 3, log=log):
        logging.getLogger("tests.observability.service").warning("still captured")
    assert log.text().endswith("WARNING tests.observability.service: still captured\n")


def test_a_run_without_an_id_captures_its_thread_too() -> None:
    # ``runjobs --run`` style code may bind a log before the run row exists.
    log = RunLog(max_bytes=1024)
    with bind_run("x.job", None, log=log):
        logging.getLogger("tests.observability.service").warning("no id yet")
    assert log.text().endswith("WARNING tests.observability.service: no id yet\n")
