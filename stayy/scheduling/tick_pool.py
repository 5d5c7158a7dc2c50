"""Long-lived threads for ticks and manual runs, which keep their database connections between runs.

A thread and a PostgreSQL connection opened per tick would make every tick
late by the thread start and the connection handshake (ten ticks due at once
would pay it ten times over). Here a task goes to an idle thread if there is one and to a
new thread otherwise, so a tick never waits behind a long-running job of
another (a 30-minute sync does not hold up a 1-second job), up to
``max_threads`` threads (each holds a database connection): past that, tasks
wait in order for the next thread that comes free. Up to ``keep``
idle threads stay with their connections, checked before each task like
Django checks them per request (``close_old_connections``; the settings turn
on health checks); extra threads retire after ``retire_after`` seconds idle.
A thread closes its connections when it ends. :meth:`TickPool.close` refuses
new tasks and ends idle threads; :meth:`TickPool.join` waits for busy ones.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections

logger = logging.getLogger("stayy.jobs")

#: Seconds an extra thread (beyond ``keep``) waits idle before it ends.
RETIRE_AFTER = 60.0
#: Threads (and database connections) a pool has at most; 100 one-second jobs due at once
#: would otherwise open 100 connections, PostgreSQL's default limit for the whole server.
MAX_THREADS = 32

Task = tuple[Callable[..., Any], tuple[Any, ...], str]


class _Worker:
    """One pool thread and the task handed to it (``None`` while it waits for one)."""

    def __init__(self, pool: TickPool, task: Task, number: int) -> None:
        self.task: Task | None = task
        self.wake = threading.Condition(pool._lock)
        self.thread = threading.Thread(
            target=pool._work, args=(self,), name=f"{pool.name}-{number}", daemon=True
        )


class TickPool:
    """Threads that run ``fn(*args)`` tasks; idle ones are reused, busy ones never queue a task."""

    def __init__(
        self,
        *,
        keep: int,
        retire_after: float = RETIRE_AFTER,
        max_threads: int = MAX_THREADS,
        name: str = "stayy-tick",
    ) -> None:
        self.name = name
        self.keep = keep
        self.retire_after = retire_after
        self.max_threads = max(keep, max_threads)
        self._backlog: deque[Task] = deque()  # tasks waiting for a thread (all max_threads busy)
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []  # a stack: the most recently busy thread is reused first
        self._closed = False
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[..., Any], *args: Any, name: str) -> bool:
        """Run ``fn(*args)`` in an idle thread, or a new one; ``False`` once the pool is shut down.

        ``name`` is the thread's name while it runs the task (log records show it).
        """
        task: Task = (fn, args, name)
        with self._lock:
            if self._closed:
                return False
            if self._idle:
                worker = self._idle.pop()
                worker.task = task
                worker.wake.notify()
                return True
            if len(self._workers) >= self.max_threads:
                self._backlog.append(task)
                return True
            worker = _Worker(self, task, next(self._numbers))
            self._workers.add(worker)
            # Started under the lock, so that join() sees every thread it has to wait for.
            worker.thread.start()
        return True

    def threads(self) -> list[threading.Thread]:
        """The pool's threads, busy or idle."""
        with self._lock:
            return [worker.thread for worker in self._workers]

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Refuse new tasks from now on and end the idle threads; busy ones end after their task."""
        with self._lock:
            self._closed = True
            self._backlog.clear()  # not started: the next leader accounts for their ticks
            for worker in self._idle:
                worker.wake.notify()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the threads of a closed pool to end.

        Returns ``False`` if some thread still runs its task after ``timeout``; it ends (closing
        its connections) when the task returns.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            me = threading.current_thread()
            while any(worker.thread is not me for worker in self._workers):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ended.wait(left)
        return True

    def _next_task(self, worker: _Worker) -> Task | None:
        """Wait idle for a task; ``None`` when the thread should end (shut down, or retired)."""
        with self._lock:
            while worker.task is None:
                if self._closed:
                    return None
                if not worker.wake.wait(self.retire_after) and worker.task is None:
                    if len(self._workers) > self.keep:
                        # Leave the pool now, so that other idle threads count this one as gone.
                        self._workers.discard(worker)
                        self._idle.remove(worker)
                        return None
                    # Kept idle: let Django close the connection if it outlived CONN_MAX_AGE.
                    self._lock.release()
                    try:
                        close_old_connections()
                    finally:
                        self._lock.acquire()
            task, worker.task = worker.task, None
            return task

    def _work(self, worker: _Worker) -> None:
        me = threading.current_thread()
        own_name = me.name
        try:
            task: Task | None = worker.task
            worker.task = None
            while task is not None:
                fn, args, me.name = task
                try:
                    close_old_connections()
                    fn(*args)
                except Exception:
                    logger.exception("%s crashed", me.name)
                finally:
                    me.name = own_name
                with self._lock:
                    if self._closed:
                        return
                    if self._backlog:
                        task = self._backlog.popleft()
                        continue
                    self._idle.append(worker)
                task = self._next_task(worker)
        finally:
            # Closed before the thread counts as ended, so that join() leaves no session behind.
            connections.close_all()
            with self._lock:
                self._workers.discard(worker)
                if worker in self._idle:
                    self._idle.remove(worker)
                self._ended.notify_all()
