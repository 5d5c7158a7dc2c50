"""A silent network partition between one instance and its servers, built from Linux network namespaces.

The instance runs in a namespace of its own (``ip netns exec``) and reaches the
host through a second namespace that routes between two veth pairs::

    host (servers on host_ip) ── veth ── router namespace ── veth ── instance namespace (instance_ip)

:meth:`Partition.cut` makes the router drop every packet to or from the given
server ports, both ways: on each of its two interfaces an ``htb`` qdisc sends
those packets (``u32`` filters) to a class whose queue holds nothing (``pfifo
limit 0``). Other traffic — HTTP to the instance — still passes. The drop
happens in the middle of the path, as on a lost link: neither end gets a
reset, an ICMP error or a failed send, its TCP only waits for
acknowledgements that never come. (A drop at an end's own interface is
reported to that end's TCP as a local congestion drop, and ``netem`` is not
in every kernel.) :meth:`Partition.heal` removes the qdiscs.

:func:`network_partition` creates the namespaces and deletes them (and so
their veths and qdiscs) on exit, whatever happened. Names carry the creating
pid: leftovers of a process that no longer runs are deleted first, those of a
run in progress are left alone. Needs root, ``ip`` and ``tc``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

#: Names of namespaces (``stayyp-<pid hex>-<tag>-r`` / ``-a``) and host-side veths (``spn<pid hex>-<tag>``).
NAMESPACE_PREFIX = "stayyp-"
LINK_PREFIX = "spn"
#: Each partition takes one /24 of this range: two /30 links, host to router and router to instance.
ADDRESS_RANGE = "10.77"


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()]


def _host_links() -> list[str]:
    return re.findall(r"^\d+: ([^:@\s]+)", _run("ip", "-o", "link", "show"), flags=re.MULTILINE)


def remove_stale() -> list[str]:
    """Delete the namespaces and host-side veths of partitions whose creating process is gone."""
    removed = []
    for name in _namespaces():
        match = re.fullmatch(rf"{NAMESPACE_PREFIX}([0-9a-f]+)-[0-9a-f]+-[ar]", name)
        if match and not _pid_alive(int(match.group(1), 16)):
            with contextlib.suppress(RuntimeError):
                _run("ip", "netns", "delete", name)
                removed.append(name)
    for link in _host_links():
        match = re.fullmatch(rf"{LINK_PREFIX}([0-9a-f]+)-[0-9a-f]+", link)
        if match and not _pid_alive(int(match.group(1), 16)):
            with contextlib.suppress(RuntimeError):
                _run("ip", "link", "delete", link)
                removed.append(link)
    return removed


def _free_subnet() -> int:
    """The third octet of a ``10.77.N.0/24`` that no interface of the host uses."""
    used = set(
        re.findall(rf"inet {re.escape(ADDRESS_RANGE)}\.(\d+)\.", _run("ip", "-o", "-4", "addr", "show"))
    )
    for octet in range(1, 255):
        if str(octet) not in used:
            return octet
    raise RuntimeError(f"no free /24 left in {ADDRESS_RANGE}.0.0/16")


@dataclass
class Partition:
    """The namespaces of one partition rig; made by :func:`network_partition`."""

    tag: str
    octet: int
    cut_ports: list[int] = field(default_factory=list)

    @property
    def router_ns(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.tag}-r"

    @property
    def instance_ns(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.tag}-a"

    @property
    def host_ip(self) -> str:
        """The host's address on the link to the router: servers listen here for the instance."""
        return f"{ADDRESS_RANGE}.{self.octet}.1"

    @property
    def router_host_ip(self) -> str:
        return f"{ADDRESS_RANGE}.{self.octet}.2"

    @property
    def router_instance_ip(self) -> str:
        return f"{ADDRESS_RANGE}.{self.octet}.5"

    @property
    def instance_ip(self) -> str:
        """The instance's address; the host reaches it through the router."""
        return f"{ADDRESS_RANGE}.{self.octet}.6"

    @property
    def host_link(self) -> str:
        return f"{LINK_PREFIX}{self.tag}"

    #: The router's interfaces: towards the host, towards the instance.
    router_to_host = "rh"
    router_to_instance = "ra"
    instance_link = "inst"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the instance's namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.instance_ns, *argv]

    def _router(self, *argv: str) -> str:
        return _run("ip", "netns", "exec", self.router_ns, *argv)

    def create(self) -> None:
        router, instance = self.router_ns, self.instance_ns
        _run("ip", "netns", "add", router)
        _run("ip", "netns", "add", instance)
        _run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", self.router_to_host,
             "netns", router)  # fmt: skip
        _run("ip", "link", "add", self.router_to_instance, "netns", router, "type", "veth", "peer", "name",
             self.instance_link, "netns", instance)  # fmt: skip
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_link)
        _run("ip", "link", "set", self.host_link, "up")
        _run("ip", "route", "add", f"{self.instance_ip}/32", "via", self.router_host_ip)
        self._router("ip", "addr", "add", f"{self.router_host_ip}/30", "dev", self.router_to_host)
        self._router("ip", "addr", "add", f"{self.router_instance_ip}/30", "dev", self.router_to_instance)
        for link in ("lo", self.router_to_host, self.router_to_instance):
            self._router("ip", "link", "set", link, "up")
        self._router("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        inside = ("ip", "netns", "exec", instance)
        _run(*inside, "ip", "addr", "add", f"{self.instance_ip}/30", "dev", self.instance_link)
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "link", "set", self.instance_link, "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.router_instance_ip)

    def destroy(self) -> None:
        """Delete both namespaces (their veths and qdiscs go with them) and the host's veth end."""
        for name in (self.instance_ns, self.router_ns):
            if name in _namespaces():
                _run("ip", "netns", "delete", name)
        if self.host_link in _host_links():
            with contextlib.suppress(RuntimeError):  # already gone with its peer
                _run("ip", "link", "delete", self.host_link)

    def cut(self, ports: Iterable[int]) -> None:
        """Drop, silently and both ways, the traffic between the instance and these ports of the host."""
        self.cut_ports = sorted(set(ports))
        for link, direction, peer in (
            (self.router_to_host, "dport", "dst"),
            (self.router_to_instance, "sport", "src"),
        ):
            self._router("tc", "qdisc", "add", "dev", link, "root", "handle", "1:", "htb")
            self._router(
                "tc", "class", "add", "dev", link, "parent", "1:", "classid", "1:1", "htb", "rate", "1mbit"
            )
            self._router(
                "tc", "qdisc", "add", "dev", link, "parent", "1:1", "handle", "10:", "pfifo", "limit", "0"
            )
            for port in self.cut_ports:
                self._router(
                    "tc", "filter", "add", "dev", link, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                    "match", "ip", peer, f"{self.host_ip}/32", "match", "ip", direction, str(port), "0xffff",
                    "flowid", "1:1",
                )  # fmt: skip

    def dropped(self) -> int:
        """Packets the router has dropped since :meth:`cut`."""
        total = 0
        for link in (self.router_to_host, self.router_to_instance):
            stats = self._router("tc", "-s", "qdisc", "show", "dev", link)
            match = re.search(r"qdisc pfifo 10:.*?dropped (\d+)", stats, flags=re.DOTALL)
            total += int(match.group(1)) if match else 0
        return total

    def heal(self) -> None:
        """End the partition: the router forwards everything again."""
        for link in (self.router_to_host, self.router_to_instance):
            with contextlib.suppress(RuntimeError):  # not cut
                self._router("tc", "qdisc", "del", "dev", link, "root")
        self.cut_ports = []


@contextlib.contextmanager
def network_partition() -> Iterator[Partition]:
    """A fresh partition rig (not cut); everything it created is deleted on exit."""
    remove_stale()
    partition = Partition(tag=f"{os.getpid():x}-{secrets.token_hex(2)}", octet=_free_subnet())
    try:
        partition.create()
        yield partition
    finally:
        partition.destroy()
