"""A primary that lost its volume recovers it from its replicas (issue 11), and day one is as
fast as before: one cluster, both cases.

Day one: mysql-0 starts alone (no other ordinal in DNS): it initializes at once, saying so
(event=primary_recovery_decision ... reason=no_peers_in_dns, no wait), and creates the cluster id.
Then mysql-1 and mysql-2 clone and replicate, carrying the id; a ledger of acknowledged writes
is kept. Day two: mysql-0 is stopped, its datadir deleted, and started again: it asks its peers,
clones the most advanced one (all equal: the lowest ordinal, mysql-1), takes over the history
(read-only until then) and ends writable with every acknowledged row (CHECKSUM TABLE equal to
the replicas'); the replicas go on replicating from it without a re-clone (same processes, same
clone markers, no clone in their logs), and writes after the restart reach them.

Nodes, DNS and TLS as in cluster_test.py (its Node, ledger helpers and secrets are reused).
"""
import json
import os
import re
import shutil
import subprocess
import time

from cluster_test import SECRETS, Node, primary_gtid, table_state, wait_applied
from replboot_harness import (Dnsmasq, Harness, LeakWatcher, make_pki, read_text, replboot_bin, run_tests,
                              wait_until)

CLUSTER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def cluster_id(node):
    text = read_text(os.path.join(node.datadir, "replboot-cluster.id")).strip()
    assert CLUSTER_ID.fullmatch(text), (node.name, text)
    return text


def write_rows(primary, ids, origin):
    """Inserts `ids` as the app user; they are acknowledged when the client exits 0."""
    values = ",".join(f"({i}, '{origin}', REPEAT(MD5({i}), 4))" for i in ids)
    r = primary.app_sql(f"INSERT INTO app.t (id, origin, pad) VALUES {values}")
    assert r.returncode == 0, (primary.name, r.stderr.decode())
    return set(ids)


def assert_same_rows(nodes, expected, what):
    states = {node.name: table_state(node) for node in nodes}
    first = states[nodes[0].name]
    for name, s in states.items():
        missing = sorted(expected - set(s["ids"]))
        extra = sorted(set(s["ids"]) - expected)
        assert not missing and not extra, (what, name, missing[:10], extra[:10])
        assert s["count"] == s["distinct"] == len(expected), (what, name, s["count"], len(expected))
        assert s["checksum"] == first["checksum"], (what, name, s["checksum"], first["checksum"])
    return first["checksum"]


