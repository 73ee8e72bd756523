"""The live binlog archiver inside `replboot run` (issue 24, "Continuous archive"): real mariadbd
and mariabackup, two nodes, moto with SigV4 checked behind tests/harness/fault_proxy.py.

test_live_archive_through_faults_and_a_lost_cluster:
  mysql-0 starts without archive.binlog (a cluster that had no archive); a backup goes to the
  store; mysql-1 starts with it and, a replica first in line, takes the archiver's lease at once
  and streams the primary's binlog from the backup's position, under a steady write load (a
  ledger of acknowledged writes, each with the time its commit returned). Then, one at a time:
  - mysql-0 restarted with archive.binlog (the rolling change a StatefulSet makes, highest
    ordinal first): mysql-1 reconnects, mysql-0 stays standby;
  - the store unreachable (every connection refused) for a while: uploads fail and are
    counted, nothing is lost, the archive catches up;
  - mysql-1 (the holder) SIGKILLed: mysql-0 takes the lease over once its beat stood still for
    the lease timeout and the replicas' turns;
  the chain from the backup to the primary's newest transaction is then whole (`binlog list`:
  no gap) and /metrics shows the lag. Last, every volume is lost under the write load (both
  nodes SIGKILLed): a restore from the store alone (no target: everything archived) holds every
  write acknowledged more than 5 s before the loss, and nothing that was never written; the
  measured lag and the restore's actual loss window are printed.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("REPLBOOT_SOURCE_DIR", "../.."), "daemon", "tests"))

from cluster_test import SECRETS, Node
from fault_proxy import FaultProxy
from moto_harness import MotoServer
from pitr_test import cli, ok
from replboot_harness import Dnsmasq, Harness, make_pki, run_tests, wait_until, write_private

KEY = "b" + os.urandom(24).hex()
BUCKET = "replboot-live"
LEASE_TIMEOUT = 6
ARCHIVE = ["--set", "archive.binlog=true", "--set", f"archive.binlog_lease_timeout={LEASE_TIMEOUT}"]


class LedgerWriter(threading.Thread):
    """One short INSERT transaction after another on the primary, as the app user; `acked` holds
    (id, the time the commit returned) of each that exited 0, `attempted` every id sent (an
    uncertain outcome may or may not have committed)."""

    def __init__(self, primary, first_id=1, pause=0.02):
        super().__init__(daemon=True)
        self.primary, self.next_id, self.pause = primary, first_id, pause
        self.acked, self.attempted, self.failed = [], set(), 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            i = self.next_id
            self.next_id += 1
            self.attempted.add(i)
            r = self.primary.app_sql(f"INSERT INTO app.t VALUES ({i}, REPEAT(MD5({i}), 8))")
            if r.returncode == 0:
                self.acked.append((i, time.time()))
            else:
                self.failed += 1
                time.sleep(0.2)
            time.sleep(self.pause)

    def stop(self):
        self.halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the writer did not stop"


def archive_status(node):
    return node.status()["binlog_archive"]


def metric(node, name):
    code, body = node.get("/metrics")
    assert code == 200, (node.name, code)
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in {node.name}'s /metrics")


def chain(node, settings):
    return json.loads(ok(cli(node, ["binlog", "list", "--json"], settings), "binlog list").stdout)


def test_live_archive_through_faults_and_a_lost_cluster():
    t_start = time.monotonic()

    def step(text):
        print(f"--- {time.monotonic() - t_start:6.1f}s {text}", flush=True)

    with Harness("binlog-live") as H, MotoServer(H.path("moto")) as moto, \
            FaultProxy((moto.host, moto.port),
                       sigv4=(moto.access_key_id, moto.secret_access_key, moto.region)) as proxy:
        moto.create_bucket(BUCKET)
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        make_pki(H.path("pki"), ["mysql-0", "mysql-1"])
        key_file = write_private(H.path("backup.key"), KEY + "\n")
        access = write_private(H.path("s3-access"), moto.access_key_id + "\n")
        secret = write_private(H.path("s3-secret"), moto.secret_access_key + "\n")
        store = ["--set", f"archive.store=s3://{BUCKET}/live", "--set", f"archive.key_file={key_file}",
                 "--set", f"archive.endpoint={proxy.address}", "--set", f"archive.access_key_file={access}",
                 "--set", f"archive.secret_key_file={secret}"]
        settings = store + ARCHIVE
        p0, r1 = Node(H, 0, dns), Node(H, 1, dns)
        p0.start(store)
        p0.wait_http("/ready", 200, 120, "mysql-0 initialized")
        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, pad VARCHAR(256) NOT NULL) ENGINE=InnoDB")
        assert r.returncode == 0, r.stderr.decode()
        r = p0.app_sql("INSERT INTO app.t SELECT seq, 'before the backup' FROM app.seq_1000001_to_1000100")
        assert r.returncode == 0, r.stderr.decode()
        backup = ok(cli(p0, ["backup", "now", "--from", p0.addr], store), "backup").stdout.split()[-1]
        assert archive_status(p0)["enabled"] is False
        step(f"mysql-0 up, backup {backup}")

        writer = LedgerWriter(p0)
        writer.start()
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        r1.start(settings)
        r1.wait_http("/replica", 200, 240, "mysql-1 replicating")
        wait_until(lambda: archive_status(r1)["state"] == "archiving" and archive_status(r1)["segments"] >= 2,
                   60, "mysql-1 archiving", interval=0.5)
        st = archive_status(r1)
        assert st["role"] == "holder" and st["holder"] == "mysql-1" and st["epoch"] == 1, st
        assert st["start_source"] == "backup", st  # the chain starts where the backup ends
        step(f"mysql-1 holds the lease, from {st['chain_start']}: {st['segments']} segments")

        # --- the primary restarted, now with the archive on ---
        errors_before = archive_status(r1)["stream_errors"]
        p0.stop()
        p0.start(settings)
        p0.wait_http("/ready", 200, 120, "mysql-0 back")
        wait_until(lambda: archive_status(p0)["state"] == "waiting_turn" and archive_status(p0)["holder"] == "mysql-1",
                   30, "mysql-0 standing by, seeing mysql-1's lease", interval=0.5)
        sealed = archive_status(r1)["transactions"]
        wait_until(lambda: archive_status(r1)["transactions"] > sealed + 20, 60,
                   "mysql-1 archiving again after the primary's restart", interval=0.5)
        st = archive_status(r1)
        assert st["stream_errors"] > errors_before and st["role"] == "holder", st
        assert archive_status(p0)["role"] == "standby"
        step(f"primary restarted: mysql-1 reconnected ({st['stream_errors']} stream ends), mysql-0 standby")

        # --- the store unreachable ---
        failures_before = archive_status(r1)["put_failures"]
        proxy.cut_all()
        wait_until(lambda: archive_status(r1)["put_failures"] > failures_before, 30,
                   "a segment upload failing", interval=0.5)
        time.sleep(8)
        st = archive_status(r1)
        assert st["state"] == "store_unreachable" and st["pending_seconds"] > 5, st
        assert archive_status(p0)["role"] == "standby", "a store nobody can read is no reason to take over"
        proxy.restore()
        cut_gtid = p0.sql("SELECT @@gtid_binlog_pos")[0][0]
        wait_until(lambda: archive_status(r1)["state"] == "archiving" and
                   int(archive_status(r1)["newest_gtid"].split("-")[-1] or 0) >= int(cut_gtid.split("-")[-1]),
                   60, "the archive catching up after the store came back", interval=0.5)
        step(f"store unreachable: {archive_status(r1)['put_failures'] - failures_before} failed uploads, caught up")

        # --- the holder SIGKILLed under writes ---
        t_kill = time.monotonic()
        os.kill(r1.proc.pid, signal.SIGKILL)
        r1.proc.wait(timeout=30)
        wait_until(lambda: archive_status(p0)["role"] == "holder" and archive_status(p0)["state"] == "archiving",
                   LEASE_TIMEOUT * 4, "mysql-0 taking the lease over", interval=0.5)
        took = time.monotonic() - t_kill
        st = archive_status(p0)
        assert st["epoch"] == 2 and st["takeovers"] == 1 and st["start_source"] == "archive", st
        step(f"mysql-1 killed: mysql-0 took epoch 2 after {took:.1f}s")

        # --- the chain is whole up to the primary's newest transaction ---
        pause = writer.pause
        writer.pause = 0.5  # fewer writes, so the check below catches one moment
        last = p0.sql("SELECT @@gtid_binlog_pos")[0][0]
        wait_until(lambda: int(archive_status(p0)["newest_gtid"].split("-")[-1] or 0) >= int(last.split("-")[-1]),
                   30, "mysql-0 archiving past the primary's newest transaction", interval=0.5)
        listed = chain(p0, store)
        assert listed["gaps"] == [], listed["gaps"]
        assert len(listed["ranges"]) == 1 and listed["ranges"][0]["from_backup"] == backup, listed["ranges"]
        assert int(listed["ranges"][0]["to_gtid"].split("-")[-1]) >= int(last.split("-")[-1]), (listed["ranges"], last)
        lag_p99 = metric(p0, 'replboot_binlog_archive_lag_seconds{quantile="0.99"}')
        assert metric(p0, "replboot_binlog_archiver_active") == 1
        assert metric(p0, "replboot_binlog_archive_gaps_total") == 0
        step(f"chain whole: {len(listed['segments'])} segments from backup {backup} to {listed['ranges'][0]['to_gtid']}; "
             f"lag p99 {lag_p99:.2f}s (mysql-0), p50 {archive_status(p0)['lag_p50_seconds']:.2f}s")
        writer.pause = pause

        # --- every volume lost under the write load ---
        time.sleep(6)
        t_loss = time.time()
        os.kill(p0.proc.pid, signal.SIGKILL)
        p0.proc.wait(timeout=30)
        writer.stop()
        for n in (p0, r1):
            # Each mysqld ends on its own once its replboot is gone (parent-death signal).
            wait_until(lambda: subprocess.run(["pgrep", "-f", os.path.join(n.base, "etc")],
                                              capture_output=True).returncode != 0,
                       60, f"{n.name}'s mysqld gone")
            shutil.rmtree(n.datadir)
        target = H.path("restored")
        ok(cli(p0, ["restore", "--datadir", target], store, timeout=300), "restore of everything archived")
        ids, _ = rows_of_t(H, target)
        acked = [(i, t) for i, t in writer.acked]
        must = [i for i, t in acked if t < t_loss - 5]
        missing = [i for i in must if i not in ids]
        assert not missing, f"{len(missing)} writes acknowledged >5s before the loss are not restored: {missing[:10]}"
        strangers = [i for i in ids if i < 1000001 and i not in writer.attempted]
        assert not strangers, strangers[:10]
        assert all(i in ids for i in range(1000001, 1000101)), "the backup's rows"
        present_after = [t for i, t in acked if i in ids]
        lost = [t for i, t in acked if i not in ids]
        window = t_loss - min(lost) if lost else 0.0
        step(f"lost cluster restored: {len(must)} of {len(acked)} acknowledged writes older than 5s, all there; "
             f"the restore lost the last {window:.1f}s ({len(lost)} writes); newest restored write "
             f"{t_loss - max(present_after):.1f}s before the loss")


def rows_of_t(h, datadir):
    """app.t ids of a restored datadir (pitr_test's reader wants app.u as well)."""
    from replboot_harness import MariaDB
    server = MariaDB(h, h.addr(5), name="restored", datadir=datadir, root_password=SECRETS["root"])
    server.start(set_root_password=False)
    try:
        return {int(r[0]) for r in server.sql("SELECT id FROM app.t")}, 0
    finally:
        server.stop()


if __name__ == "__main__":
    run_tests(globals())
