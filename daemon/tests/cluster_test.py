"""A whole cluster driven by `replboot run` alone (issues 6 and 7, end to end).

Three nodes on loopback, each `mysql-i` at H.addr(i) with the same ports (3306 mysqld, 3307
backup, 8008 HTTP), a dnsmasq on H.addr(9):53 playing the headless Service. mysql-0 initializes
and becomes the primary; mysql-1 starts with an empty datadir, finds mysql-0 through DNS, clones
it and replicates; mysql-2 clones from mysql-1 (the nearest lower peer: the slave_info path) while
a writer keeps inserting on the primary. Then: no row missing or doubled anywhere, writes only on
the primary, a restarted replica is not configured twice, STOP SLAVE turns a replica unready and
/wait times out, no secret on any command line, in any child's environment or in any log.

Each replboot runs in its own mount namespace whose /etc/resolv.conf names the dnsmasq, so the
mariadbd it starts resolves MASTER_HOST=mysql-0.mysql the way a pod does.
"""
import json
import os
import signal
import re
import subprocess
import threading
import time

from replboot_harness import (FAST_CLUSTER_SETTINGS, Dnsmasq, Harness, LeakWatcher, assert_clean_descendants, assert_no_secret_in_procs,
                              make_pki, proc_comm, processes_mentioning, random_secrets, read_text, regular_files,
                              resolv_conf_launcher, run_tests, wait_until, write_private)
from replboot_harness import Node as HarnessNode

SECRETS = random_secrets()
# mysql-1's backup.bandwidth_limit (see where it starts).
DONOR_BYTES_PER_S = 4 * 1024 * 1024


