"""Pod-like cluster: each node in its own network namespace (own address, plugged into a
switch namespace) and UTS namespace (hostname `mysql-N`), with /etc/resolv.conf pointing at a
dnsmasq that plays the headless Service `mysql`, and replboot started as a container
ENTRYPOINT is: `replboot run` with no --hostname, reading the real hostname, and the
passwords in REPLBOOT_* variables. Needs root (namespaces, bind mounts).

One bring-up covers: scaling from 1 to 3 (each replica clones and replicates), a primary
restart (replicas reconnect), and a replica deleted with its datadir and recreated (it
clones again).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from replboot_harness import (Dnsmasq, Harness, LeakWatcher, Node, random_secrets, read_log, run_tests, wait_log,
                              wait_until, write_private)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

SECRETS = random_secrets()


# mysql-2 serves backups at this rate, so a clone from it takes several seconds.
DONOR_BYTES_PER_S = 2 * 1024 * 1024
# The clone gives up on a donor that sends nothing for this long (backup.idle_timeout, given to
# mysql-3): the cut-link case waits this long before the clone moves on.
CLONE_IDLE_TIMEOUT_S = 15


class SwitchDnsmasq(Dnsmasq):
    """The harness's dnsmasq, run inside the switch namespace on port 53 (resolv.conf has no port)."""

    def __init__(self, h, net):
        super().__init__(h, addr=net.gateway, port=53)
        self.net = net

    def start(self):
        self._write()
        self.proc = self.h.spawn(self.net.exec_argv(self.net.switch, ["dnsmasq", f"--conf-file={self.conf_path}"]),
                                 log_name="dnsmasq")

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"dnsmasq exited: {read_log(self.proc)}")
            out = subprocess.run(self.net.exec_argv(self.net.switch, ["ss", "-Hlun"]), capture_output=True,
                                 text=True).stdout
            return f"{self.addr}:53" in out
        wait_until(listening, 10, "dnsmasq to listen in the switch namespace")
        return self


class Pods:
    def __init__(self, h, net, dns):
        self.h = h
        self.net = net
        self.dns = dns
        self.procs = {}
        self.nodes = {}
        self.cnf = write_private(h.path("root.cnf"),
                                 f"[client]\nuser=root\npassword={SECRETS['root']}\n")

    def dir(self, i, *parts):
        return self.h.path(f"mysql-{i}", *parts)

    def start(self, i, extra=()):
        """Starts pod mysql-i: namespace (first time), DNS record, then the ENTRYPOINT."""
        ns = self.net.add_node(i)
        name = f"mysql-{i}"
        if f"{name}.mysql" not in self.dns.hosts:
            self.dns.add_host(f"{name}.mysql", self.net.addr(i))
            self.dns.reload()
        for sub in ("data", "run", "etc"):
            os.makedirs(self.dir(i, sub), exist_ok=True)
        # The pod's resolv.conf, as the kubelet writes it: the Service domain to search and
        # the cluster DNS; bind-mounted over /etc/resolv.conf in the pod's mount namespace so
        # replboot (c-ares) and mysqld (glibc, for MASTER_HOST) both use it.
        resolv = self.dir(i, "resolv.conf")
        with open(resolv, "w") as f:
            f.write(f"search mysql\nnameserver {self.net.gateway}\noptions timeout:1 attempts:2\n")
        if i not in self.nodes:
            # The ENTRYPOINT as a container runs it: no --hostname (replboot reads the pod's),
            # no --flavour; the pod's hostname and resolv.conf set up by sh, which then execs.
            def pod(node, entrypoint):
                return self.net.exec_argv(ns, [
                    "unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c",
                    'hostname "$1" && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"',
                    "sh", name, resolv] + entrypoint)
            self.nodes[i] = Node(self.h, i, addr=self.net.addr(i), hostname=None, flavour=None, values=SECRETS,
                                 launcher=pod)
        p = self.nodes[i].start(extra)
        self.procs[i] = p
        return p

    def stop(self, i, timeout=90):
        p = self.procs[i]
        p.send_signal(signal.SIGTERM)  # ip netns exec / unshare / sh all exec: this is replboot
        code = p.wait(timeout=timeout)
        assert code == 0, f"mysql-{i} exited {code}:\n{read_log(p)[-3000:]}"
        assert not subprocess.run(["ip", "netns", "pids", self.net.ns(i)], capture_output=True,
                                  text=True).stdout.split(), f"processes left in mysql-{i}'s namespace"

    def in_switch(self, argv, **kw):
        return subprocess.run(self.net.exec_argv(self.net.switch, argv), capture_output=True, text=True, **kw)

    def sql(self, i, statement, check=True):
        r = self.in_switch(["mariadb", f"--defaults-extra-file={self.cnf}", "-N", "-B",
                            f"--host={self.net.addr(i)}", "--port=3306", "--protocol=TCP",
                            "--connect-timeout=3"], input=statement, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"SQL on mysql-{i} failed: {statement!r}: {r.stderr.strip()}")
        return [line.split("\t") for line in r.stdout.splitlines()]

    def http(self, i, path):
        r = self.in_switch(["curl", "-s", "-m", "3", "-o", "-", "-w", "\n%{http_code}",
                            f"http://{self.net.addr(i)}:8008{path}"], timeout=10)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    def wait_ready(self, i, timeout):
        p = self.procs[i]

        def ready():
            if p.poll() is not None:
                raise AssertionError(f"mysql-{i} exited {p.returncode}:\n{read_log(p)[-3000:]}")
            return self.http(i, "/ready")[0] == 200
        try:
            wait_until(ready, timeout, f"mysql-{i} /ready", interval=0.5)
        except AssertionError:
            print(read_log(p)[-4000:])
            raise
        return json.loads(self.http(i, "/status")[1])

    def rows(self, i):
        return self.sql(i, "SELECT id, note FROM pods.t ORDER BY id")

    def wait_rows(self, i, expected, timeout=60):
        try:
            return wait_until(lambda: self.rows(i) == expected, timeout, f"mysql-{i} to have {expected}")
        except AssertionError:
            print(read_log(self.procs[i])[-3000:])
            raise


