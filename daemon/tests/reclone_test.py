"""Day two for replicas (issue 11), on one 3-node cluster driven by `replboot run`:

(a) purged binlogs: mysql-2 is stopped, the primary writes, rotates and purges its binlogs, and
    mysql-2 comes back to IO error 1236: it re-clones itself (from mysql-1) within
    replication.reclone_after plus one clone's time, ends ready, and its checksums equal the
    primary's.
(c) re-clone interrupted: mysql-1 is put in the same state and replboot is SIGKILLed while its
    automatic re-clone streams: nothing it started survives it, the old datadir is still there
    (or the new one is, never neither), and after a restart it re-clones and converges.
(b) errant transaction: a row written directly on mysql-2 with read_only turned off: mysql-2 is
    reported (not ready, the reason names the GTID), never re-cloned, nothing is deleted.

Every write the primary acknowledged is in a ledger compared with every node at the end of each
case. The nodes are cluster_test's (TLS backups, a mount namespace whose resolv.conf names the
dnsmasq), with a short reclone_after; the primary streams backups at a limited rate so that the
kill of (c) lands in the middle of a stream.
"""
import json
import os
import re
import signal
import subprocess
import time

from cluster_test import SECRETS, Node, primary_gtid, table_state, wait_applied
from replboot_harness import (Dnsmasq, Harness, LeakWatcher, make_pki, processes_mentioning, read_text,
                              replboot_bin, run_tests, wait_until)

RECLONE_AFTER = 5
DAY_TWO_SETTINGS = ["--set", f"replication.reclone_after={RECLONE_AFTER}",
                    "--set", "replication.reclone_min_interval=3600"]
# mysql-0 streams backups at this rate: a stream of the test's datadir lasts a few seconds.
PRIMARY_BYTES_PER_S = 4 * 1024 * 1024


class Ledger:
    """Ids of the rows the primary acknowledged, and the checks against every node."""

    def __init__(self, primary):
        self.primary = primary
        self.ids = set()
        self.next_id = 1

    def write(self, n, origin):
        ids = list(range(self.next_id, self.next_id + n))
        values = ",".join(f"({i}, '{origin}', REPEAT(MD5({i}), 4))" for i in ids)
        r = self.primary.app_sql(f"INSERT INTO app.t (id, origin, pad) VALUES {values}")
        assert r.returncode == 0, r.stderr.decode()
        self.ids |= set(ids)
        self.next_id += n

    def check(self, nodes, what):
        gtid = primary_gtid(self.primary)
        for node in nodes:
            if node is not self.primary:
                wait_applied(node, gtid, timeout=60)
        want = table_state(self.primary)
        assert want["ids"] == sorted(self.ids), \
            (what, "primary", sorted(self.ids - set(want["ids"]))[:10], sorted(set(want["ids"]) - self.ids)[:10])
        for node in nodes:
            got = table_state(node)
            assert got["ids"] == want["ids"] and got["checksum"] == want["checksum"], \
                (what, node.name, got["count"], want["count"], got["checksum"], want["checksum"])
        print(f"  {what}: {len(self.ids)} rows, checksum {want['checksum']} on "
              f"{', '.join(n.name for n in nodes)}", flush=True)


def binlogs(primary):
    return [row[0] for row in primary.sql("SHOW BINARY LOGS")]


def purge_binlogs(primary, others):
    """FLUSH BINARY LOGS; one more write so the running replicas' dump threads move to the new
    file; PURGE BINARY LOGS TO it. Returns the files purged."""
    before = binlogs(primary)
    primary.sql("FLUSH BINARY LOGS")
    newest = binlogs(primary)[-1]
    primary.app_sql("INSERT INTO app.t (id, origin, pad) VALUES (-1, 'rotate', 'x')")
    primary.app_sql("DELETE FROM app.t WHERE id = -1")
    gtid = primary_gtid(primary)
    for node in others:
        wait_applied(node, gtid)

    def purged():
        primary.sql(f"PURGE BINARY LOGS TO '{newest}'")
        return binlogs(primary)[0] == newest
    wait_until(purged, 30, f"the binlogs before {newest} to be purged")
    return [b for b in before if b != newest]


def status_json(node):
    return node.status()


def metric(node, name):
    _, text = node.get("/metrics")
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return m.group(1) if m else None


def replboot_status(node):
    return subprocess.run([replboot_bin(), "status", "--url", node.url("/status")], capture_output=True, text=True)


def has_data(datadir):
    return os.path.isdir(os.path.join(datadir, "mysql"))


