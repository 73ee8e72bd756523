"""Replication between two real mariadbd on loopback, driven by `replboot replication-agent`
(what `replboot run` does once mysqld is ready): users on the primary, replication from a
clone's position on the replica at most once, read-only for the app user on the replica, and
the health endpoints (/primary, /replica, /ready, /status, /wait) as the state changes.

The "clone" is simulated: the pre-clone row is written on the primary, copied to the replica
with the binlog off, and the primary's position at that moment is written to the replica's
datadir as xtrabackup_binlog_info, exactly the file a mariabackup clone leaves behind. A row
missing or doubled on the replica would show the position is off by a transaction.

The replica mariadbd runs in a private mount namespace whose /etc/hosts maps mysql-0.mysql
to the primary's loopback address, so MASTER_HOST is the real StatefulSet name.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from replboot_harness import (Harness, MariaDB, assert_no_secret_in_procs, http_get, make_pki, node_env, read_log,
                              replboot_bin, run_tests, wait_until, write_private)

REPL_PW = "repl-pw-" + os.urandom(6).hex()
BACKUP_PW = "backup-pw-" + os.urandom(6).hex()
APP_PW = "app-pw-" + os.urandom(6).hex()
HTTP_PORT = 8008


class NamespacedMariaDB(MariaDB):
    """mariadbd with its own /etc/hosts (a mount namespace only; the network is shared)."""

    def __init__(self, h, addr, hosts, **kw):
        super().__init__(h, addr, **kw)
        self.hosts_path = os.path.join(self.base, "hosts")
        with open(self.hosts_path, "w") as f:
            f.write("127.0.0.1 localhost\n" + "".join(f"{ip} {name}\n" for name, ip in hosts.items()))

    def args(self):
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts_path] + super().args()


class Cluster:
    def __init__(self, H, primary_args=(), agent_sets=()):
        self.H = H
        secrets = {}
        for name, pw in (("repl", REPL_PW), ("backup", BACKUP_PW), ("app", APP_PW)):
            secrets[name] = write_private(H.path(f"{name}.pw"), pw + "\n")
        self.secrets = secrets
        self.agent_sets = list(agent_sets)
        self.primary = MariaDB(H, H.addr(0), name="mysql-0",
                               extra_args=["--log-bin=mysql-bin", "--server-id=100", "--binlog-format=ROW",
                                           *primary_args])
        self.replica = NamespacedMariaDB(H, H.addr(1), {"mysql-0.mysql": H.addr(0)}, name="mysql-1",
                                         extra_args=["--server-id=101", "--read-only"])
        self.agents = {}
        self.started = 0

    def start_servers(self):
        for db in (self.primary, self.replica):
            db.install().start()
            write_private(db.base + "/root.pw", db.root_password + "\n")

    def url(self, i, path):
        return f"http://{self.H.addr(i)}:{HTTP_PORT}{path}"

    def agent_args(self, i, db):
        return [replboot_bin(), "replication-agent", "--hostname", f"mysql-{i}", "--flavour", "mariadb",
                "--datadir", db.datadir, "--port", "3306",
                "--set", f"mysql.socket={db.socket}",
                "--set", f"mysql.root_password_file={db.base}/root.pw",
                "--set", f"replication.password_file={self.secrets['repl']}",
                "--set", f"backup.password_file={self.secrets['backup']}",
                "--set", f"cluster.app_password_file={self.secrets['app']}",
                "--set", "cluster.app_user=app",
                "--set", "cluster.app_databases=appdb",
                "--set", "replication.connect_retry=1",
                "--set", "replication.start_deadline=30",
                "--set", "replication.max_lag=5",
                "--set", f"http.listen={self.H.addr(i)}:{HTTP_PORT}"] + \
            [arg for value in self.agent_sets for arg in ("--set", value)]

    def start_agent(self, i):
        db = self.primary if i == 0 else self.replica
        self.started += 1
        p = self.H.spawn(self.agent_args(i, db), log_name=f"agent-{i}-{self.started}", env=node_env())
        self.agents[i] = p

        def listening():
            if p.poll() is not None:
                raise AssertionError(f"agent {i} exited {p.returncode}:\n{read_log(p)[-3000:]}")
            return "event=http_listening" in read_log(p)
        wait_until(listening, 60, f"agent {i} to serve HTTP")
        return p

    def stop_agent(self, i):
        p = self.agents.pop(i)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        assert p.returncode == 0, f"agent {i} exit {p.returncode}:\n{read_log(p)[-2000:]}"
        return read_log(p)

    def simulate_clone(self):
        """The replica gets the primary's data up to now and the position of that moment."""
        self.primary.sql("CREATE DATABASE appdb; CREATE TABLE appdb.t (id INT PRIMARY KEY, v VARCHAR(40));"
                         "INSERT INTO appdb.t VALUES (1, 'before-clone');")
        gtid = self.primary.value("SELECT @@gtid_current_pos")
        file, pos = self.primary.sql("SHOW MASTER STATUS")[0][:2]
        self.replica.sql("CREATE DATABASE appdb; CREATE TABLE appdb.t (id INT PRIMARY KEY, v VARCHAR(40));"
                         "INSERT INTO appdb.t VALUES (1, 'before-clone');")
        with open(os.path.join(self.replica.datadir, "xtrabackup_binlog_info"), "w") as f:
            f.write(f"{file}\t{pos}\t{gtid}\n")
        return gtid


