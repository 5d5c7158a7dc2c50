"""``manage.py demo_upstream``: serve the demo third-party user service until SIGINT or SIGTERM.

``--port 0`` picks a free port; the one line printed at start names the URL
(tests read it). Point ``THIRD_PARTY_USERS_URL`` at that URL to sync from it.
``--faults`` starts with a fault plan, the JSON that ``POST /v1/_admin/faults``
takes (e.g. ``'{"delay": 0.02}'`` for a steady latency per page).
"""

from __future__ import annotations

import json
import signal
import socketserver
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from django.core.management.base import BaseCommand, CommandError, CommandParser

from upstream_demo.app import DemoUpstream
from upstream_demo.dataset import MAX_USERS, Dataset
from upstream_demo.faults import Faults, InvalidFaults, parse_plan


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    # A slow client must not hold up the others, nor the shutdown.
    daemon_threads = True


class QuietRequestHandler(WSGIRequestHandler):
    """wsgiref's handler without the access log line per request (tests page thousands of times)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Command(BaseCommand):
    help = "Serve a demo of the third-party user service (change feed and admin endpoints)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8001, help="Port to bind; 0 picks a free one.")
        parser.add_argument("--users", type=int, default=10_000, help="Size of the generated data set.")
        parser.add_argument(
            "--faults",
            default="",
            metavar="JSON",
            help="Fault plan to start with, as for POST /v1/_admin/faults (e.g. '{\"delay\": 0.02}').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        users: int = options["users"]
        if not 0 <= users <= MAX_USERS:
            raise CommandError(f"--users must be from 0 to {MAX_USERS}")
        faults = Faults()
        if options["faults"]:
            try:
                body = json.loads(options["faults"])
                if not isinstance(body, dict):
                    raise InvalidFaults("expected a JSON object")
                faults.set(parse_plan(body))
            except ValueError as exc:  # InvalidFaults and JSON errors alike
                raise CommandError(f"--faults: {exc}") from None
        handler = WSGIRequestHandler if options["verbosity"] >= 2 else QuietRequestHandler
        try:
            server = ThreadingWSGIServer((options["host"], options["port"]), handler)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from None
        server.set_app(DemoUpstream(Dataset(users), faults))
        host, port = options["host"], server.server_port

        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # shutdown() waits for serve_forever() to return, so the loop cannot
        # run in the thread that handles the signal.
        thread = threading.Thread(target=server.serve_forever, name="demo-upstream", daemon=True)
        thread.start()
        self.stdout.write(f"demo upstream with {users} users listening on http://{host}:{port}")
        self.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self.stdout.write("demo upstream stopped")