def test_replica_day_two():
    t0 = time.time()

    def step(text):
        print(f"[{time.time() - t0:6.1f}s] {text}", flush=True)

    with Harness("reclone") as H:
        # A name per node as it starts, as pods get theirs: a primary with an empty datadir
        # waits for every peer that is in DNS until it has answered.
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        make_pki(H.path("pki"), [f"mysql-{i}" for i in range(3)])
        p0, r1, r2 = nodes = [Node(H, i, dns) for i in range(3)]
        watcher = LeakWatcher(SECRETS, scope=H.dir).start()

        step("starting the cluster")
        p0.start(["--set", f"backup.bandwidth_limit={PRIMARY_BYTES_PER_S}", *DAY_TWO_SETTINGS])
        p0.wait_http("/ready", 200, 120, "the primary")
        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, origin VARCHAR(16) NOT NULL, "
                       "pad VARCHAR(200) NOT NULL) ENGINE=InnoDB")
        assert r.returncode == 0, r.stderr.decode()
        ledger = Ledger(p0)
        ledger.write(200, "seed")
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        r1.start(DAY_TWO_SETTINGS)
        r1.wait_http("/replica", 200, 240, "mysql-1 replicating")
        dns.add_host("mysql-2.mysql", H.addr(2)).reload()
        r2.start(DAY_TWO_SETTINGS)
        r2.wait_http("/replica", 200, 240, "mysql-2 replicating")
        # The watcher publishes once replication is set up, within a second or two; its first
        # tick may still see the snapshot taken before the set-up ("waiting: not configured").
        def healthy_and_compared():
            rec = status_json(r2)["recovery"]
            return rec["state"] == "healthy" and rec["gtid_relation"] in ("equal", "behind")
        wait_until(healthy_and_compared, 30, "mysql-2 healthy with a first GTID comparison")
        ledger.check(nodes, "cluster up")

        # --- (a) purged binlogs: mysql-2 re-clones itself.
        step("(a) stopping mysql-2, writing and purging the primary's binlogs")
        datadir_inode = os.stat(r2.datadir).st_ino
        assert r2.stop() == 0, r2.log()[-3000:]
        ledger.write(100, "while-down")
        purged = purge_binlogs(p0, [r1])
        step(f"purged {purged}; starting mysql-2")
        started = time.time()
        r2.start(DAY_TWO_SETTINGS)
        m = r2.wait_log(r"event=replication_failure class=source_purged reason=(.*)", 120, "the purge seen")
        assert "1236" in m.group(1), m.group(0)
        st = status_json(r2)
        assert st["ready"] is False, st
        r2.wait_log(r"event=reclone_started", RECLONE_AFTER + 60, "the automatic re-clone")
        m = r2.wait_log(r"event=reclone_done count=(\d+)", 300, "the re-clone to commit")
        assert m.group(1) == "1", m.group(0)
        r2.wait_http("/ready", 200, 120, "mysql-2 ready after its re-clone")
        elapsed = time.time() - started
        log2 = r2.log()
        assert "action=clone" in log2 and "event=old_datadir_removed" in log2, log2[-3000:]
        assert re.search(r"event=clone_done peer=" + re.escape(H.addr(1)), log2), "not re-cloned from mysql-1"
        assert os.stat(r2.datadir).st_ino != datadir_inode, "the datadir was not replaced"
        step(f"(a) mysql-2 re-cloned and ready {elapsed:.1f}s after its start")
        rec = wait_until(lambda: (lambda r: r if r["state"] == "healthy" else None)(status_json(r2)["recovery"]),
                         30, "mysql-2's watcher healthy after its re-clone")
        assert rec["reclones"] == 1, rec
        assert "binlogs" in rec["last_reclone_reason"], rec
        assert metric(r2, "replboot_reclones_total") == "1", metric(r2, "replboot_reclones_total")
        with open(r2.datadir + ".replboot-reclone.json") as f:
            record = json.load(f)
        assert record["count"] == 1 and record["in_progress"] is False, record
        out = replboot_status(r2)
        assert out.returncode == 0 and "auto_reclones          1, last because" in out.stdout, out.stdout
        ledger.write(50, "after-a")
        ledger.check(nodes, "(a) after the re-clone")

        # --- (c) an automatic re-clone killed mid-stream: never neither datadir.
        step("(c) stopping mysql-1, writing and purging")
        assert r1.stop() == 0, r1.log()[-3000:]
        ledger.write(100, "while-down-c")
        purge_binlogs(p0, [r2])
        r1.start(DAY_TWO_SETTINGS)
        r1.wait_log(r"event=reclone_started", RECLONE_AFTER + 120, "mysql-1's automatic re-clone")
        r1.wait_log(r"event=clone_header", 120, "the re-clone's stream to start")
        time.sleep(1)
        assert "event=clone_committed" not in r1.log(), "the re-clone committed before the kill"
        os.kill(r1.proc.pid, signal.SIGKILL)
        r1.proc.wait(timeout=30)
        step("(c) SIGKILLed mysql-1's replboot mid-stream")
        # Nothing it started lives on: mysqld was stopped for the re-clone, and the tools it runs
        # die with it (parent-death signal).
        wait_until(lambda: not processes_mentioning(r1.base), 30, "mysql-1's processes to end")
        staging = r1.datadir + ".replboot-staging"
        committed = os.path.exists(os.path.join(staging, "replboot-clone.json"))
        assert has_data(r1.datadir) or committed, \
            f"neither the old datadir nor a committed clone: {os.listdir(os.path.dirname(r1.datadir))}"
        with open(r1.datadir + ".replboot-reclone.json") as f:
            record = json.load(f)
        assert record["in_progress"] is True and record["count"] == 0, record
        r1.start(DAY_TWO_SETTINGS)
        r1.wait_log(r"event=reclone_interrupted", 30, "the interrupted re-clone seen")
        r1.wait_log(r"event=reclone_done count=1", RECLONE_AFTER + 300, "the re-clone after the restart")
        r1.wait_http("/ready", 200, 120, "mysql-1 ready after its re-clone")
        assert status_json(r1)["recovery"]["reclones"] == 1
        ledger.write(50, "after-c")
        ledger.check(nodes, "(c) after the interrupted re-clone")

        # --- (b) an errant transaction on mysql-2: reported, never re-cloned, nothing deleted.
        step("(b) writing on mysql-2 with read_only off")
        errant_id = 990001
        rows = r2.sql("SET GLOBAL read_only = 0; "
                      f"INSERT INTO app.t (id, origin, pad) VALUES ({errant_id}, 'errant', 'x'); "
                      "SELECT @@last_gtid; SET GLOBAL read_only = 1;")
        errant = rows[-1][0]
        assert re.fullmatch(r"0-102-\d+", errant), rows
        step(f"(b) errant GTID {errant}")

        def reported():
            code, body = r2.get("/ready")
            return code == 503 and errant in body and (code, body)
        wait_until(reported, 30, "/ready to name the errant GTID")
        code, body = r2.get("/replica")
        assert code == 503 and errant in body, (code, body)
        wait_until(lambda: errant in status_json(r2)["recovery"]["errant_gtids"], 30,
                   "/status to name the errant GTID")
        rec = status_json(r2)["recovery"]
        assert rec["diverged"] is True and errant in rec["errant_gtids"], rec
        # MariaDB counts a "d-s-n" entry as n transactions (gtid.h: a measure, not exact).
        assert rec["errant_transactions"] >= 1, rec
        assert metric(r2, "replboot_replica_diverged") == "1"
        assert metric(r2, "replboot_replica_divergences_total") == "1"
        assert re.search(r"event=replica_diverged .*errant_gtids=\S*" + re.escape(errant), r2.log())
        # The primary writes on: mysql-2's SQL thread meets the same sequence number (strict mode).
        ledger.write(20, "after-b")
        datadir_inode = os.stat(r2.datadir).st_ino
        time.sleep(RECLONE_AFTER * 3)
        log2 = r2.log()
        assert len(re.findall(r"event=reclone_started", log2)) == 1, re.findall(r"event=reclone_\S+.*", log2)
        assert os.stat(r2.datadir).st_ino == datadir_inode, "the diverged replica's datadir was replaced"
        assert r2.sql(f"SELECT origin FROM app.t WHERE id = {errant_id}") == [["errant"]]
        rec = status_json(r2)["recovery"]
        assert rec["state"] in ("diverged", "reclone_refused") and rec["diverged"], rec
        assert rec["reclones"] == 1, rec
        assert r2.get("/ready")[0] == 503
        out = replboot_status(r2)
        assert out.returncode == 3 and "DIVERGED" in out.stdout and errant in out.stdout, (out.returncode, out.stdout)
        step(f"(b) mysql-2 reported: {rec['reason']}")
        ledger.check([p0, r1], "(b) the primary and mysql-1")

        watcher.stop()
        assert not watcher.found, f"secrets seen in processes: {watcher.found[:5]}"
        for node in reversed(nodes):
            assert node.stop() == 0, (node.name, node.log()[-3000:])
        for fname in os.listdir(H.dir):
            if fname.endswith(".log"):
                text = read_text(H.path(fname))
                for name, s in SECRETS.items():
                    assert s not in text, f"{name} secret in {fname}"
        dns.stop()
    step("done")


if __name__ == "__main__":
    run_tests(globals())
