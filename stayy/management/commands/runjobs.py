"""``manage.py runjobs``: the job server as a process of its own, or one job run now for debugging.

* ``runjobs``: the same job server as the embedded one, in the foreground,
  until SIGINT or SIGTERM (then it stops like a gunicorn worker does).
* ``runjobs --list``: every job with its trigger, next run time and state.
* ``runjobs --run NAME``: run one job once, now, in the main thread (so
  ``breakpoint()`` works), recorded with trigger ``command``. Its progress is
  one line redrawn in place on a terminal, plain ``progress:`` lines
  otherwise. Exit codes: 0 succeeded, 1 failed (or timed out and still
  executing ``JOB_SHUTDOWN_GRACE`` later: the command exits then), 2 unknown
  job, 3 the job is executing elsewhere (``--force`` runs it anyway).

A job server whose handler ignores its cancellation past its timeout and the
grace leaves: it stops like on SIGTERM and exits 1, to be restarted.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from stayy import services
from stayy.conf import stayy_settings
from stayy.runtime import heap
from stayy.scheduling.server import JobServer
from stayy.scheduling.tracker import tracker


class Command(BaseCommand):
    help = "Run the job server in the foreground, list the jobs, or run one job now."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--list", action="store_true", help="List the jobs and exit.")
        group.add_argument("--run", metavar="NAME", help="Run one job now in this process and exit.")
        parser.add_argument(
            "--force", action="store_true", help="With --run: run even if it executes elsewhere."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            self._list()
        elif options["run"] is not None:
            self._run(options["run"], force=options["force"])
        else:
            self._serve()

    def _list(self) -> None:
        jobs = services.job_list()
        width = max((len(job.name) for job in jobs), default=10)
        self.stdout.write(
            f"{'JOB':<{width}}  {'SCHEDULE':<36}  {'NEXT RUN (UTC)':<19}  {'STATE':<8}  LAST RUN"
        )
        for job in jobs:
            state = "disabled" if not job.enabled else "paused" if job.paused else "active"
            next_run = f"{job.next_run_at:%Y-%m-%d %H:%M:%S}" if job.next_run_at else "-"
            last = job.last_run_status or "-"  # type: ignore[attr-defined]
            self.stdout.write(f"{job.name:<{width}}  {job.schedule:<36}  {next_run:<19}  {state:<8}  {last}")

    def _run(self, name: str, *, force: bool) -> None:
        progress = ProgressLine(self.stdout, name=name)
        try:
            with progress.clearing_for_log_lines():
                run = services.job_run_in_process(
                    name=name, force=force, on_progress=progress.show, on_hung=self._exit_hung
                )
        except services.JobNotFound as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        except services.JobBusy as exc:
            self.stderr.write(f"{exc}; use --force to run it anyway")
            sys.exit(3)
        finally:
            progress.end()
        line = f"{run.job_name}: {run.status} in {run.duration_ms or 0} ms (run {run.pk})"
        if run.error:
            line += f": {run.error}"
        if run.summary:
            line += f"\nsummary: {run.summary}"
        if run.status in ("succeeded", "skipped"):
            self.stdout.write(line)
            return
        self.stderr.write(line)
        sys.exit(1)

    def _exit_hung(self, reason: str) -> None:
        """The handler runs in this thread and cannot be stopped: the process exits (its run is recorded)."""
        self.stderr.write(f"\n{reason}; exiting")
        self.stderr.flush()
        os._exit(1)

    def _serve(self) -> None:
        server = JobServer(name=stayy_settings.job_name)

        def on_signal(signum: int, _frame: object) -> None:
            self.stderr.write(f"{signal.Signals(signum).name} received: stopping the job server")
            server.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        heap.freeze_startup_objects()
        self.stdout.write(
            f"job server {server.name} running (lease in {server.lease.backend}); Ctrl-C stops it"
        )
        try:
            server.run_forever()
        finally:
            server.stop(grace=stayy_settings.shutdown_grace)
        if server.state != "stopped":
            raise CommandError("job server did not stop cleanly")
        if tracker.left_because:
            raise CommandError(f"job server left: {tracker.left_because}")


class ProgressLine:
    """A run's progress: on a terminal one status line redrawn in place, otherwise a line per report.

    The terminal line is a spinner, the job, the time since the start and the
    counters, cut to the terminal's width so that a carriage return redraws it.
    """

    SPINNER = "|/-\\"

    def __init__(self, stream: OutputWrapper, *, name: str) -> None:
        self.stream = stream
        self.name = name
        self.interactive = stream.isatty()
        self.started = time.monotonic()
        self.reports = 0
        self.drawn = False  # a status line without its newline is on the terminal

    def show(self, summary: dict[str, Any]) -> None:
        text = ", ".join(f"{key}={value}" for key, value in summary.items())
        self.reports += 1
        if not self.interactive:
            self.stream.write(f"progress: {text}")
            return
        elapsed = time.monotonic() - self.started
        spinner = self.SPINNER[self.reports % len(self.SPINNER)]
        line = f"{spinner} {self.name} {elapsed:7.1f} s  {text}"
        width = shutil.get_terminal_size().columns - 1
        self.stream.write(f"\r\x1b[K{line[:width]}", ending="")
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K", ending="")
            self.stream.flush()
            self.drawn = False

    def end(self) -> None:
        """Leave the status line behind (the outcome follows on its own line)."""
        if self.drawn:
            self.stream.write("")
            self.drawn = False

    @contextmanager
    def clearing_for_log_lines(self) -> Iterator[None]:
        """While the run lasts, a log line written to the terminal first clears the status line.

        Otherwise it would be appended to it; the next report draws the status below the log line.
        """
        if not self.interactive:
            yield
            return
        handlers = [
            handler
            for handler in logging.getLogger().handlers
            if isinstance(handler, logging.StreamHandler)
            and getattr(handler.stream, "isatty", lambda: False)()
        ]
        log_filter = _ClearLine(self)
        for handler in handlers:
            handler.addFilter(log_filter)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(log_filter)


class _ClearLine(logging.Filter):
    def __init__(self, line: ProgressLine) -> None:
        super().__init__()
        self.line = line

    def filter(self, record: logging.LogRecord) -> bool:
        self.line.clear()
        return True