def slave_status(db):
    """SHOW SLAVE STATUS as a dict (column names need the header the harness leaves out)."""
    r = subprocess.run(["mariadb", f"--defaults-extra-file={db.client_cnf}", f"--socket={db.socket}", "-B"],
                       input=b"SHOW SLAVE STATUS", capture_output=True, check=True)
    lines = r.stdout.decode().splitlines()
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"))) if len(lines) > 1 else {}


def bring_up(H, **cluster_args):
    c = Cluster(H, **cluster_args)
    c.start_servers()
    c.simulate_clone()
    c.start_agent(0)
    wait_until(lambda: http_get(c.url(0, "/primary"))[0] == 200, 20, "/primary 200 on the primary")
    c.start_agent(1)
    wait_until(lambda: http_get(c.url(1, "/replica"))[0] == 200, 60, "/replica 200 on the replica")
    # Running threads are not "caught up": wait for everything the primary has (the accounts).
    gtid = c.primary.value("SELECT @@gtid_current_pos")
    assert http_get(c.url(1, f"/wait?gtid={gtid}&timeout=20"), timeout=30)[0] == 200
    return c


def test_replica_follows_primary_from_the_clone_position():
    with Harness("repl-follow") as H:
        c = bring_up(H)
        assert http_get(c.url(1, "/primary"))[0] == 503
        assert http_get(c.url(0, "/replica"))[0] == 503
        assert http_get(c.url(0, "/ready"))[0] == 200
        assert http_get(c.url(1, "/ready"))[0] == 200
        for i in range(2, 52):
            c.primary.sql(f"INSERT INTO appdb.t VALUES ({i}, 'row-{i}')", user="app", password=APP_PW)
        wait_until(lambda: c.replica.value("SELECT COUNT(*) FROM appdb.t") == "51", 30, "51 rows on the replica")
        # Not doubled, not missing: the same content on both sides.
        assert c.replica.value("SELECT COUNT(DISTINCT id) FROM appdb.t") == "51"
        assert c.primary.sql("CHECKSUM TABLE appdb.t")[0][1] == c.replica.sql("CHECKSUM TABLE appdb.t")[0][1]
        # Replication runs as the dedicated user, with nothing but REPLICATION SLAVE.
        ss = slave_status(c.replica)
        assert ss["Master_User"] == "replboot_repl" and ss["Master_Host"] == "mysql-0.mysql", ss
        assert ss["Using_Gtid"] == "Slave_Pos", ss
        grants = c.primary.sql("SHOW GRANTS FOR 'replboot_repl'@'%'")
        assert "GRANT REPLICATION SLAVE ON *.* TO" in grants[0][0], grants
        assert len(grants) == 1, grants
        # Lag comes from the heartbeat, and is small. /status is the poller's snapshot (once a
        # second): the first heartbeat may reach the replica after the first one.
        wait_until(lambda: json.loads(http_get(c.url(1, "/status"))[1])["lag_source"] == "heartbeat", 5,
                   "lag from the heartbeat on the replica's /status")
        st = json.loads(http_get(c.url(1, "/status"))[1])
        assert st["role"] == "replica" and st["server_id"] == 101 and st["ready"], st
        assert st["lag_source"] == "heartbeat" and st["lag_seconds"] < 5, st
        assert st["replication"]["io_running"] == "Yes", st
        pst = json.loads(http_get(c.url(0, "/status"))[1])
        assert pst["role"] == "primary" and pst["read_only"] is False and pst["gtid_position"].startswith("0-100-"), pst
        _, metrics = http_get(c.url(1, "/metrics"))
        assert 'replboot_replication_thread_running{thread="sql"} 1' in metrics, metrics
        # The agent logs never show a password, and no process carries one.
        for p in c.agents.values():
            log = read_log(p)
            for pw in (REPL_PW, BACKUP_PW, APP_PW):
                assert pw not in log
            assert "MASTER_PASSWORD='<redacted>'" in log or p is c.agents[0]
        for pw in (REPL_PW, BACKUP_PW, APP_PW):
            assert_no_secret_in_procs(pw)


