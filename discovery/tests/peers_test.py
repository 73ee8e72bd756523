"""`replboot peers` against a real DNS server (dnsmasq on a loopback port).

Peers are simple TCP listeners on 127.A.B.1x (the backup endpoint answers when
something accepts). Nothing leaves loopback: dnsmasq forwards nothing
(no-resolv, local=/mysql/), every address is 127.x or ::1.
"""
import json
import os
import signal
import socket
import subprocess
import time

from replboot_harness import Dnsmasq, Harness, free_port, replboot_bin, run_tests

BACKUP_PORT = 3307


class Listener:
    """A TCP socket that accepts connections (the kernel completes the handshake)."""

    def __init__(self, addr, port=BACKUP_PORT):
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class SilentDns:
    """A UDP socket that receives queries and never answers."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.server = f"{addr}:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


class Cluster:
    """dnsmasq plus listeners, all closed by close()."""

    def __init__(self, h, domain=None):
        self.h = h
        self.dns = Dnsmasq(h, f"{h.subnet}.2", domain=domain)
        self.listeners = []

    def listen(self, addr, port=BACKUP_PORT):
        listener = Listener(addr, port)
        self.listeners.append(listener)
        return listener

    def close(self):
        for listener in self.listeners:
            listener.close()


def resolv_conf(h, content="options ndots:1\n"):
    path = h.path("resolv.conf")
    with open(path, "w") as f:
        f.write(content)
    return path


def peers_argv(h, hostname, dns_server, *extra, resolv=None):
    argv = [replboot_bin(), "peers", "--hostname", hostname, "--json",
            "--set", f"dns.resolv_conf={resolv or resolv_conf(h)}"]
    if dns_server:
        argv += ["--dns-server", dns_server]
    return argv + list(extra)


def parse(stdout):
    docs = [line for line in stdout.splitlines() if line.startswith("{")]
    assert docs, f"no JSON document in output:\n{stdout}"
    return json.loads(docs[-1])


def run_peers(h, hostname, dns_server, *extra, resolv=None, timeout=60):
    start = time.time()
    r = subprocess.run(peers_argv(h, hostname, dns_server, *extra, resolv=resolv),
                       capture_output=True, text=True, timeout=timeout)
    elapsed = time.time() - start
    print(r.stdout + r.stderr)
    return r.returncode, (parse(r.stdout) if r.returncode in (0, 3) else None), r, elapsed


def by_ordinal(doc):
    return {p["ordinal"]: p for p in doc["peers"]}


def test_all_peers_present():
    with Harness("peers-all") as h:
        c = Cluster(h)
        try:
            for i in range(3):
                c.dns.add_host(f"mysql-{i}.mysql", h.addr(i))
                c.listen(h.addr(i))
            c.dns.start()
            rc, doc, _, _ = run_peers(h, "mysql-3", c.dns.server)
            assert rc == 0, rc
            assert doc["donor"]["ordinal"] == 2, doc
            assert doc["donor"]["endpoint"] == f"{h.addr(2)}:{BACKUP_PORT}", doc
            assert doc["probe"] == "tcp", doc  # no backup.secret: a TCP connect only
            peers = by_ordinal(doc)
            assert sorted(peers) == [0, 1, 2]
            for i in range(3):
                assert peers[i]["name"] == f"mysql-{i}.mysql"
                assert peers[i]["addresses"] == [h.addr(i)], peers[i]
                assert peers[i]["state"] == "reachable", peers[i]
        finally:
            c.close()


def test_nearest_down_next_lower_is_chosen():
    with Harness("peers-down") as h:
        c = Cluster(h)
        try:
            for i in range(3):
                c.dns.add_host(f"mysql-{i}.mysql", h.addr(i))
            c.listen(h.addr(1))  # mysql-2 is in DNS but nothing listens
            c.listen(h.addr(0))
            c.dns.start()
            rc, doc, _, _ = run_peers(h, "mysql-3", c.dns.server)
            assert rc == 0, rc
            assert doc["donor"]["ordinal"] == 1, doc
            peers = by_ordinal(doc)
            assert peers[2]["state"] == "unreachable", peers[2]
            assert "refused" in peers[2]["summary"].lower(), peers[2]
            assert peers[0]["state"] == "reachable"
        finally:
            c.close()


def test_table_output_and_no_donor_exit_status():
    with Harness("peers-table") as h:
        c = Cluster(h)
        try:
            c.dns.add_host("mysql-0.mysql", h.addr(0))
            c.dns.start()  # nothing listens anywhere
            argv = [a for a in peers_argv(h, "mysql-1", c.dns.server, "--set", "dns.lookup_deadline=1")
                    if a != "--json"]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            print(r.stdout + r.stderr)
            assert r.returncode == 3, r.returncode
            assert "ORDINAL" in r.stdout and "mysql-0.mysql" in r.stdout
            assert "unreachable" in r.stdout
            assert "donor: none" in r.stdout
        finally:
            c.close()


def test_name_missing_then_appears():
    with Harness("peers-nxdomain") as h:
        c = Cluster(h)
        try:
            c.listen(h.addr(0))
            c.dns.add_host("mysql-9.mysql", h.addr(9))  # something, so dnsmasq has a hosts file
            c.dns.start()
            start = time.time()
            p = subprocess.Popen(peers_argv(h, "mysql-1", c.dns.server, "--set", "dns.lookup_deadline=30"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                time.sleep(3)
                assert p.poll() is None, "gave up although the deadline is 30 s"
                c.dns.add_host("mysql-0.mysql", h.addr(0))
                c.dns.reload()
                out, _ = p.communicate(timeout=30)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            print(out)
            elapsed = time.time() - start
            assert p.returncode == 0, p.returncode
            doc = parse(out)
            assert doc["donor"]["ordinal"] == 0, doc
            assert doc["rounds"] >= 2, doc
            assert by_ordinal(doc)[0]["lookups"] >= 2
            assert "event=dns_retry name=mysql-0.mysql reason=nxdomain attempt=1" in out, out
            assert elapsed < 15, elapsed
        finally:
            c.close()


def test_dns_server_never_answers():
    with Harness("peers-silent") as h:
        silent = SilentDns(f"{h.subnet}.3")
        try:
            rc, doc, r, elapsed = run_peers(h, "mysql-2", silent.server, "--set", "dns.timeout_ms=200",
                                            "--set", "dns.tries=1", "--set", "dns.lookup_deadline=2")
            assert rc == 3, rc  # not there yet (base/exit_code.h)
            assert doc["donor"] is None
            assert doc["deadline_passed"], doc
            for p in doc["peers"]:
                assert p["dns_error"] == "timeout", p
                assert "timeout" in p["summary"] and silent.server in p["summary"], p
            assert "reason=timeout" in r.stdout
            assert elapsed < 15, elapsed
        finally:
            silent.close()


def test_aaaa_only_peer():
    with Harness("peers-aaaa") as h:
        c = Cluster(h)
        try:
            listener = c.listen("::1", 0)  # ::1 is shared by every test: a port of our own
            c.dns.add_host("mysql-0.mysql", "::1")
            c.dns.start()
            rc, doc, _, _ = run_peers(h, "mysql-1", c.dns.server, "--set", f"backup.port={listener.port}")
            assert rc == 0, rc
            peer = by_ordinal(doc)[0]
            assert peer["addresses"] == ["::1"], peer
            assert doc["donor"]["endpoint"] == f"[::1]:{listener.port}", doc
        finally:
            c.close()


def test_search_domains_from_resolv_conf():
    with Harness("peers-search") as h:
        c = Cluster(h, domain="cluster.local")
        try:
            for i in range(2):
                c.dns.add_host(f"mysql-{i}.mysql.ns.svc.cluster.local", h.addr(i))
                c.listen(h.addr(i))
            c.dns.start()
            # As in a pod: the short name only resolves through the search list.
            rc_path = resolv_conf(h, "search ns.svc.cluster.local svc.cluster.local cluster.local\n"
                                     "options ndots:5\n")
            rc, doc, _, _ = run_peers(h, "mysql-2", c.dns.server, resolv=rc_path)
            assert rc == 0, rc
            assert doc["donor"]["ordinal"] == 1, doc
            assert by_ordinal(doc)[0]["addresses"] == [h.addr(0)]
        finally:
            c.close()


def test_nameserver_from_resolv_conf():
    # No --dns-server: the server comes from the resolv.conf file (port 53 of our own address).
    with Harness("peers-resolvconf") as h:
        c = Cluster(h, domain="cluster.local")
        c.dns = Dnsmasq(h, f"{h.subnet}.2", port=53, domain="cluster.local")
        try:
            c.dns.add_host("mysql-0.mysql.ns.svc.cluster.local", h.addr(0))
            c.listen(h.addr(0))
            c.dns.start()
            rc_path = resolv_conf(h, f"nameserver {h.subnet}.2\nsearch ns.svc.cluster.local\noptions ndots:5\n")
            rc, doc, _, _ = run_peers(h, "mysql-1", None, resolv=rc_path)
            assert rc == 0, rc
            assert doc["donor"]["ordinal"] == 0, doc
        finally:
            c.close()


def test_srv_ports():
    with Harness("peers-srv") as h:
        c = Cluster(h)
        try:
            for i in range(2):
                c.dns.add_host(f"mysql-{i}.mysql", h.addr(i))
            p1 = free_port(h.addr(1))
            p0 = free_port(h.addr(0))
            c.dns.add_srv("_backup._tcp.mysql", "mysql-1.mysql", p1)
            c.dns.add_srv("_backup._tcp.mysql", "mysql-0.mysql", p0)
            c.listen(h.addr(1), p1)  # nothing on the default 3307
            c.listen(h.addr(0), p0)
            c.dns.start()
            rc, doc, _, _ = run_peers(h, "mysql-2", c.dns.server, "--set", "dns.srv_port_name=backup")
            assert rc == 0, rc
            assert doc["donor"]["endpoint"] == f"{h.addr(1)}:{p1}", doc
            peers = by_ordinal(doc)
            assert peers[1]["port_from_srv"] and peers[1]["port"] == p1, peers[1]
            assert peers[0]["port_from_srv"] and peers[0]["port"] == p0, peers[0]
        finally:
            c.close()


def test_sigterm_during_pending_lookup():
    with Harness("peers-sigterm") as h:
        silent = SilentDns(f"{h.subnet}.3")
        try:
            p = subprocess.Popen(peers_argv(h, "mysql-3", silent.server, "--set", "dns.timeout_ms=5000",
                                            "--set", "dns.tries=3", "--set", "dns.lookup_deadline=300"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                time.sleep(1.5)
                assert p.poll() is None
                sent = time.time()
                p.send_signal(signal.SIGTERM)
                out, _ = p.communicate(timeout=10)
                took = time.time() - sent
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            print(out)
            assert p.returncode == 128 + signal.SIGTERM, p.returncode
            assert took < 2, took
            doc = parse(out)
            assert doc["cancelled"] and doc["donor"] is None, doc
        finally:
            silent.close()


def test_primary_and_bad_hostname():
    with Harness("peers-primary") as h:
        silent = SilentDns(f"{h.subnet}.3")
        try:
            rc, doc, _, elapsed = run_peers(h, "mysql-0", silent.server)
            assert rc == 3 and doc["peers"] == [] and "primary" in doc["reason"], doc
            assert elapsed < 5
            r = subprocess.run(peers_argv(h, "mysql", silent.server), capture_output=True, text=True, timeout=30)
            assert r.returncode == 2, r.returncode
            assert "mysql" in r.stderr, r.stderr
        finally:
            silent.close()


if __name__ == "__main__":
    run_tests(globals())
