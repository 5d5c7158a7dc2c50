"""Per-process resource samples from ``/proc`` (no psutil) and the soak's verdict on them.

* :func:`rss_bytes` — resident set size (``VmRSS``) of a process.
* :func:`connections` — its established TCP connections, counted by remote
  port (PostgreSQL's, Redis's): its socket inodes from ``/proc/<pid>/fd``
  matched against ``/proc/net/tcp`` and ``tcp6``.
* :func:`growth_per_minute` — least-squares slope of a series, in percent of
  its mean per minute; :func:`flat` — whether a count series stopped growing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

ESTABLISHED = "01"


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _established_by_inode() -> dict[str, int]:
    """Socket inode -> remote port of every established TCP connection on the machine."""
    out: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == ESTABLISHED:
                out[fields[9]] = int(fields[2].rsplit(":", 1)[1], 16)
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, PermissionError):
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def connections(pids: Iterable[int], ports: Iterable[int]) -> dict[int, Counter[int]]:
    """Established TCP connections of each process to each of ``ports`` (remote side)."""
    wanted = set(ports)
    table = _established_by_inode()
    out: dict[int, Counter[int]] = {}
    for pid in pids:
        counts: Counter[int] = Counter()
        for inode in _socket_inodes(pid):
            port = table.get(inode)
            if port in wanted:
                counts[port] += 1
        out[pid] = counts
    return out


def growth_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Slope of ``(seconds, value)`` points by least squares, in % of the mean value per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    if var_t == 0 or mean_v == 0:
        return 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var_t
    return slope * 60 / mean_v * 100


def flat(values: Sequence[float]) -> bool:
    """No growth: the series ends no higher than the highest value of its first half.

    A connection pool may open one more connection the first time a few more
    threads need one at once, and a transient peak is no leak; a leak keeps
    adding, and ends above anything seen in the first half.
    """
    if len(values) < 2:
        return True
    return values[-1] <= max(values[: len(values) // 2])