def test_tls_replication_verifies_the_primarys_certificate():
    """replication.tls with a CA: the replica's IO thread gets MASTER_SSL_CA and
    MASTER_SSL_VERIFY_SERVER_CERT=1 and replicates over TLS from a primary whose certificate
    names mysql-0.mysql; the same replica pointed at a CA that did not sign it is refused."""
    with Harness("repl-tls") as H:
        pki = make_pki(H.path("pki"), ["mysql-0.mysql"], other_ca_leaves=["stranger"])
        # Both mariadbd read them (the primary its key, the replica's IO thread the CA) as mysql.
        for path in [pki] + [os.path.join(pki, f) for f in os.listdir(pki)]:
            shutil.chown(path, "mysql", "mysql")
        ca = f"{pki}/ca.pem"
        c = bring_up(H, primary_args=[f"--ssl-cert={pki}/mysql-0.mysql.pem", f"--ssl-key={pki}/mysql-0.mysql.key",
                                      f"--ssl-ca={ca}"],
                     agent_sets=["replication.tls=true", f"replication.tls_ca={ca}"])
        st = slave_status(c.replica)
        assert st["Master_SSL_Allowed"] == "Yes", st
        assert st["Master_SSL_CA_File"] == ca, st
        assert st["Master_SSL_Verify_Server_Cert"] == "Yes", st
        log = read_log(c.agents[1])
        assert "event=replication_tls_unverified" not in log, log
        c.primary.sql("INSERT INTO appdb.t VALUES (600, 'over-tls')")
        wait_until(lambda: c.replica.value("SELECT v FROM appdb.t WHERE id = 600") == "over-tls", 20, "row 600")
        c.stop_agent(1)

        def refused(change, what):
            c.replica.sql(f"STOP SLAVE; CHANGE MASTER TO {change}; START SLAVE")

            def io_error():
                st = slave_status(c.replica)
                return st if st.get("Last_IO_Errno", "0") not in ("", "0") else None
            st = wait_until(io_error, 30, f"the IO thread refusing {what}")
            assert st["Slave_IO_Running"] != "Yes", st
            assert re.search(r"ssl|tls|certificate", st["Last_IO_Error"], re.I), st
            c.replica.sql("STOP SLAVE")
        # A CA that did not sign the primary's certificate.
        refused(f"MASTER_SSL_CA='{pki}/other-ca.pem'", "a certificate its CA did not sign")
        # Back to the right CA: running again, and the error gone (so the next one is new).
        c.replica.sql(f"CHANGE MASTER TO MASTER_SSL_CA='{ca}'; START SLAVE")
        wait_until(lambda: (lambda st: st["Slave_IO_Running"] == "Yes" and st["Last_IO_Errno"] == "0")(
            slave_status(c.replica)), 30, "the IO thread running with the right CA again")
        c.replica.sql("STOP SLAVE")
        # The right CA, but the primary reached by an address its certificate does not name.
        refused(f"MASTER_SSL_CA='{ca}', MASTER_HOST='{H.addr(0)}'", "a certificate for another name")

