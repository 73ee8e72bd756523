"""scripts/cluster, as a user runs it: `up` brings up a primary and replicas that show a write
read back on every replica, `up` again changes nothing, `scale` adds a node that clones itself
from the one below, `sql` and `status` work without knowing sockets or passwords, `down` stops
everything and keeps the datadirs, the next `up` restarts from them, `backup` and `restore` with
the default file store (rows after the backup archived from mysql-0's binlog; `restore --gtid G`
has exactly the rows up to G; a target outside the archive is refused before anything stops; a
restore over datadirs that hold data is refused without --force, which moves them aside),
`down --purge` removes them.

test_s3_backup_restore_every_datadir_lost is issue 23's acceptance: with LOCAL_CLUSTER_STORE=s3
(a real S3 server, scripts/local-s3, on the subnet's .3): rows written, `backup`, more rows,
`down`, every datadir deleted, `restore --backup latest`: exactly the backed-up rows on every
node, and the cluster takes writes again.

The cluster runs on this test's own 127.A.B subnet and state directory, so it never meets a
user's cluster on 127.0.0.x.
"""
import glob
import os
import re
import shutil
import subprocess

from replboot_harness import (Harness, assert_no_secret_in_procs, replboot_bin, run_tests, source_dir, wait_until,
                              write_private)

SCRIPT = os.path.join(source_dir(), "scripts", "cluster")


