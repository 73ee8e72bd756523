"""A primary that lost its volume never starts empty while its peers hold the data (issue 21).

One cluster of three on loopback (nodes, DNS and TLS as in cluster_test.py), rows acknowledged
on mysql-0 and replicated. Then mysql-0's datadir is deleted, again and again, each time with
the peers unable to answer it properly in another way:

 1. a secret rotated halfway: mysql-0 starts with a new backup secret, the peers keep the old
    one. mysql-0 waits (well past bootstrap.recover_wait, which used to end in an empty,
    writable primary), says it waits for both peers because they refused its secret (log,
    /status, /metrics, `replboot status`), and takes no write. The fix: the peers restart with
    the new secret; mysql-0 then clones one and has every row, without anything else done.
 2. the peers' backup user is missing: their answers are errors, never "no data".
 3. the peers' backup ports are flooded with idle connections from one address, reopened every
    few seconds: the probes still get through and mysql-0 recovers during the flood.
 4. every node restarted at once: the replicas' backup servers answer from their first second
    (their replication cannot start without mysql-0), and mysql-0 recovers.
 5. a diverged mysql-1 (a write of its own) is never the donor of mysql-2's clone.
 6. the operator's override: a file with anything but the phrase is ignored; the phrase
    initializes an empty database once, and the file is gone.
"""
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from cluster_test import SECRETS, Node, primary_gtid, table_state, wait_applied
from primary_recovery_test import write_rows
from replboot_harness import (Dnsmasq, Harness, LeakWatcher, make_pki, replboot_bin, run_tests, wait_until)

RECOVER_WAIT = 4  # seconds; what used to end in an empty primary
RECOVER = ["--set", f"bootstrap.recover_wait={RECOVER_WAIT}"]
OVERRIDE_PHRASE = "initialize empty, discarding the peers' data"
FLOOD_ADDR = "127.0.0.99"


def assert_rows(node, expected, what):
    s = table_state(node)
    missing = sorted(expected - set(s["ids"]))
    extra = sorted(set(s["ids"]) - expected)
    assert not missing and not extra, (what, node.name, missing[:10], extra[:10])
    return s["checksum"]


def metric(node, name):
    code, body = node.get("/metrics")
    assert code == 200, (node.name, code)
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", body, re.M)
    assert m, (name, body[-2000:])
    return float(m.group(1))


class Flood:
    """Idle connections to `targets` (addr, port) from one address, `per_target` at a time (the
    per-address cap), each held past the donor's handshake deadline (10 s) and reopened at
    once: what once held every pre-auth thread of a donor, so that probes timed out."""

    def __init__(self, targets, per_target=8, hold=15.0):
        self.targets = targets
        self.per_target = per_target
        self.hold = hold
        self.halt = threading.Event()
        self.opened = 0
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True)
                        for t in targets for _ in range(per_target)]

    def _run(self, target):
        while not self.halt.is_set():
            s = socket.socket()
            try:
                s.bind((FLOOD_ADDR, 0))
                s.settimeout(2)
                s.connect(target)
                self.opened += 1
                self.halt.wait(self.hold)
            except OSError:
                self.halt.wait(0.2)
            finally:
                s.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(timeout=10)