def test_app_user_cannot_write_on_the_replica():
    with Harness("repl-readonly") as H:
        c = bring_up(H)
        r = c.replica.sql("INSERT INTO appdb.t VALUES (1000, 'on-replica')", user="app", password=APP_PW, check=False)
        assert r.returncode != 0 and b"read-only" in r.stderr, r.stderr
        ok = c.primary.sql("INSERT INTO appdb.t VALUES (1000, 'on-primary')", user="app", password=APP_PW,
                           check=False)
        assert ok.returncode == 0, ok.stderr
        wait_until(lambda: c.replica.value("SELECT v FROM appdb.t WHERE id = 1000") == "on-primary", 20,
                   "the primary's write on the replica")


def test_restart_does_not_configure_again():
    with Harness("repl-restart") as H:
        c = bring_up(H)
        record_path = os.path.join(c.replica.datadir, "replboot-replication.json")
        with open(record_path) as f:
            first = json.load(f)
        assert first["state"] == "configured" and first["threads_running"] is True, first
        assert oct(os.stat(record_path).st_mode & 0o777) == "0o600"
        assert REPL_PW not in json.dumps(first)
        c.stop_agent(1)
        c.replica.sql("STOP SLAVE")  # even stopped, it must be restarted, not re-pointed
        c.primary.sql("INSERT INTO appdb.t VALUES (500, 'while-agent-down')")
        p = c.start_agent(1)
        wait_until(lambda: http_get(c.url(1, "/replica"))[0] == 200, 30, "/replica 200 after the restart")
        log = read_log(p)
        assert "event=replication_already_configured" in log, log
        assert "event=replication_statement" not in log, log  # no CHANGE MASTER this time
        with open(record_path) as f:
            assert json.load(f) == first  # untouched
        wait_until(lambda: c.replica.value("SELECT COUNT(*) FROM appdb.t WHERE id = 500") == "1", 20, "row 500")
        assert c.replica.value("SELECT COUNT(*) FROM appdb.t") == "2"


def test_stopped_replication_turns_unready_and_wait_times_out():
    with Harness("repl-stop") as H:
        c = bring_up(H)
        c.primary.sql("INSERT INTO appdb.t VALUES (2, 'visible')")
        gtid = c.primary.value("SELECT @@gtid_current_pos")
        status, body = http_get(c.url(1, f"/wait?gtid={gtid}&timeout=10"))
        assert status == 200, (status, body)
        assert c.replica.value("SELECT v FROM appdb.t WHERE id = 2") == "visible"

        c.replica.sql("STOP SLAVE")
        wait_until(lambda: http_get(c.url(1, "/replica"))[0] == 503, 10, "/replica 503 after STOP SLAVE")
        status, body = http_get(c.url(1, "/ready"))
        assert status == 503 and "IO thread No" in body, (status, body)
        st = json.loads(http_get(c.url(1, "/status"))[1])
        assert st["ready"] is False and "IO thread No" in st["ready_reason"], st
        assert st["lag_seconds"] is None, st
        out = subprocess.run([replboot_bin(), "status", "--url", c.url(1, "/status")], capture_output=True, text=True)
        assert out.returncode == 3, (out.returncode, out.stdout, out.stderr)
        assert re.search(r"io_thread\s+No", out.stdout), out.stdout
        assert re.search(r"ready\s+no \(IO thread No", out.stdout), out.stdout

        c.primary.sql("INSERT INTO appdb.t VALUES (3, 'not-replicated')")
        later = c.primary.value("SELECT @@gtid_current_pos")
        start = time.time()
        status, body = http_get(c.url(1, f"/wait?gtid={later}&timeout=2"), timeout=30)
        elapsed = time.time() - start
        assert status == 504, (status, body)
        assert 1.5 < elapsed < 10, elapsed
        print(f"/wait timed out after {elapsed:.2f}s (asked 2s)")
        assert http_get(c.url(1, "/wait?gtid=bogus"))[0] == 400
        # The primary has its own writes: 200 at once (its gtid_binlog_pos, not gtid_slave_pos).
        assert http_get(c.url(0, f"/wait?gtid={later}&timeout=2"))[0] == 200

        c.replica.sql("START SLAVE")
        wait_until(lambda: http_get(c.url(1, "/ready"))[0] == 200, 20, "/ready 200 after START SLAVE")
        assert http_get(c.url(1, f"/wait?gtid={later}&timeout=10"))[0] == 200


