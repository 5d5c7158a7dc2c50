"""The measuring tools of the fault runs, on this process and made-up series: /proc samples, the soak's
verdicts, the HTTP load and its failure windows."""

from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.faults import procstats
from harness.faults.load import Answer, HttpLoad, failures_outside, statuses


def test_rss_of_this_process() -> None:
    before = procstats.rss_bytes(os.getpid())
    assert before is not None and before > 10 * 2**20
    ballast = bytearray(64 * 2**20)  # touched pages count towards RSS
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    after = procstats.rss_bytes(os.getpid())
    assert after is not None and after - before >= 60 * 2**20
    del ballast
    assert procstats.rss_bytes(2**22 + 12345) is None  # no such process


def test_connections_counted_by_remote_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            counts = procstats.connections([os.getpid()], [port, 1])
            # Our 3 client sockets have the server's port as remote port; the accepted ones do not.
            assert counts[os.getpid()][port] == 3
            assert counts[os.getpid()][1] == 0
        finally:
            for sock in clients + accepted:
                sock.close()


def test_growth_per_minute() -> None:
    # 100 MB growing 1 MB per minute, sampled every 10 s for 8 minutes: ~1 % of the mean per minute.
    points = [(t, 100 * 2**20 + t / 60 * 2**20) for t in range(0, 480, 10)]
    assert 0.9 < procstats.growth_per_minute(points) < 1.0
    assert procstats.growth_per_minute([(t, 5.0) for t in range(10)]) == 0.0
    shrinking = [(t, 100.0 - t / 60) for t in range(0, 600, 10)]
    assert procstats.growth_per_minute(shrinking) < 0


def test_flat_counts() -> None:
    assert procstats.flat([5, 6, 5, 5, 6, 5, 6, 5, 6])
    assert procstats.flat([6, 6, 6, 7, 7, 7, 7, 8, 7, 7])  # a pool at its peak, a transient extra
    assert not procstats.flat([5, 5, 5, 6, 6, 6, 7, 7, 7])  # one more every few samples: a leak
    assert procstats.flat([3])


def test_failures_outside_windows() -> None:
    window = (10.0, 12.0)
    answers = [
        Answer(9.5, 10.2, "/a", 500),  # overlaps the start
        Answer(11.0, 11.1, "/a", 0, "ConnectionRefusedError"),  # inside
        Answer(11.9, 12.5, "/a", 500),  # overlaps the end
        Answer(12.6, 12.7, "/a", 500),  # after: outside
        Answer(9.0, 9.1, "/a", 503),  # before: outside
        Answer(13.0, 13.1, "/a", 200),
    ]
    assert failures_outside(answers, [window]) == [answers[3], answers[4]]
    assert statuses(answers) == {"0": 1, "200": 1, "500": 3, "503": 1}


def test_http_load_records_every_answer() -> None:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(204 if self.path == "/empty" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        load = HttpLoad(
            [f"http://127.0.0.1:{server.server_port}"], ["/empty", "/missing"], token="t0k", threads=2
        )
        load.start()
        time.sleep(0.5)
        answers = load.stop()
    finally:
        server.shutdown()
        server.server_close()
    assert len(answers) >= 4 and len(answers) == len(seen)
    assert {a.status for a in answers} == {204, 404}
    assert all(a.ok == (a.path == "/empty") for a in answers)
    assert set(seen) == {"Token t0k"}
    assert all(a.start <= a.end for a in answers)