def test_a_primary_that_lost_its_volume_fails_closed():
    t0 = time.time()

    def step(text):
        print(f"[{time.time() - t0:6.1f}s] {text}", flush=True)

    with Harness("fail-closed") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()
        make_pki(H.path("pki"), [f"mysql-{i}" for i in range(3)])
        nodes = [Node(H, i, dns) for i in range(3)]
        p0, r1, r2 = nodes
        replicas = (r1, r2)
        watcher = LeakWatcher(SECRETS, scope=H.dir).start()

        step("day one: mysql-0, then the replicas")
        p0.start(RECOVER)
        p0.wait_http("/primary", 200, 120, "mysql-0 ready")
        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, origin VARCHAR(16) NOT NULL, "
                       "pad VARCHAR(200) NOT NULL) ENGINE=InnoDB;"
                       "USE app; INSERT INTO app.t SELECT seq, 'seed', REPEAT(MD5(seq), 4) FROM seq_1_to_200;")
        assert r.returncode == 0, r.stderr.decode()
        ledger = set(range(1, 201))
        for node in replicas:
            dns.add_host(f"{node.name}.mysql", node.addr).reload()
            node.start()
            node.wait_http("/replica", 200, 180, f"{node.name} replicating")

        def settle(what):
            gtid = primary_gtid(p0)
            for node in replicas:
                wait_applied(node, gtid)
            checksum = assert_rows(p0, ledger, what)
            for node in replicas:
                assert assert_rows(node, ledger, what) == checksum, (what, node.name)

        def lose_primary(what):
            nonlocal ledger
            ledger |= write_rows(p0, range(1000 * len(ledger), 1000 * len(ledger) + 20), "before")
            settle(f"before {what}")
            step(f"{what}: mysql-0 stopped, its datadir deleted ({len(ledger)} rows on the replicas)")
            assert p0.stop() == 0, p0.log()[-2000:]
            shutil.rmtree(p0.datadir)

        def assert_waits(why, what):
            """mysql-0 waits past several recover_waits, names both peers and why, takes nothing."""
            def waited_long():
                if p0.proc.poll() is not None:
                    raise AssertionError(f"mysql-0 exited:\n{p0.log()[-3000:]}")
                b = p0.status().get("bootstrap", {})
                return b.get("plan") == "wait" and b.get("waited_seconds", 0) >= 3 * RECOVER_WAIT and b
            b = wait_until(waited_long, 90, f"mysql-0 to wait ({what})", interval=0.5)
            log0 = p0.log()
            assert "plan=initialize" not in log0 and "action=initialize" not in log0, log0[-3000:]
            assert not os.path.exists(p0.datadir) or not os.listdir(p0.datadir), os.listdir(p0.datadir)
            waiting = {w["peer"]: w["why"] for w in b["waiting_for"]}
            assert waiting == {"mysql-1.mysql": why, "mysql-2.mysql": why}, (what, b)
            assert b["override_file"] == p0.datadir + ".replboot-initialize-empty", b
            assert re.search(r"event=primary_recovery_decision plan=wait reason=waiting_for_peers .*"
                             r"waiting_for=\"mysql-1\.mysql:" + why, log0), log0[-3000:]
            assert metric(p0, "replboot_bootstrap_waiting") == 1
            assert metric(p0, f'replboot_bootstrap_waiting_peers{{why="{why}"}}') == 2
            for path in ("/ready", "/primary"):
                code, body = p0.get(path)
                assert code == 503 and "asking the peers" in body, (path, code, body)
            out = subprocess.run([replboot_bin(), "status", "--url", p0.url("/status")],
                                 capture_output=True, text=True)
            assert out.returncode != 0, out.stdout
            assert re.search(r"^waiting_for\s+mysql-1\.mysql: ", out.stdout, re.M), out.stdout
            assert re.search(r"^override\s+.*" + re.escape(OVERRIDE_PHRASE), out.stdout, re.M), out.stdout
            step(f"{what}: mysql-0 waited {b['waited_seconds']:.0f} s for both peers ({why}), no write taken")

        def assert_recovers(what, timeout=240):
            p0.wait_log(r"event=primary_recovered donor=mysql-\d\.mysql", timeout, f"the recovery ({what})")
            p0.wait_log(r"event=primary_promoted", 120, f"the takeover ({what})")
            p0.wait_http("/primary", 200, 60, f"writable after the recovery ({what})")
            assert "action=initialize" not in p0.log(), p0.log()[-3000:]
            settle(f"after {what}")
            step(f"{what}: mysql-0 recovered every row")

        # --- 1. a secret rotated halfway
        lose_primary("(1) rotated secret")
        rotated = dict(SECRETS, secret="secret-" + os.urandom(12).hex())
        p0.values = rotated
        p0.start(RECOVER)
        assert_waits("refused_our_secret", "(1) rotated secret")
        step("(1) the fix: the peers restart with the new secret")
        for node in replicas:
            assert node.stop() == 0, node.log()[-2000:]
            node.values = rotated
            node.start()
        assert_recovers("(1) rotated secret")
        for node in replicas:
            node.wait_http("/replica", 200, 120, f"{node.name} replicating from the recovered primary")

        # --- 2. the peers' backup user is missing
        lose_primary("(2) backup user missing")
        hosts = {}
        for node in replicas:
            hosts[node.name] = node.sql("SELECT Host FROM mysql.user WHERE User = 'replboot_backup'")
            assert hosts[node.name], node.name
            for (host,) in hosts[node.name]:
                node.sql(f"SET sql_log_bin = 0; RENAME USER 'replboot_backup'@'{host}' TO 'replboot_gone'@'{host}'")
        p0.start(RECOVER)
        assert_waits("answered_error", "(2) backup user missing")
        step("(2) the fix: the backup user is back")
        for node in replicas:
            for (host,) in hosts[node.name]:
                node.sql(f"SET sql_log_bin = 0; RENAME USER 'replboot_gone'@'{host}' TO 'replboot_backup'@'{host}'")
        assert_recovers("(2) backup user missing")

        # --- 3. the peers' backup ports flooded from one address
        lose_primary("(3) flooded backup ports")
        flood = Flood([(node.addr, 3307) for node in replicas]).start()
        try:
            wait_until(lambda: flood.opened >= 16, 30, "the flood to hold its connections")
            p0.start(RECOVER)
            # Bounded well below what the flood could hold a donor's threads for: the probes
            # get through while it goes on, they do not wait for gaps in it.
            assert_recovers("(3) flooded backup ports", timeout=60)
        finally:
            flood.stop()
        step(f"(3) the flood opened {flood.opened} connections meanwhile")

        # --- 4. every node restarted at once
        lose_primary("(4) every node restarted")
        for node in replicas:
            assert node.stop() == 0, node.log()[-2000:]
        for node in nodes:
            node.start(RECOVER if node is p0 else ())
        assert_recovers("(4) every node restarted")
        for node in replicas:
            node.wait_http("/replica", 200, 120, f"{node.name} replicating after the restart")

        # --- 5. a diverged mysql-1 is no donor
        step("(5) an errant write on mysql-1")
        rows = r1.sql("SET GLOBAL read_only = 0; INSERT INTO app.t (id, origin, pad) VALUES (990001, 'errant', 'x'); "
                      "SELECT @@last_gtid; SET GLOBAL read_only = 1;")
        errant = rows[-1][0]
        wait_until(lambda: r1.status()["recovery"].get("diverged") is True, 60, "mysql-1 to see its divergence")
        step("(5) mysql-2's volume lost: it clones again, never from mysql-1")
        assert r2.stop() == 0, r2.log()[-2000:]
        shutil.rmtree(r2.datadir)
        r2.start()
        r2.wait_log(r"event=clone_done", 180, "mysql-2's new clone")
        log2 = r2.log()
        assert re.search(r"event=clone_candidate ordinal=1 .*diverged", log2), log2[-3000:]
        assert re.search(r"event=clone_connected peer=" + re.escape(p0.addr), log2) or \
            re.search(r"event=clone_header peer=" + re.escape(p0.addr), log2), log2[-3000:]
        r2.wait_http("/replica", 200, 120, "mysql-2 replicating")
        assert r2.sql("SELECT COUNT(*) FROM app.t WHERE id = 990001") == [["0"]], "the errant row came with the clone"
        step(f"(5) mysql-2 cloned mysql-0, not mysql-1 (errant {errant})")

        # --- 6. the operator's override
        step("(6) mysql-0 lost again, waiting for peers that refuse its secret")
        assert p0.stop() == 0, p0.log()[-2000:]
        shutil.rmtree(p0.datadir)
        p0.values = dict(SECRETS, secret="secret-" + os.urandom(12).hex())
        p0.start(RECOVER)
        wait_until(lambda: p0.status().get("bootstrap", {}).get("plan") == "wait", 60, "mysql-0 to wait")
        override = p0.datadir + ".replboot-initialize-empty"
        with open(override, "w") as f:
            f.write("yes\n")
        p0.wait_log(r"event=primary_recovery_override_ignored", 30, "a file without the phrase")
        assert p0.status()["bootstrap"]["plan"] == "wait"
        with open(override, "w") as f:
            f.write(OVERRIDE_PHRASE + "\n")
        p0.wait_log(r"event=primary_recovery_decision plan=initialize reason=operator_override", 30, "the override")
        p0.wait_log(r"event=primary_recovery_override ", 10)
        p0.wait_http("/primary", 200, 120, "an empty primary, as the operator asked")
        assert not os.path.exists(override), "the override is consumed"
        assert p0.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app' "
                      "AND table_name = 't'") == [["0"]]
        assert p0.status()["bootstrap"]["reason"] == "operator_override"
        step("(6) initialized empty once, on the operator's word")

        watcher.stop()
        assert not watcher.found, f"secrets seen in processes: {watcher.found[:5]}"


if __name__ == "__main__":
    run_tests(globals())
