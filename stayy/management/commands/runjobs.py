"""``manage.py runjobs``: the job server as a process of its own, or one job run now for debugging.

* ``runjobs``: the same job server as the embedded one, in the foreground,
  until SIGINT or SIGTERM (then it stops like a gunicorn worker does).
* ``runjobs --list``: every job with its trigger, next run time and state.
* ``runjobs --run NAME``: run one job once, now, in the main thread (so
  ``breakpoint()`` works), recorded with trigger ``command``. Exit codes:
  0 succeeded, 1 failed, 2 unknown job, 3 the job is executing elsewhere
  (``--force`` runs it anyway).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stayy import services
from stayy.conf import stayy_settings
from stayy.scheduling import registry
from stayy.scheduling.server import JobServer


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
        elif options["run"]:
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
        try:
            outcome = services.job_run_in_process(
                name=name, force=force, on_progress=self._progress_printer()
            )
        except registry.UnknownJob as exc:
            self.stderr.write(str(exc))
            sys.exit(2)
        except services.JobBusy as exc:
            self.stderr.write(f"{exc}; use --force to run it anyway")
            sys.exit(3)
        if sys.stdout.isatty():
            self.stdout.write("")
        run = outcome
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

    def _progress_printer(self):  # type: ignore[no-untyped-def]
        interactive = sys.stdout.isatty()

        def show(summary: dict[str, Any]) -> None:
            text = ", ".join(f"{key}={value}" for key, value in summary.items())
            if interactive:
                self.stdout.write(f"\r\x1b[K{text}", ending="")
                self.stdout.flush()
            else:
                self.stdout.write(f"progress: {text}")

        return show

    def _serve(self) -> None:
        server = JobServer(name=stayy_settings.job_name)

        def on_signal(signum: int, _frame: object) -> None:
            self.stderr.write(f"{signal.Signals(signum).name} received: stopping the job server")
            server.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.stdout.write(
            f"job server {server.name} running (lease in {server.lease.backend}); Ctrl-C stops it"
        )
        try:
            server.run_forever()
        finally:
            server.stop(grace=stayy_settings.shutdown_grace)
        if server.state != "stopped":
            raise CommandError("job server did not stop cleanly")