def test_app_grants_follow_the_setting():
    """What an earlier configuration granted the app user beyond cluster.app_databases (a *.*
    grant, a database no longer listed) is revoked at the primary's next start; the listed
    database keeps its grants throughout."""
    with Harness("repl-grants") as H:
        c = bring_up(H)
        c.primary.sql("CREATE DATABASE olddb; GRANT SELECT ON *.* TO 'app'@'%';"
                      "GRANT SELECT, INSERT ON olddb.* TO 'app'@'%';")
        c.stop_agent(0)
        p = c.start_agent(0)
        assert "event=users_ensured" in read_log(p), read_log(p)[-2000:]
        grants = [row[0] for row in c.primary.sql("SHOW GRANTS FOR 'app'@'%'")]
        assert not any("olddb" in g for g in grants), grants
        assert any(g.startswith("GRANT USAGE ON *.*") for g in grants), grants
        assert any("ON `appdb`.*" in g and "INSERT" in g for g in grants), grants
        c.primary.sql("INSERT INTO appdb.t VALUES (7000, 'after-the-restart')", user="app", password=APP_PW)
        r = c.primary.sql("SELECT COUNT(*) FROM mysql.user", user="app", password=APP_PW, check=False)
        assert r.returncode != 0 and b"denied" in r.stderr, r.stderr