class Node(HarnessNode):
    """mysql-i of the cluster: the harness's node, in a mount namespace whose /etc/resolv.conf
    names the dnsmasq, with backups over TLS and short DNS and replication timeouts."""

    def __init__(self, h, i, dns):
        base = h.path(f"mysql-{i}")
        os.makedirs(base, exist_ok=True)
        self.resolv = os.path.join(base, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {dns.addr}\noptions timeout:1 attempts:2\n")
        os.chmod(self.resolv, 0o644)
        super().__init__(h, i, base=base, values=SECRETS, dns=dns, launcher=resolv_conf_launcher(self.resolv))
        self.root_cnf = write_private(os.path.join(self.base, "root.cnf"),
                                      f"[client]\nuser=root\npassword={SECRETS['root']}\nsocket={self.socket}\n")
        self.app_cnf = write_private(os.path.join(self.base, "app.cnf"),
                                     f"[client]\nuser=app\npassword={SECRETS['app']}\n")
        self.pki = h.path("pki")

    def argv(self, extra=()):
        return super().argv([
            *FAST_CLUSTER_SETTINGS,
            "--set", "replication.max_lag=5",
            # Backups cross the network over TLS here (the pods test keeps plaintext and splice).
            "--set", "backup.tls=true",
            "--set", f"backup.tls_cert={self.pki}/{self.name}.pem",
            "--set", f"backup.tls_key={self.pki}/{self.name}.key",
            "--set", f"backup.tls_ca={self.pki}/ca.pem", *extra])

    def status(self):
        code, body = self.get("/status")
        assert code in (200, 503), (self.name, code, body)  # 503 with the JSON when not ready
        return json.loads(body)

    def sql(self, statement, check=True):
        """Rows of a statement run as root through the socket."""
        r = subprocess.run(["mariadb", f"--defaults-extra-file={self.root_cnf}", "-N", "-B"],
                           input=statement.encode(), capture_output=True)
        if check and r.returncode != 0:
            raise AssertionError(f"SQL as root on {self.name} failed: {statement!r}: {r.stderr.decode().strip()}")
        return [line.split("\t") for line in r.stdout.decode().splitlines()]

    def app_sql(self, statement):
        """The app user over TCP, as an application would; the CompletedProcess."""
        return subprocess.run(["mariadb", f"--defaults-extra-file={self.app_cnf}", "-N", "-B",
                               f"--host={self.addr}", "--port=3306", "--protocol=TCP"],
                              input=statement.encode(), capture_output=True)


class Writer(threading.Thread):
    """Inserts rows on the primary as the app user, one short transaction per client run, and
    records exactly which ids committed (a run that exits 0 committed its whole batch)."""

    def __init__(self, primary, first_id, batch=5, pause=0.02):
        super().__init__(daemon=True)
        self.primary = primary
        self.next_id = first_id
        self.batch = batch
        self.pause = pause
        self.committed = []
        self.failures = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            ids = list(range(self.next_id, self.next_id + self.batch))
            values = ",".join(f"({i}, 'writer', REPEAT(MD5({i}), 4))" for i in ids)
            r = self.primary.app_sql(f"INSERT INTO app.t (id, origin, pad) VALUES {values}")
            if r.returncode == 0:
                self.committed += ids
                self.next_id += self.batch
            else:
                # Uncertain outcome: these ids are never reused, and the test fails on it.
                self.failures.append((ids, r.stderr.decode().strip()))
                self.next_id += self.batch
            time.sleep(self.pause)

    def stop(self):
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "writer did not stop"


def table_state(node):
    rows = node.sql("SELECT COUNT(*), COUNT(DISTINCT id) FROM app.t; CHECKSUM TABLE app.t;")
    count, distinct = rows[0]
    checksum = rows[1][1]
    ids = [int(r[0]) for r in node.sql("SELECT id FROM app.t ORDER BY id")]
    return {"count": int(count), "distinct": int(distinct), "checksum": checksum, "ids": ids}


def primary_gtid(primary):
    """The primary's binlog position right now (its last commit included)."""
    return primary.sql("SELECT @@GLOBAL.gtid_binlog_pos")[0][0]


def gtid_seq(gtid):
    """Sequence number of a single-domain MariaDB GTID position (0-100-N -> N)."""
    m = re.fullmatch(r"0-100-(\d+)", gtid)
    assert m, f"not a single-domain position of server 100: {gtid!r}"
    return int(m.group(1))


def check_status_gtid_is_current(primary, deferred, what):
    """/status answers from the poller's snapshot, collected once a second (issue 15: requests
    cost the database nothing), so its gtid_position reaches a commit within about a second.
    Read-your-writes does not take its position from /status: the application reads @@last_gtid
    in its own session (see the app user's insert below)."""
    committed = primary_gtid(primary)
    try:
        wait_until(lambda: gtid_seq(primary.status()["gtid_position"]) >= gtid_seq(committed), 3,
                   "/status to reach the last commit", interval=0.05)
    except AssertionError:
        deferred.append(f"{what}: /status on the primary had not reached the commit at {committed} 3s later "
                        f"(it shows {primary.status()['gtid_position']})")


def wait_applied(node, gtid, timeout=60):
    status, body = node.get(f"/wait?gtid={gtid}&timeout={timeout}", timeout=timeout + 10)
    assert status == 200, (node.name, gtid, status, body, node.get("/status"))


def check_mysqld_children(node, mysqld_pid):
    """mysqld (and every other child of replboot) carries no secret in argv or environment."""
    assert_clean_descendants(node.proc.pid, SECRETS, must_include=mysqld_pid)


def files_with_secrets(root):
    """(path, secret name) for every file under root holding a secret in clear text, except the
    test's own client option files and mysqld's master.info, where MariaDB itself keeps the
    replication password (CHANGE MASTER stores it there by design)."""
    hits = []
    for path, data in regular_files(root):
        fname = os.path.basename(path)
        if fname in ("root.cnf", "app.cnf"):
            continue
        for name, s in SECRETS.items():
            if s.encode() in data and not (fname == "master.info" and name == "repl"):
                hits.append((path, name))
    return hits


def test_three_node_cluster_end_to_end():
    t0 = time.time()

    def step(text):
        print(f"[{time.time() - t0:6.1f}s] {text}", flush=True)

    with Harness("cluster") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()
        make_pki(H.path("pki"), [f"mysql-{i}" for i in range(3)])
        nodes = [Node(H, i, dns) for i in range(3)]
        p0, r1, r2 = nodes
        deferred = []  # failures that must not stop the later cases
        watcher = LeakWatcher(SECRETS, scope=H.dir).start()

        # --- mysql-0: initialized, primary, ready.
        step("starting mysql-0")
        p0.start()
        p0.wait_log(r"event=after_ready_done", 120, "mysql-0 ready and its services started")
        p0.wait_http("/ready", 200, 30)
        p0.wait_http("/primary", 200, 10)
        assert p0.get("/replica")[0] == 503
        assert "action=initialize" in p0.log(), p0.log()[-2000:]
        st = p0.status()
        assert st["role"] == "primary" and st["read_only"] is False and st["server_id"] == 100, st

        # The app user (created by replboot from the Secret) writes over TCP on the primary.
        # `app` exists already: the primary creates cluster.app_databases with the accounts.
        r = p0.app_sql("CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.t (id INT PRIMARY KEY, origin VARCHAR(16) NOT NULL, "
                       "pad VARCHAR(200) NOT NULL) ENGINE=InnoDB;"
                       "USE app; INSERT INTO app.t SELECT seq, 'seed', REPEAT(MD5(seq), 4) FROM seq_1_to_500;")
        assert r.returncode == 0, r.stderr.decode()
        expected = set(range(1, 501))
        # Its grants are on `app` only: the grant tables are out of its reach.
        r = p0.app_sql("INSERT INTO mysql.global_priv VALUES ('%', 'intruder', '{}')")
        assert r.returncode != 0 and b"denied" in r.stderr, r.stderr.decode()
        r = p0.app_sql("CREATE DATABASE elsewhere")
        assert r.returncode != 0 and b"denied" in r.stderr, r.stderr.decode()

        # --- mysql-1: empty datadir, discovers mysql-0 through DNS, clones it, replicates.
        step("starting mysql-1 (empty datadir)")
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        # mysql-1 serves mysql-2's clone at a limited rate, so the backup runs for some seconds and
        # the watcher's scans see its mariabackup (a full-speed one can start and end between two).
        r1.start(["--set", f"backup.bandwidth_limit={DONOR_BYTES_PER_S}"])
        r1.wait_log(r"event=bootstrap_decision action=clone", 30)
        m = r1.wait_log(r"event=clone_done peer=(\S+)", 180, "mysql-1's clone")
        assert m.group(1) == f"{H.addr(0)}:3307", m.group(0)
        assert "event=backup_server_listening" in p0.log() and "tls=verify-peer" in p0.log(), p0.log()[-2000:]
        r1.wait_http("/replica", 200, 90, "replicating after the clone")
        log1 = r1.log()
        m = re.search(r"event=replication_configured source=(\S+) .*origin=(\S+)", log1)
        assert m and m.group(1) == "mysql-0.mysql:3306", log1[-3000:]
        assert "binlog_info" in m.group(2), m.group(0)  # a clone of the primary
        assert "event=clone_committed" in log1 and "event=mysqld_started" in log1
        step("mysql-1 replicating")
        r1.wait_log(r"event=backup_server_listening|event=after_ready_done", 30, "mysql-1's backup server")

        # --- mysql-2: clones from mysql-1 (nearest lower) while the writer inserts on the primary.
        writer = Writer(p0, first_id=10001)
        writer.start()
        wait_until(lambda: len(writer.committed) >= 50, 30, "the writer to commit rows")
        step("writer running; starting mysql-2 (empty datadir)")
        dns.add_host("mysql-2.mysql", H.addr(2)).reload()
        r2.start()
        r2.wait_log(r"event=clone_header", 120, "mysql-2's clone to start")
        during_clone = len(writer.committed)
        m = r2.wait_log(r"event=clone_done peer=(\S+)", 180, "mysql-2's clone")
        during_clone = len(writer.committed) - during_clone
        assert during_clone > 0, "the writer committed nothing while mysql-2 was cloning"
        assert m.group(1) == f"{H.addr(1)}:3307", f"mysql-2 cloned from {m.group(1)}, not mysql-1: {m.group(0)}"
        r2.wait_http("/replica", 200, 90, "replicating after the clone")
        log2 = r2.log()
        m = re.search(r"event=replication_configured source=(\S+) .*origin=(\S+)", log2)
        assert m and m.group(1) == "mysql-0.mysql:3306", log2[-3000:]
        assert "slave_info" in m.group(2), f"mysql-2 did not use the replica's slave_info: {m.group(0)}"
        assert "event=backup_served" in r1.log(), r1.log()[-3000:]
        step(f"mysql-2 replicating; writer committed {len(writer.committed)} rows so far, "
             f"{during_clone} during the clone")
        time.sleep(2)  # a little more writing after mysql-2's replication is running
        writer.stop()
        step(f"writer stopped: {len(writer.committed)} rows committed, {len(writer.failures)} failures")
        assert not writer.failures, writer.failures[:3]
        assert len(writer.committed) >= 100, len(writer.committed)
        expected |= set(writer.committed)

        # Both replicas caught up with the primary's position after the writer's last commit.
        check_status_gtid_is_current(p0, deferred, "after the writer stopped")
        gtid = primary_gtid(p0)
        gtid_seq(gtid)
        for node in (r1, r2):
            wait_applied(node, gtid)
        states = {node.name: table_state(node) for node in nodes}
        primary_state = states["mysql-0"]
        assert primary_state["ids"] == sorted(expected), \
            f"primary rows differ from what was committed: missing {sorted(expected - set(primary_state['ids']))[:10]}"
        for name, s in states.items():
            assert s["count"] == s["distinct"] == len(expected), (name, s["count"], s["distinct"], len(expected))
            missing = sorted(expected - set(s["ids"]))
            extra = sorted(set(s["ids"]) - expected)
            assert not missing and not extra, (name, missing[:10], extra[:10])
            assert s["checksum"] == primary_state["checksum"], (name, s["checksum"], primary_state["checksum"])
        step(f"{len(expected)} rows, checksum {primary_state['checksum']} on all three nodes")

        # Roles over HTTP.
        for node in (r1, r2):
            assert node.get("/replica")[0] == 200, node.name
            assert node.get("/primary")[0] == 503, node.name
            assert node.get("/ready")[0] == 200, node.name
            assert node.get("/health")[0] == 200, node.name
            st = node.status()
            assert st["role"] == "replica" and st["read_only"] is True and st["ordinal"] == node.i, st
            assert st["server_id"] == 100 + node.i, st
        assert p0.get("/replica")[0] == 503 and p0.get("/primary")[0] == 200
        _, metrics = r2.get("/metrics")
        assert 'replboot_replication_thread_running{thread="io"} 1' in metrics, metrics[:2000]
        # The backup mysql-1 served must show in its /metrics (issue 7: "backups served"). Checked
        # at the end so a failure here does not hide the later cases.
        _, metrics = r1.get("/metrics")
        served = re.search(r"^replboot_backups_served_total (\d+)", metrics, re.M)
        if not (served and int(served.group(1)) >= 1):
            deferred.append(f"mysql-1 served a backup (its log: event=backup_served) but /metrics says "
                            f"{served.group(0) if served else 'no replboot_backups_served_total'}")

        # --- Writes only on the primary.
        r = r1.app_sql("INSERT INTO app.t (id, origin, pad) VALUES (900001, 'replica', 'x')")
        assert r.returncode != 0 and b"read-only" in r.stderr, (r.returncode, r.stderr)
        # Read your writes the documented way: the GTID of the app's own commit, from its session.
        r = p0.app_sql("INSERT INTO app.t (id, origin, pad) VALUES (900001, 'primary', 'x'); SELECT @@last_gtid")
        assert r.returncode == 0, r.stderr.decode()
        gtid = r.stdout.decode().strip()
        gtid_seq(gtid)
        check_status_gtid_is_current(p0, deferred, "after the app user's insert")
        for node in (r1, r2):
            wait_applied(node, gtid, timeout=30)
            assert node.sql("SELECT origin FROM app.t WHERE id = 900001") == [["primary"]], node.name

        # --- No secret in any argv or child environment, mysqld's included.
        for name, s in SECRETS.items():
            assert_no_secret_in_procs(s, also_environ=False)
        for node in nodes:
            pid = int(re.findall(r"event=mysqld_started pid=(\d+)", node.log())[-1])
            assert proc_comm(pid) == "mariadbd", (node.name, pid, proc_comm(pid))
            check_mysqld_children(node, pid)

        # --- STOP SLAVE on mysql-1: unready, /wait times out; START SLAVE: ready again.
        step("STOP SLAVE on mysql-1")
        r1.sql("STOP SLAVE")
        r1.wait_http("/replica", 503, 15, "after STOP SLAVE")
        status, body = r1.get("/ready")
        assert status == 503 and "IO thread No" in body, (status, body)
        st = r1.status()
        assert st["ready"] is False and "IO thread No" in st["ready_reason"], st
        assert st["lag_seconds"] is None, st
        assert r2.get("/replica")[0] == 200, "mysql-2 is not affected"
        r = p0.app_sql("INSERT INTO app.t (id, origin, pad) VALUES (900002, 'while-stopped', 'x')")
        assert r.returncode == 0, r.stderr.decode()
        newer = primary_gtid(p0)
        started = time.time()
        status, body = r1.get(f"/wait?gtid={newer}&timeout=2", timeout=30)
        elapsed = time.time() - started
        assert status == 504, (status, body)
        assert 1.5 < elapsed < 10, elapsed
        step(f"/wait on the stopped replica: 504 after {elapsed:.2f}s (asked 2s)")
        wait_applied(r2, newer, timeout=30)
        r1.sql("START SLAVE")
        r1.wait_http("/ready", 200, 30, "after START SLAVE")
        assert r1.get("/replica")[0] == 200
        wait_applied(r1, newer, timeout=30)

        # --- Restart mysql-2 on its datadir: replicates again without a second CHANGE MASTER.
        step("restarting mysql-2")
        first_log = r2.log()
        assert len(re.findall(r"event=replication_statement sql=\"CHANGE MASTER", first_log)) == 1, \
            re.findall(r"event=replication_statement.*", first_log)
        code = r2.stop()
        assert code == 0, (code, r2.log()[-3000:])
        assert "Shutdown complete" in r2.log() or "event=mysqld_exited" in r2.log()
        r = p0.app_sql("INSERT INTO app.t (id, origin, pad) VALUES (900003, 'while-down', 'x')")
        assert r.returncode == 0, r.stderr.decode()
        r2.start()
        r2.wait_http("/replica", 200, 90, "after the restart")
        log = r2.log()
        assert "event=replication_already_configured" in log, log[-3000:]
        assert "event=replication_statement" not in log, \
            f"second CHANGE MASTER on restart: {re.findall(r'event=replication_statement.*', log)}"
        assert "event=replication_configured" not in log, log[-3000:]
        assert "event=clone_done" not in log and "action=clone" not in log, log[-3000:]
        gtid = primary_gtid(p0)
        wait_applied(r2, gtid, timeout=30)
        assert r2.sql("SELECT origin FROM app.t WHERE id = 900003") == [["while-down"]]
        expected |= {900001, 900002, 900003}
        final = {node.name: table_state(node) for node in nodes}
        for name, s in final.items():
            assert s["ids"] == sorted(expected), (name, len(s["ids"]), len(expected))
            assert s["checksum"] == final["mysql-0"]["checksum"], (name, s["checksum"])
        pid = int(re.findall(r"event=mysqld_started pid=(\d+)", r2.log())[-1])
        check_mysqld_children(r2, pid)

        # --- Everything the watcher saw while the cluster ran (clones and backups included).
        watcher.stop()
        assert watcher.scans > 10, watcher.scans
        # It looked while the backups ran: it saw the backup tool among the nodes' children.
        assert {"mariabackup", "mariadbd"} <= watcher.seen_comms, watcher.seen_comms
        assert not watcher.found, f"secrets seen in processes: {watcher.found[:5]}"

        # --- Stop every node; all exit 0 and leave nothing behind.
        step("stopping the cluster")
        mysqld_pids = []
        for node in reversed(nodes):
            mysqld_pids.append(int(re.findall(r"event=mysqld_started pid=(\d+)", node.log())[-1]))
            code = node.stop()
            assert code == 0, (node.name, code, node.log()[-3000:])
            left = processes_mentioning(node.base)  # its descendants are orphans by now
            assert not left, (node.name, left)
        for pid in mysqld_pids:
            assert proc_comm(pid) is None, f"mysqld {pid} still running"

        # --- No secret in any log or file the nodes wrote.
        for fname in os.listdir(H.dir):
            if fname.endswith(".log"):
                text = read_text(H.path(fname))
                for name, s in SECRETS.items():
                    assert s not in text, f"{name} secret in {fname}"
        hits = files_with_secrets(H.dir)
        assert not hits, f"secrets left in files: {hits}"
        dns.stop()
        tree = H.dir

    # The harness is closed: nothing of the cluster runs any more.
    left = processes_mentioning(tree)
    assert not left, f"processes still mention {tree}: {left}"
    assert not deferred, deferred
    step("done")


def test_sigterm_ends_each_clone_phase_and_the_next_start_converges():
    """SIGTERM reaches every phase of a replica's clone through the one stop token: while
    discovery retries a name DNS does not know, and while the stream runs (the donor is slowed
    down so it lasts). replboot exits 128+15 well within mysql.shutdown_grace, leaves no staging
    dir, and the next start clones and replicates. (--prepare's stop is proven by the unit tests
    of RunCapture and by daemon.run's kill during prepare.)"""
    grace = 25  # mysql.shutdown_grace's default

    def stop_within(node, what):
        start = time.time()
        code = node.stop(timeout=grace + 10)
        elapsed = time.time() - start
        assert code == 128 + signal.SIGTERM, (what, code, node.log()[-3000:])
        assert elapsed < grace, (what, elapsed)
        print(f"  {what}: exit {code} after {elapsed:.1f}s", flush=True)
        assert not os.path.exists(node.datadir.rstrip("/") + ".replboot-staging"), what

    with Harness("sigterm") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()
        make_pki(H.path("pki"), ["mysql-0", "mysql-1"])
        p0, r1 = Node(H, 0, dns), Node(H, 1, dns)
        # A slow donor: the stream of a fresh datadir lasts several seconds.
        p0.start(["--set", "backup.bandwidth_limit=2000000"])
        p0.wait_http("/ready", 200, 120, "the primary")
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()

        # Discovery: the donors' names are in no DNS zone, so the lookups retry until stopped.
        r1.start(["--set", "cluster.service=nowhere"])
        r1.wait_log(r"event=dns_retry", 60, "discovery retrying")
        stop_within(r1, "discovering")

        # Streaming.
        r1.start()
        r1.wait_log(r"event=clone_header", 60, "the stream to start")
        time.sleep(1)
        assert "event=clone_done" not in r1.log(), "the clone ended before the stop"
        stop_within(r1, "streaming")

        # The next start converges: a clean clone, then replication.
        r1.start()
        r1.wait_log(r"event=clone_done", 180, "the clone after the stops")
        r1.wait_http("/replica", 200, 90, "replicating after the clone")
        r1.stop()
        p0.stop()


if __name__ == "__main__":
    run_tests(globals())