def expect_identity(pods, i, status, role):
    assert status["role"] == role, status
    assert status["ordinal"] == i and status["server_id"] == 100 + i, status
    # The real hostname of the pod (UTS namespace), which replboot read itself.
    assert pods.sql(i, "SELECT @@hostname, @@server_id, @@read_only") == \
        [[f"mysql-{i}", str(100 + i), "0" if role == "primary" else "1"]]


def expect_cloned_from(pods, i, donor):
    """Node i's current run cloned its datadir from `donor` (the nearest lower peer, the
    default dns.policy), reached at the donor's own namespace address."""
    log = read_log(pods.procs[i])
    m = re.search(r"event=clone_done peer=(\S+) ", log)
    assert m, f"mysql-{i} did not clone:\n{log[-3000:]}"
    assert m.group(1) == f"{pods.net.addr(donor)}:3307", (m.group(1), pods.net.addr(donor))


def test_pods_scale_restart_recreate():
    if os.geteuid() != 0:
        raise AssertionError("the pods test needs root (network/UTS/mount namespaces)")
    netns.remove_stale()
    started = time.time()
    net = None
    with Harness("pods") as h:
        try:
            net = netns.PodNetwork()
            dns = SwitchDnsmasq(h, net).start()
            pods = Pods(h, net, dns)
            # No secret on a command line or in a child's environment in any pod, all along.
            watcher = LeakWatcher(SECRETS, scope=h.dir).start()

            # Scale 1 -> 3: mysql-0 initializes as primary, each replica clones and replicates.
            pods.start(0)
            expect_identity(pods, 0, pods.wait_ready(0, 180), "primary")
            pods.sql(0, "CREATE DATABASE pods; CREATE TABLE pods.t (id INT PRIMARY KEY, note VARCHAR(64));"
                        "INSERT INTO pods.t VALUES (1, 'before mysql-1')")
            expected = [["1", "before mysql-1"]]
            for i in (1, 2):
                pods.start(i)
                status = pods.wait_ready(i, 240)
                expect_identity(pods, i, status, "replica")
                expect_cloned_from(pods, i, i - 1)
                pods.wait_rows(i, expected)
                row = len(expected) + 1
                pods.sql(0, f"INSERT INTO pods.t VALUES ({row}, 'after mysql-{i}')")
                expected.append([str(row), f"after mysql-{i}"])
                for j in range(1, i + 1):
                    pods.wait_rows(j, expected)
            print(f"scaled to 3 in {time.time() - started:.1f}s", flush=True)

            # The primary restarts: same datadir, used as is; the replicas reconnect.
            pods.stop(0)
            pods.start(0)
            expect_identity(pods, 0, pods.wait_ready(0, 120), "primary")
            assert "action=use_as_is" in read_log(pods.procs[0]), read_log(pods.procs[0])[-3000:]
            pods.sql(0, "INSERT INTO pods.t VALUES (10, 'after the primary restart')")
            expected.append(["10", "after the primary restart"])
            for i in (1, 2):
                pods.wait_rows(i, expected, timeout=90)
                pods.wait_ready(i, 60)
            print(f"primary restart done at {time.time() - started:.1f}s", flush=True)

            # A replica is deleted with its volume and recreated: it clones again.
            pods.stop(2)
            shutil.rmtree(pods.dir(2, "data"))
            pods.sql(0, "INSERT INTO pods.t VALUES (20, 'while mysql-2 was gone')")
            expected.append(["20", "while mysql-2 was gone"])
            # mysql-2 serves backups slowly (it is the next donor), so its link can be cut mid-clone.
            pods.start(2, extra=["--set", f"backup.bandwidth_limit={DONOR_BYTES_PER_S}"])
            expect_identity(pods, 2, pods.wait_ready(2, 240), "replica")
            expect_cloned_from(pods, 2, 1)
            pods.wait_rows(2, expected)
            pods.sql(0, "INSERT INTO pods.t VALUES (21, 'after mysql-2 came back')")
            expected.append(["21", "after mysql-2 came back"])
            for i in (1, 2):
                pods.wait_rows(i, expected)
            print(f"replica recreate done at {time.time() - started:.1f}s", flush=True)

            # The link of the donor is cut mid-clone: mysql-3 clones from mysql-2 (nearest lower),
            # whose switch port goes down once the stream has started. No byte arrives any more,
            # so after the clone's idle timeout the clone moves on to another peer.
            p3 = pods.start(3, extra=["--set", f"backup.idle_timeout={CLONE_IDLE_TIMEOUT_S}"])
            wait_log(p3, rf"event=clone_header peer={re.escape(net.addr(2))}:3307", 120, "mysql-3 to stream from mysql-2")
            # mysqld does not exist yet on mysql-3, but its HTTP server shows the clone.
            donor2 = f"{net.addr(2)}:3307"

            def streaming_from_mysql_2():
                clone = json.loads(pods.http(3, "/status")[1])["clone"]
                return clone["active"] and clone["phase"] == "streaming" and clone["donor"] == donor2 \
                    and clone["bytes"] > 0 and clone["total_bytes"] > 0
            wait_until(streaming_from_mysql_2, 30, "mysql-3 /status to show the clone from mysql-2", interval=0.2)
            code, body = pods.http(3, "/health")
            assert code == 503 and body.startswith(f"cloning: streaming from {donor2}: "), (code, body)
            time.sleep(1)
            net.cut(2)
            cut_at = time.time()
            expect_identity(pods, 3, pods.wait_ready(3, CLONE_IDLE_TIMEOUT_S + 120), "replica")
            print(f"mysql-3 ready {time.time() - cut_at:.1f}s after the cut", flush=True)
            log = read_log(p3)
            assert re.search(rf"event=clone_attempt_failed peer={re.escape(net.addr(2))}:3307 ", log), log[-3000:]
            m = re.search(r"event=clone_done peer=(\S+) ", log)
            assert m and m.group(1) in (f"{net.addr(1)}:3307", f"{net.addr(0)}:3307"), log[-3000:]
            clone = json.loads(pods.http(3, "/status")[1])["clone"]
            assert clone["phase"] == "done" and not clone["active"] and clone["donor"] == m.group(1), clone
            assert clone["attempts"] >= 2 and clone["bytes"] > 0, clone
            pods.sql(0, "INSERT INTO pods.t VALUES (30, 'after mysql-3')")
            expected.append(["30", "after mysql-3"])
            for i in (1, 3):
                pods.wait_rows(i, expected)
            print(f"cut-link clone done at {time.time() - started:.1f}s", flush=True)
            pods.stop(3)
            net.plug(2)

            for i in (2, 1, 0):
                pods.stop(i)
            watcher.stop()
            assert {"mariabackup", "mariadbd"} <= watcher.seen_comms, watcher.seen_comms
            assert not watcher.found, f"secrets seen in processes: {watcher.found[:5]}"
            for p in h.procs:
                for secret in SECRETS.values():
                    assert secret not in read_log(p), f"a secret appears in {p.log_path}"
        finally:
            if net is not None:
                net.destroy()
    left = netns.our_namespaces(os.getpid())
    assert not left, f"namespaces leaked: {left}"
    print(f"pods test took {time.time() - started:.1f}s", flush=True)


if __name__ == "__main__":
    run_tests(globals())