def gtid_waits(db):
    """The MASTER_GTID_WAIT calls running on db's server (this query excluded)."""
    return int(db.value("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                        "WHERE INFO LIKE '%MASTER_GTID_WAIT%' AND ID <> CONNECTION_ID()"))


def metric(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"no {name} in:\n{text}"
    return float(m.group(1))


def test_wait_is_bounded_and_ended_when_its_client_leaves():
    """/wait: bad numbers are 400 before anything reaches the database; a valid timeout is a
    504 with no MASTER_GTID_WAIT left behind; a client that leaves ends its server-side wait."""
    with Harness("repl-wait-bounds") as H:
        c = bring_up(H)
        unknown = "0-100-999999999"
        for timeout in ("inf", "nan", "-1", "1e300", "%69nf"):
            status, body = http_get(c.url(1, f"/wait?gtid={unknown}&timeout={timeout}"))
            assert status == 400 and body.startswith("timeout '"), (timeout, status, body)
        assert http_get(c.url(1, "/replica?lag=nan"))[0] == 400
        assert gtid_waits(c.replica) == 0

        status, body = http_get(c.url(1, f"/wait?gtid={unknown}&timeout=1"), timeout=20)
        assert status == 504, (status, body)
        assert gtid_waits(c.replica) == 0, c.replica.sql("SHOW PROCESSLIST")

        # Clients that leave before their (long) timeout: each wait is seen running, then gone
        # within a second or two of the disconnect, not 30 s later.
        clients = []
        for _ in range(3):
            s = socket.create_connection((H.addr(1), HTTP_PORT), timeout=5)
            s.sendall(f"GET /wait?gtid={unknown}&timeout=30 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            clients.append(s)
        wait_until(lambda: gtid_waits(c.replica) == 3, 10, "3 MASTER_GTID_WAIT running")
        left = time.time()
        for s in clients:
            s.close()
        wait_until(lambda: gtid_waits(c.replica) == 0, 5, "the waits ended after their clients left")
        print(f"3 waits ended {time.time() - left:.2f}s after their clients left")
        # The counter moves once each KILL has returned, which can be just after the processlist
        # shows the waits gone: wait for it rather than read it once.
        wait_until(
            lambda: metric(http_get(c.url(1, "/metrics"))[1], "replboot_http_waits_killed_total") == 3,
            5, "3 waits counted as killed")
        metrics = http_get(c.url(1, "/metrics"))[1]
        assert metric(metrics, "replboot_http_waits_killed_total") == 3, metrics
        # The wait slots are free again: a real wait still works.
        gtid = c.primary.value("SELECT @@gtid_current_pos")
        assert http_get(c.url(1, f"/wait?gtid={gtid}&timeout=5"), timeout=20)[0] == 200


def questions(db):
    return int(db.sql("SHOW GLOBAL STATUS LIKE 'Questions'")[0][1])


def flood(url_host, port, paths, total, concurrency):
    """`total` GETs over `concurrency` keep-alive connections from five client addresses (the
    HTTP server caps connections per address, http.max_connections_per_address: 16); returns
    (answers by status, errors)."""
    counts, errors, lock = {}, [], threading.Lock()

    def worker(n, source):
        conn = http.client.HTTPConnection(url_host, port, timeout=10, source_address=(source, 0))
        try:
            for i in range(n):
                conn.request("GET", paths[i % len(paths)])
                r = conn.getresponse()
                r.read()
                with lock:
                    counts[r.status] = counts.get(r.status, 0) + 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            with lock:
                errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(total // concurrency, f"127.0.0.{200 + k % 5}"))
               for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts, errors


def test_status_flood_costs_one_collection_per_second():
    """20 000 /status and /metrics requests, 50 at a time, against the primary: the database
    runs what the 1 s poller and the heartbeat run, not queries per request; the replica's
    heartbeat lag stays under 2 s and /ready stays 200 throughout."""
    with Harness("repl-flood") as H:
        c = bring_up(H)
        before, t0 = questions(c.primary), time.time()
        time.sleep(3)
        idle_rate = (questions(c.primary) - before - 1) / (time.time() - t0)

        samples, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                ready = http_get(c.url(1, "/ready"))[0]
                primary = http_get(c.url(0, "/primary"))[0]
                lag = json.loads(http_get(c.url(1, "/status"))[1])["lag_seconds"]
                samples.append((ready, primary, lag))
                time.sleep(0.2)
        watcher = threading.Thread(target=watch)
        before, t0 = questions(c.primary), time.time()
        watcher.start()
        counts, errors = flood(H.addr(0), HTTP_PORT, ["/status", "/metrics"], 20000, 50)
        elapsed = time.time() - t0
        stop.set()
        watcher.join()
        ran = questions(c.primary) - before - 1
        rate = ran / elapsed
        lags = [lag for _, _, lag in samples]
        print(f"flood: {sum(counts.values())} answers in {elapsed:.1f}s ({sum(counts.values()) / elapsed:.0f}/s), "
              f"{ran} queries on the primary ({rate:.1f}/s, idle {idle_rate:.1f}/s), "
              f"replica lag max {max(lags, default=None)}s over {len(samples)} samples")
        assert not errors and counts == {200: 20000}, (counts, errors[:5])
        # The poller's collection (2 statements on a primary) and the heartbeat, once a second
        # each: a request that queried would show as thousands.
        assert rate <= max(idle_rate, 1) * 1.5 + 1, (ran, elapsed, idle_rate)
        assert samples and all(ready == 200 and primary == 200 for ready, primary, _ in samples), samples
        assert all(lag is not None and lag < 2 for lag in lags), samples


if __name__ == "__main__":
    run_tests(globals())
