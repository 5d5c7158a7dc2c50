"""The pool of job threads: reuse with the connection kept, no waiting behind a busy thread, retiring
extras, and a close that ends every thread and its PostgreSQL session."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from stayy.scheduling.tick_pool import TickPool
from tests.jobs.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    """The PostgreSQL session of the calling thread's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def sessions() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("needs pg_backend_pid() and pg_stat_activity (PostgreSQL)")


@pytest.fixture
def make_pool() -> Iterator[Callable[..., TickPool]]:
    pools: list[TickPool] = []

    def make(**kwargs) -> TickPool:
        pool = TickPool(**kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()
        assert pool.join(10), "pool threads still alive after the test"


class Recorder:
    """A task that notes the thread and PostgreSQL session it ran in."""

    def __init__(self) -> None:
        self.seen: list[tuple[threading.Thread, int, str]] = []
        self.done = threading.Semaphore(0)

    def __call__(self) -> None:
        self.seen.append((threading.current_thread(), backend_pid(), threading.current_thread().name))
        self.done.release()

    def wait(self) -> None:
        assert self.done.acquire(timeout=10), "the task did not run"


def test_an_idle_thread_is_reused_with_its_connection(postgres, make_pool):
    pool = make_pool(keep=2)
    record = Recorder()
    for _ in range(3):
        assert pool.submit(record, name="stayy-job-tests.reused")
        record.wait()
        wait_until(lambda: pool.idle_count() == 1, timeout=5, message="the thread did not go idle")
    threads = {thread for thread, _pid, _name in record.seen}
    pids = {pid for _thread, pid, _name in record.seen}
    assert len(threads) == 1, f"{len(threads)} threads for 3 tasks one after another"
    assert len(pids) == 1, f"the connection was not kept between tasks: sessions {pids}"
    assert pids <= sessions(), "the idle thread's session is gone"
    assert {name for _thread, _pid, name in record.seen} == {"stayy-job-tests.reused"}
    assert pool.threads()[0].name.startswith("stayy-tick-"), "the task's name outlived the task"


def test_a_busy_thread_never_holds_up_another_task(postgres, make_pool):
    pool = make_pool(keep=1)
    release = threading.Event()
    started = threading.Event()
    long_threads: list[threading.Thread] = []

    def long_job() -> None:
        long_threads.append(threading.current_thread())
        started.set()
        release.wait(30)

    record = Recorder()
    try:
        assert pool.submit(long_job, name="stayy-job-tests.long")
        assert started.wait(10)
        asked = time.monotonic()
        assert pool.submit(record, name="stayy-job-tests.short")
        record.wait()
        assert time.monotonic() - asked < 2, "the short task waited"
        assert record.seen[0][0] is not long_threads[0]
        assert len(pool.threads()) == 2
    finally:
        release.set()


def test_extra_idle_threads_retire_and_close_their_sessions(postgres, make_pool):
    pool = make_pool(keep=1, retire_after=0.3)
    gate = threading.Barrier(3, timeout=10)
    pids: list[int] = []

    def together() -> None:
        pids.append(backend_pid())
        gate.wait()

    for _ in range(2):
        assert pool.submit(together, name="stayy-job-tests.together")
    gate.wait()
    assert len(pool.threads()) == 2
    wait_until(lambda: len(pool.threads()) == 1, timeout=5, message="the extra thread did not retire")
    time.sleep(0.5)
    assert len(pool.threads()) == 1, "retired below keep"
    wait_until(
        lambda: len(set(pids) & sessions()) == 1,
        timeout=5,
        message="the retired thread's session is still open",
    )


def test_close_ends_every_thread_and_session_and_refuses_new_tasks(postgres, make_pool):
    before = sessions()
    pool = make_pool(keep=4)
    release = threading.Event()
    record = Recorder()

    def slow() -> None:
        backend_pid()
        release.wait(30)

    assert pool.submit(slow, name="stayy-job-tests.slow")
    assert pool.submit(record, name="stayy-job-tests.quick")  # a second thread: the first is busy
    record.wait()
    wait_until(lambda: pool.idle_count() == 1, timeout=5, message="the quick task's thread is not idle")
    wait_until(lambda: len(sessions() - before) == 2, timeout=5, message="the tasks opened no sessions")
    threads = pool.threads()
    pool.close()
    assert not pool.submit(record, name="stayy-job-tests.late"), "a closed pool took a task"
    assert not pool.join(0.3), "join() returned while a task still ran"
    release.set()
    assert pool.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert not pool.threads()
    assert sessions() - before == set(), "a pool thread left its session open"


def test_a_crashing_task_leaves_its_thread_usable(postgres, make_pool):
    pool = make_pool(keep=1)

    def boom() -> None:
        raise RuntimeError("kaput")

    record = Recorder()
    assert pool.submit(boom, name="stayy-job-tests.boom")
    wait_until(lambda: pool.idle_count() == 1, timeout=5, message="the thread did not go idle")
    assert pool.submit(record, name="stayy-job-tests.after")
    record.wait()
    assert len(pool.threads()) == 1


def test_past_max_threads_tasks_wait_in_order_for_a_free_thread(make_pool):
    pool = make_pool(keep=1, max_threads=2)
    release = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    def task(number: int) -> None:
        with lock:
            started.append(number)
        release.wait(10)

    for number in range(5):
        assert pool.submit(task, number, name=f"task-{number}")
    wait_until(lambda: len(started) == 2, timeout=5)
    time.sleep(0.2)
    assert sorted(started) == [0, 1] and len(pool.threads()) == 2, "more threads than max_threads"
    release.set()
    wait_until(lambda: len(started) == 5, timeout=5, message=f"waiting tasks did not run: {started}")
    assert started[2:] == [2, 3, 4], "waiting tasks ran out of order"
    assert len(pool.threads()) == 2
