"""A pod network made of network namespaces: one "switch" namespace holding a bridge (and the
test's dnsmasq), and one namespace per node joined to it by a veth pair, each with its own
address in 10.231.<x>.0/24. Nothing is added to the root namespace, so the test neither
depends on nor changes the machine's firewall and routes; clients run inside the switch
namespace (`ip netns exec <switch> ...`).

Every namespace, link and process inside them is removed by destroy(), which also runs at
exit and on SIGTERM/SIGINT, so a failing or interrupted test leaks nothing.
"""
import atexit
import os
import re
import signal
import subprocess
import sys
import time

_LIVE = []
PREFIX = "rbpod-"


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {r.stderr.strip()}")
    return r


def our_namespaces(test_id=None):
    """Names of rbpod-* namespaces (of `test_id` only, when given)."""
    out = ip("netns", "list").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    names = [n for n in names if n.startswith(PREFIX)]
    if test_id is not None:
        names = [n for n in names if n.startswith(f"{PREFIX}{test_id}-")]
    return names


def remove_stale():
    """Removes rbpod-<pid>-* namespaces whose test process is gone (an earlier run killed by
    SIGKILL, e.g. a ctest timeout, could not clean up)."""
    for name in our_namespaces():
        m = re.match(rf"{PREFIX}(\d+)-", name)
        if not m or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        _kill_namespace_processes(name)
        ip("netns", "del", name, check=False)
        ip("link", "del", f"rbp{m.group(1)}br", check=False)


def _kill_namespace_processes(ns):
    for _ in range(50):
        pids = [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


class PodNetwork:
    def __init__(self, test_id=None):
        self.id = test_id if test_id is not None else os.getpid()
        self.subnet = f"10.231.{20 + self.id % 200}"
        self.switch = f"{PREFIX}{self.id}-sw"
        self.bridge = "br0"
        self.gateway = f"{self.subnet}.1"  # the switch's own address (dnsmasq listens here)
        self.nodes = {}  # ordinal -> namespace
        self._destroyed = False
        _LIVE.append(self)
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", self.bridge, "type", "bridge")
        ip("-n", self.switch, "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("-n", self.switch, "link", "set", self.bridge, "up")

    def addr(self, i):
        return f"{self.subnet}.{10 + i}"

    def ns(self, i):
        return f"{PREFIX}{self.id}-{i}"

    def port_name(self, i):
        """The switch side of node i's veth (names are per namespace, so short is fine)."""
        return f"port{i}"

    def add_node(self, i):
        """Namespace rbpod-<id>-<i> with eth0 at addr(i), plugged into the switch."""
        if i in self.nodes:
            return self.nodes[i]
        ns = self.ns(i)
        ip("netns", "add", ns)
        self.nodes[i] = ns
        ip("-n", ns, "link", "set", "lo", "up")
        # Both ends are created in the node namespace, then one is moved to the switch.
        ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", self.port_name(i))
        ip("-n", ns, "link", "set", self.port_name(i), "netns", self.switch)
        ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", self.switch, "link", "set", self.port_name(i), "master", self.bridge)
        ip("-n", self.switch, "link", "set", self.port_name(i), "up")
        return ns

    def cut(self, i):
        """Pulls node i's cable: its switch port goes down, packets to and from it are lost."""
        ip("-n", self.switch, "link", "set", self.port_name(i), "down")

    def plug(self, i):
        ip("-n", self.switch, "link", "set", self.port_name(i), "up")

    def exec_argv(self, ns, argv):
        return ["ip", "netns", "exec", ns, *argv]

    def destroy(self):
        if self._destroyed:
            return
        self._destroyed = True
        for ns in list(self.nodes.values()) + [self.switch]:
            _kill_namespace_processes(ns)
            ip("netns", "del", ns, check=False)
        self.nodes.clear()
        left = our_namespaces(self.id)
        if left:
            print(f"namespaces still present after cleanup: {left}", file=sys.stderr)


@atexit.register
def _destroy_all():
    for net in _LIVE:
        net.destroy()


def _on_signal(signum, frame):
    _destroy_all()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)
