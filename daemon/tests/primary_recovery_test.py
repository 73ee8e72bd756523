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

test_bootstrap_from_the_store_to_restore_target (issue 24): a primary alone with a file store:
rows 1..50, a backup, rows 51..70, a second later (T) rows 71..90 (G: the GTID position then),
rows 91..100, its binlog files archived with `replboot binlog archive-file`. Its volume lost each
time, it bootstraps from the store:
  - restore.target past the archive: it fails closed (no mysqld, nothing in the datadir), saying
    why and the restorable range in /status (plan wait, reason restore_refused) and the log;
  - restore.target = G: exactly rows 1..90, writable, in a new history (its replboot.history
    row); restarted with another target but its datadir intact, it restores nothing;
  - restore.target = T: exactly rows 1..70.

Nodes, DNS and TLS as in cluster_test.py (its Node, ledger helpers and secrets are reused).
"""
import json
import os
import re
import shutil
import subprocess
import time

from cluster_test import SECRETS, Node, primary_gtid, table_state, wait_applied
from replboot_harness import (Dnsmasq, Harness, LeakWatcher, make_pki, node_env, read_text, replboot_bin,
                              run_tests, wait_until, write_private)

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


def cli(node, args, settings, timeout=300):
    """`replboot <args>` with node's own settings (its argv with `run` replaced)."""
    argv = node.argv(settings)
    i = argv.index("run")
    r = subprocess.run(argv[:i] + list(args) + argv[i + 1:], capture_output=True, text=True, timeout=timeout,
                       env=node_env(SECRETS))
    assert r.returncode == 0, f"replboot {args[0]}: exit {r.returncode}\n{(r.stdout + r.stderr)[-4000:]}"
    return r


def test_bootstrap_from_the_store_to_restore_target():
    t0 = time.time()

    def step(text):
        print(f"[{time.time() - t0:6.1f}s] {text}", flush=True)

    with Harness("primary-restore-target") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()
        make_pki(H.path("pki"), ["mysql-0"])
        key_file = write_private(H.path("archive.key"), "k" + os.urandom(24).hex() + "\n")
        store = ["--set", f"archive.store=file://{H.path('store')}", "--set", f"archive.key_file={key_file}"]
        p0 = Node(H, 0, dns)

        def ids():
            return [int(r[0]) for r in p0.sql("SELECT id FROM app.t ORDER BY id")]

        def insert(first, last):
            r = p0.app_sql(f"INSERT INTO app.t SELECT seq, 'r' FROM app.seq_{first}_to_{last}")
            assert r.returncode == 0, r.stderr.decode()

        def lose_volume_and_start(target, exit_code=0):
            assert p0.stop() == exit_code, p0.log()[-3000:]
            shutil.rmtree(p0.datadir, ignore_errors=True)
            p0.start(store + ["--set", f"restore.target={target}"])

        step("mysql-0 alone: the store is empty, it initializes")
        p0.start(store)
        p0.wait_http("/primary", 200, 120, "mysql-0 initialized")
        assert "event=primary_recovery_store_empty action=initialize" in p0.log(), p0.log()[-3000:]
        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(8) NOT NULL) ENGINE=InnoDB")
        assert r.returncode == 0, r.stderr.decode()
        insert(1, 50)
        backup_id = cli(p0, ["backup", "now", "--from", p0.addr], store).stdout.split()[-1]
        insert(51, 60)
        insert(61, 70)
        time.sleep(2.1)
        target_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) - 1))
        insert(71, 80)
        insert(81, 90)
        gtid = p0.sql("SELECT @@gtid_binlog_pos")[0][0]
        insert(91, 100)
        p0.sql("FLUSH BINARY LOGS")
        with open(os.path.join(p0.datadir, "mysql-bin.index")) as f:
            binlogs = [os.path.join(p0.datadir, os.path.basename(n.strip())) for n in f if n.strip()]
        cli(p0, ["binlog", "archive-file", *binlogs], store)
        step(f"backup {backup_id}, archived to {gtid}; T={target_time}")

        # --- A target past the archive: fails closed, naming the range, and keeps asking.
        lose_volume_and_start("2099-01-01T00:00:00Z")
        m = p0.wait_log(r"event=primary_recovery_decision plan=wait reason=restore_refused round=1 "
                        r"failures=1 retry_in_s=\S+ detail=(.*)", 60, "the refusal")
        assert "past the end of the archive" in m.group(1) and "restorable" in m.group(1), m.group(0)
        assert backup_id in m.group(1), m.group(0)  # the range starts at the backup
        st = p0.status()["bootstrap"]
        assert st["plan"] == "wait" and st["reason"] == "restore_refused", st
        assert "restore.target" in st["detail"] and "restorable" in st["detail"], st
        assert p0.get("/primary")[0] != 200 and p0.get("/ready")[0] != 200
        assert not os.path.exists(p0.datadir) or os.listdir(p0.datadir) == [], os.listdir(p0.datadir)
        assert "event=mysqld_started" not in p0.log() and "action=initialize" not in p0.log(), p0.log()[-3000:]
        step("a target past the archive: refused")

        # --- restore.target = G: exactly the rows up to it, writable, in a new history.
        lose_volume_and_start(gtid, exit_code=143)  # stopped while it waits: 128 + SIGTERM
        p0.wait_http("/primary", 200, 180, "mysql-0 restored to the GTID")
        assert ids() == list(range(1, 91)), ids()
        log0 = p0.log()
        assert re.search(rf"event=primary_store_restore_plan target=\"gtid {gtid}\" plan=\"backup {backup_id} \+ "
                         r"\d+ archived segments to gtid ", log0), log0[-3000:]
        m = re.search(r"event=pitr_restored .* new_history=(\S+)", log0)
        assert m, log0[-3000:]
        assert p0.sql("SELECT id FROM replboot.history") == [[m.group(1)]]
        st = p0.status()["bootstrap"]
        assert st["plan"] == "restore" and st["reason"] == "restored_from_store", st
        assert backup_id in st["detail"] and f"gtid {gtid}" in st["detail"], st
        r = p0.app_sql("INSERT INTO app.t VALUES (1000, 'new')")
        assert r.returncode == 0, r.stderr.decode()
        step("restored to the GTID")

        # Its datadir intact, a restart restores nothing, whatever restore.target says.
        assert p0.stop() == 0, p0.log()[-3000:]
        p0.start(store + ["--set", f"restore.target={target_time}"])
        p0.wait_http("/primary", 200, 120, "mysql-0 restarted")
        assert ids() == list(range(1, 91)) + [1000], ids()
        assert "event=primary_recovery_decision" not in p0.log(), p0.log()[-3000:]

        # --- restore.target = T: exactly the rows committed by then.
        lose_volume_and_start(target_time)
        p0.wait_http("/primary", 200, 180, "mysql-0 restored to the time")
        assert ids() == list(range(1, 71)), ids()
        assert f"target=\"time {target_time}\"" in p0.log(), p0.log()[-3000:]
        step("restored to the time")
        assert p0.stop() == 0, p0.log()[-3000:]


if __name__ == "__main__":
    run_tests(globals())