def test_day_one_then_a_lost_primary_volume():
    t0 = time.time()

    def step(text):
        print(f"[{time.time() - t0:6.1f}s] {text}", flush=True)

    with Harness("primary-recovery") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()
        make_pki(H.path("pki"), [f"mysql-{i}" for i in range(3)])
        nodes = [Node(H, i, dns) for i in range(3)]
        p0, r1, r2 = nodes
        watcher = LeakWatcher(SECRETS, scope=H.dir).start()
        # Long enough that a wait would be unmistakable in the log; day one must not wait at all.
        recover = ["--set", "bootstrap.recover_wait=60"]

        # --- Day one: no other ordinal in DNS. The decision is "no peers in DNS", at once.
        step("starting mysql-0 alone")
        p0.start(recover)
        p0.wait_log(r"event=after_ready_done", 120, "mysql-0 ready")
        log0 = p0.log()
        decisions = re.findall(r"event=primary_recovery_decision plan=(\S+) reason=(\S+) round=(\d+)", log0)
        assert decisions == [("initialize", "no_peers_in_dns", "1")], (decisions, log0[-3000:])
        assert "action=ask_peers" in log0 and "action=initialize" in log0, log0[-3000:]
        assert "plan=wait" not in log0 and "event=no_donor" not in log0, log0[-3000:]
        assert re.search(r"event=cluster_id_created id=\S+ reason=initialized", log0), log0[-3000:]
        st = p0.status()
        assert st["bootstrap"]["plan"] == "initialize" and st["bootstrap"]["reason"] == "no_peers_in_dns", st
        assert st["bootstrap"]["rounds"] == 1, st
        the_id = cluster_id(p0)
        p0.wait_http("/primary", 200, 30)

        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, origin VARCHAR(16) NOT NULL, "
                       "pad VARCHAR(200) NOT NULL) ENGINE=InnoDB;"
                       "USE app; INSERT INTO app.t SELECT seq, 'seed', REPEAT(MD5(seq), 4) FROM seq_1_to_300;")
        assert r.returncode == 0, r.stderr.decode()
        ledger = set(range(1, 301))

        # --- The replicas: each clones and replicates, carrying the cluster id.
        for node in (r1, r2):
            step(f"starting {node.name}")
            dns.add_host(f"{node.name}.mysql", node.addr).reload()
            node.start()
            node.wait_log(r"event=clone_done", 180, f"{node.name}'s clone")
            node.wait_http("/replica", 200, 90, "replicating after the clone")
            assert cluster_id(node) == the_id, node.name
        for batch in range(10):
            ledger |= write_rows(p0, range(1001 + batch * 20, 1021 + batch * 20), "before")
        gtid = primary_gtid(p0)
        for node in (r1, r2):
            wait_applied(node, gtid)
        checksum_before = assert_same_rows(nodes, ledger, "before the loss")
        step(f"{len(ledger)} acknowledged rows on all three, checksum {checksum_before}")

        # What must not change on the replicas: their processes, their clone markers, their clones.
        replica_pids = {node.name: node.proc.pid for node in (r1, r2)}
        markers = {node.name: read_text(os.path.join(node.datadir, "replboot-clone.json")) for node in (r1, r2)}
        clones_logged = {node.name: len(re.findall(r"event=clone_connected", node.log())) for node in (r1, r2)}

        # --- Day two: mysql-0's volume is lost.
        step("stopping mysql-0 and deleting its datadir")
        assert p0.stop() == 0, p0.log()[-2000:]
        shutil.rmtree(p0.datadir)
        step("starting mysql-0 on an empty datadir")
        p0.start(recover)
        m = p0.wait_log(r"event=primary_recovery_decision plan=clone reason=most_advanced_peer \S+ \S+ "
                        r"recover_wait_s=60 donor=(\S+)", 60, "the decision to clone a replica")
        assert m.group(1).startswith("mysql-1.mysql"), m.group(0)  # all equal: the lowest ordinal
        p0.wait_log(r"event=primary_recovered donor=mysql-1.mysql", 180, "the recovery clone")
        p0.wait_log(r"event=primary_promoted", 120, "the takeover of the history")
        p0.wait_log(r"event=after_ready_done", 60, "mysql-0 ready after the recovery")
        p0.wait_http("/primary", 200, 30, "writable after the recovery")
        log0 = p0.log()
        assert "plan=initialize" not in log0 and "action=initialize" not in log0, log0[-3000:]
        assert re.search(r"event=mysqld_started .*read_only_until_promoted=true", log0), log0[-3000:]
        st = p0.status()
        assert st["read_only"] is False and st["role"] == "primary", st
        assert st["bootstrap"]["plan"] == "clone" and st["bootstrap"]["reason"] == "most_advanced_peer", st
        assert st["bootstrap"]["donor"].startswith("mysql-1.mysql"), st
        assert cluster_id(p0) == the_id, "the recovered primary keeps the cluster's id"
        assert not os.path.exists(os.path.join(p0.datadir, "replboot-promote.json"))
        r = subprocess.run([replboot_bin(), "status", "--url", p0.url("/status")], capture_output=True, text=True)
        assert re.search(r"^bootstrap\s+clone \(most_advanced_peer\) from mysql-1\.mysql", r.stdout, re.M), r.stdout

        # Every acknowledged row, the same table as the replicas'.
        checksum_after = assert_same_rows(nodes, ledger, "after the recovery")
        assert checksum_after == checksum_before, (checksum_before, checksum_after)
        step(f"mysql-0 recovered {len(ledger)} rows, checksum {checksum_after}")

        # Writes after the restart reach the replicas, which replicate from it as they did.
        for batch in range(5):
            ledger |= write_rows(p0, range(5001 + batch * 20, 5021 + batch * 20), "after")
        gtid = primary_gtid(p0)
        for node in (r1, r2):
            wait_applied(node, gtid)
            node.wait_http("/replica", 200, 30, "replicating from the recovered primary")
            assert node.proc.pid == replica_pids[node.name] and node.proc.poll() is None, node.name
            assert read_text(os.path.join(node.datadir, "replboot-clone.json")) == markers[node.name], node.name
            assert len(re.findall(r"event=clone_connected", node.log())) == clones_logged[node.name], \
                (node.name, node.log()[-3000:])
            assert node.status()["replication"]["source_host"] == "mysql-0.mysql", node.name
        assert_same_rows(nodes, ledger, "after writes on the recovered primary")
        step(f"{len(ledger)} rows on all three after writing on the recovered primary")

        watcher.stop()
        assert watcher.scans > 10, watcher.scans
        assert not watcher.found, f"secrets seen in processes: {watcher.found[:5]}"
        for node in (r2, r1, p0):
            assert node.stop() == 0, node.name


if __name__ == "__main__":
    run_tests(globals())