class Cluster:
    def __init__(self, h, store=None):
        self.h = h
        self.dir = h.path("cluster")
        self.env = dict(os.environ, REPLBOOT_BIN=replboot_bin(), LOCAL_CLUSTER_DIR=self.dir,
                        LOCAL_CLUSTER_SUBNET=h.subnet)
        self.env.pop("LOCAL_CLUSTER_STORE", None)
        if store:
            self.env["LOCAL_CLUSTER_STORE"] = store

    def run(self, *args, check=True, timeout=900):
        r = subprocess.run([SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        print(f"$ scripts/cluster {' '.join(args)}  (exit {r.returncode})\n{r.stdout}{r.stderr}", flush=True)
        if check and r.returncode != 0:
            raise AssertionError(f"scripts/cluster {' '.join(args)} exited {r.returncode}")
        return r

    def pids(self):
        out = {}
        for f in glob.glob(os.path.join(self.dir, "mysql-*", "replboot.pid")):
            with open(f) as fh:
                out[os.path.basename(os.path.dirname(f))] = int(fh.read().strip())
        return out

    def s3_pid(self):
        try:
            with open(os.path.join(self.dir, "s3", "local-s3.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def count(self, i, table="demo.t"):
        return int(self.run("sql", str(i), f"SELECT COUNT(*) FROM {table}").stdout.split()[-1])

    def ids(self, i, table="demo.t"):
        r = self.run("sql", str(i), f"SELECT id FROM {table} ORDER BY id")
        return [int(x) for x in r.stdout.split()[1:]]

    def cleanup(self):
        pids = self.pids()
        s3 = self.s3_pid()
        if os.path.isdir(self.dir):
            subprocess.run([SCRIPT, "down", "--purge"], env=self.env, capture_output=True, timeout=300)
        for pid in list(pids.values()) + ([s3] if s3 else []):  # down failed: nothing is left
            try:
                os.killpg(pid, 9)
            except ProcessLookupError:
                pass


def insert_rows(c, first, n):
    values = ",".join(f"({i})" for i in range(first, first + n))
    c.run("sql", "0", f"INSERT INTO demo.t (id) VALUES {values}")


def assert_no_secret_leaked(c, extra_logs=()):
    """No secret of .cluster/secrets/ in any process's argv or foreign environment, nor in a log."""
    logs = glob.glob(os.path.join(c.dir, "mysql-*", "replboot.log")) + glob.glob(os.path.join(c.dir, "*.log"))
    logs += glob.glob(os.path.join(c.dir, "s3", "*.log")) + list(extra_logs)
    texts = {}
    for log in logs:
        with open(log, errors="replace") as f:
            texts[log] = f.read()
    for name in os.listdir(os.path.join(c.dir, "secrets")):
        with open(os.path.join(c.dir, "secrets", name)) as f:
            secret = f.read().strip()
        assert_no_secret_in_procs(secret)
        for log, text in texts.items():
            assert secret not in text, f"the secret {name} appears in {log}"


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def status_rows(text):
    return {m.group(1): line.split() for line in text.splitlines() if (m := re.match(r"(mysql-\d+)\s", line))}


def test_up_scale_sql_status_down():
    with Harness("cluster") as h:
        c = Cluster(h)
        try:
            r = c.run("up", "2")
            assert re.search(r"read on\s+mysql-1 \(replica\): 'written on mysql-0", r.stdout), r.stdout
            assert "write on mysql-1 refused" in r.stdout, r.stdout
            first = c.pids()
            assert set(first) == {"mysql-0", "mysql-1"}, first

            # Twice is safe: the same processes keep running, the demonstration works again.
            r = c.run("up")
            assert c.pids() == first, "a second `up` restarted nodes"
            assert re.search(r"read on\s+mysql-1 \(replica\)", r.stdout), r.stdout

            # scale 3: mysql-2 clones itself from mysql-1 (the nearest lower peer).
            r = c.run("scale", "3")
            assert re.search(r"read on\s+mysql-2 \(replica\): 'written on mysql-0", r.stdout), r.stdout
            with open(os.path.join(c.dir, "mysql-2", "replboot.log")) as f:
                assert "mysql-1.mysql" in f.read(), "mysql-2's log does not mention cloning from mysql-1.mysql"

            r = c.run("sql", "2", "SELECT COUNT(*) AS n FROM demo.greetings")
            assert int(r.stdout.split()[-1]) >= 3, r.stdout
            r = c.run("sql", "1", "INSERT INTO demo.greetings (note) VALUES ('x')", check=False)
            assert r.returncode != 0 and "read" in r.stderr.lower(), "a replica accepted a write"

            rows = status_rows(c.run("status").stdout)  # exit 0: every node running and ready
            assert [rows[f"mysql-{i}"][3] for i in range(3)] == ["primary", "replica", "replica"], rows
            assert all(rows[f"mysql-{i}"][4] == "yes" for i in range(3)), rows

            for name in os.listdir(os.path.join(c.dir, "secrets")):
                with open(os.path.join(c.dir, "secrets", name)) as f:
                    assert_no_secret_in_procs(f.read().strip())
                for log in glob.glob(os.path.join(c.dir, "mysql-*", "replboot.log")):
                    with open(log) as f, open(os.path.join(c.dir, "secrets", name)) as s:
                        assert s.read().strip() not in f.read(), f"a secret appears in {log}"

            # A replica not ready (its replication stopped): status says so and exits non-zero,
            # and 0 again once it is ready.
            with open(os.path.join(c.dir, "secrets", "root-password")) as f:
                root_cnf = write_private(h.path("root.cnf"), f"[client]\nuser=root\npassword={f.read().strip()}\n")

            def root_sql(i, statement):
                subprocess.run(["mariadb", f"--defaults-extra-file={root_cnf}", f"--host={h.subnet}.{10 + i}",
                                "--port=3306", "--protocol=TCP", "-e", statement], check=True, timeout=30)
            root_sql(1, "STOP SLAVE")
            r = wait_until(lambda: (r := c.run("status", check=False)).returncode != 0 and r, 30,
                           "status to see mysql-1 unready")
            assert r.returncode == 1 and status_rows(r.stdout)["mysql-1"][4] == "no", r.stdout
            assert "2 of 3 nodes running and ready" in r.stderr, r.stderr
            root_sql(1, "START SLAVE")
            wait_until(lambda: c.run("status", check=False).returncode == 0, 60, "status to exit 0 again")

            # down keeps the datadirs; every process is gone; status exits non-zero.
            pids = c.pids()
            c.run("down")
            assert not any(alive(p) for p in pids.values()), "a node survived `down`"
            r = c.run("status", check=False)
            assert r.returncode == 1 and "0 of 3 nodes running and ready" in r.stderr, (r.returncode, r.stderr)
            for i in range(3):
                assert os.path.isdir(os.path.join(c.dir, f"mysql-{i}", "data", "mysql")), f"mysql-{i}'s datadir is gone"

            # Up again from the kept datadirs: the old row is still there on every node.
            r = c.run("up")
            for i in range(3):
                r = c.run("sql", str(i), "SELECT COUNT(*) FROM demo.greetings WHERE id = 1")
                assert r.stdout.split()[-1] == "1", f"mysql-{i} lost its data across down/up"

            # The default file store: a backup of a replica, a row after it, then a restore. Over
            # datadirs that hold data it is refused and nothing stops; --force moves them aside.
            c.run("sql", "0", "CREATE TABLE demo.t (id INT PRIMARY KEY)")
            insert_rows(c, 0, 20)
            wait_until(lambda: all(c.count(i) == 20 for i in (1, 2)), 30, "the replicas to have 20 rows")
            r = c.run("backup")
            m = re.search(r"^backup (\d{8}T\d{6}Z) of mysql-2$", r.stdout, re.M)
            assert m, r.stdout  # the highest ready replica, never the primary
            assert re.search(rf"^{m.group(1)}\s.*\scomplete$", r.stdout, re.M), r.stdout
            assert os.listdir(os.path.join(c.dir, "store")), "the file store under .cluster/store is empty"
            # Rows after it, archived from mysql-0's binlog: a restore to the GTID position G
            # has exactly those up to G (issue 24).
            insert_rows(c, 20, 5)
            gtid = c.run("sql", "0", "SELECT @@gtid_binlog_pos").stdout.split()[-1]
            insert_rows(c, 25, 5)
            root_sql(0, "FLUSH BINARY LOGS")
            data0 = os.path.join(c.dir, "mysql-0", "data")
            with open(os.path.join(data0, "mysql-bin.index")) as f:
                binlogs = [os.path.join(data0, os.path.basename(n.strip())) for n in f if n.strip()]
            env = {k: v for k, v in os.environ.items() if not k.startswith("REPLBOOT_")}
            subprocess.run([replboot_bin(), "binlog", "archive-file", "--config", os.path.join(c.dir, "replboot.toml"),
                            "--hostname", "mysql-0", "--datadir", data0, *binlogs],
                           check=True, capture_output=True, env=env, timeout=120)
            pids = c.pids()
            r = c.run("restore", "--gtid", gtid, check=False)
            assert r.returncode == 1 and "--force" in r.stderr, (r.returncode, r.stderr)
            assert c.pids() == pids and all(alive(p) for p in pids.values()), "a refused restore stopped nodes"
            # A target outside the archive: refused with the range before anything stops.
            r = c.run("restore", "--force", "--time", "2099-01-01T00:00:00Z", check=False)
            assert r.returncode == 1 and "nothing was stopped" in r.stderr and "restorable" in r.stderr, r.stderr
            assert c.pids() == pids and all(alive(p) for p in pids.values()), "a refused target stopped nodes"
            assert not glob.glob(os.path.join(c.dir, "mysql-*", "before-restore-*")), "a refused target moved datadirs"
            r = c.run("restore", "--force", "--gtid", gtid)
            assert re.search(rf"^restored backup {m.group(1)} \+ \d+ archived transactions to gtid {gtid} "
                             rf"\(GTID [^)]+\): mysql-0 is the primary", r.stdout, re.M), r.stdout
            assert "demo.t: 25 rows" in r.stdout, r.stdout
            for i in range(3):
                wait_until(lambda: c.ids(i) == list(range(25)), 60, f"mysql-{i} to hold the rows up to the GTID")
                aside = glob.glob(os.path.join(c.dir, f"mysql-{i}", "before-restore-*", "data", "demo"))
                assert len(aside) == 1, f"mysql-{i}'s old datadir was not moved aside: {aside}"

            c.run("down", "--purge")
            assert not os.path.exists(c.dir), "down --purge left the state directory"
        finally:
            c.cleanup()


def test_s3_backup_restore_every_datadir_lost():
    with Harness("cluster-s3") as h:
        c = Cluster(h, store="s3")
        try:
            c.run("up", "3")
            with open(os.path.join(c.dir, "replboot.toml")) as f:
                toml = f.read()
            assert f'endpoint = "http://{h.subnet}.3:9000"' in toml and 's3://replboot-local/' in toml, toml
            assert not os.path.exists(os.path.join(c.dir, "store")), "an s3 cluster wrote a file store"
            c.run("sql", "0", "CREATE TABLE demo.t (id INT PRIMARY KEY)")
            insert_rows(c, 0, 100)
            wait_until(lambda: all(c.count(i) == 100 for i in (1, 2)), 30, "the replicas to have 100 rows")
            r = c.run("backup")
            m = re.search(r"^backup (\d{8}T\d{6}Z) of mysql-[12]$", r.stdout, re.M)
            assert m, r.stdout
            backup_id = m.group(1)
            insert_rows(c, 100, 50)  # after the backup: not in it
            wait_until(lambda: c.count(2) == 150, 30, "mysql-2 to have the later rows")

            # `down` keeps the S3 server (and so the backups); every datadir goes.
            s3 = c.s3_pid()
            assert s3 and alive(s3), "no S3 server after up"
            c.run("down")
            assert alive(s3), "`down` stopped the S3 server"
            for i in range(3):
                shutil.rmtree(os.path.join(c.dir, f"mysql-{i}", "data"))

            r = c.run("restore", "--backup", "latest")
            assert f"restored backup {backup_id}" in r.stdout and "demo.t: 100 rows" in r.stdout, r.stdout
            for i in range(3):
                wait_until(lambda: c.ids(i) == list(range(100)), 60, f"mysql-{i} to hold exactly the backed-up rows")
            rows = status_rows(c.run("status").stdout)
            assert [rows[f"mysql-{i}"][3] for i in range(3)] == ["primary", "replica", "replica"], rows

            # Writable again, and replicated.
            insert_rows(c, 1000, 3)
            for i in range(3):
                wait_until(lambda: c.count(i) == 103, 30, f"mysql-{i} to have the new rows")
            assert_no_secret_leaked(c)

            c.run("down", "--purge")
            wait_until(lambda: not alive(s3), 30, "down --purge to stop the S3 server")
            assert not os.path.exists(c.dir), "down --purge left the state directory"
        finally:
            c.cleanup()


if __name__ == "__main__":
    run_tests(globals())
