"""Scheduled backups inside `replboot run` (issue 23, "Who takes backups"): real mariadbd and
mariabackup, three nodes, archive.schedule = "every 15s".

test_scheduled_backups_and_faults:
  S3 (moto behind tests/harness/fault_proxy.py, which checks SigV4 as AWS does). Once the
  replicas are ready, every slot is backed up once, by the slot's turn holder (replica
  1 + k mod 2: the manifest names the node the stream came from). Then faults, one at a time,
  each followed by a complete backup of a later attempt or slot: uploads cut mid-object, the
  store unreachable for a minute (every connection refused, over four slots), 403 and 500
  answers to the objects' PUTs, and SIGKILL of the replica taking a backup (the slot or the next is taken by another node; the
  killed one restarts and takes its turn again). The metrics count each failure by kind.
  Then a file store on a small tmpfs, mounted by the test: the store fills (store_full, no
  manifest), the tmpfs grows (remount) and the next attempt succeeds. Throughout: no listed
  backup is complete unless every object verifies, and no slot has two complete backups.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("REPLBOOT_SOURCE_DIR", "../.."), "daemon", "tests"))

from backup_restore_test import cli, store_settings, write_rows
from cluster_test import Node
from fault_proxy import FaultProxy
from moto_harness import MotoServer
from replboot_harness import Dnsmasq, Harness, make_pki, run_tests, tcp_open, wait_until, write_private

KEY = "s" + os.urandom(24).hex()
PERIOD = 15
SCHEDULE = [
    "--set", f"archive.schedule=every {PERIOD}s",
    "--set", "archive.claim_step=3",
    "--set", "archive.claim_timeout=10",
    "--set", "archive.retry_backoff=1",
    "--set", "archive.object_size_mb=1",
    "--set", "archive.keep_last=50",
    # A scheduled backup is one receiver: no window to wait for others.
    "--set", "backup.fanout_window_ms=0",
]
# A backup's larger PUTs (objects with data, the manifest) are larger than this; claims, checks
# and the other nodes' polls (GETs, LISTs) are not.
OBJECT_PUT = 4096


def id_time(backup_id):
    return int(time.mktime(time.strptime(backup_id, "%Y%m%dT%H%M%SZ")) - time.timezone)


def slot_of(backup_id):
    return id_time(backup_id) // PERIOD * PERIOD


def metrics(node):
    code, body = node.get("/metrics")
    assert code == 200, (node.name, code)
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def failures(node, kind):
    try:
        return metrics(node).get(f'replboot_backup_failures_total{{kind="{kind}"}}', 0)
    except OSError:
        return 0


class Store:
    """The store as `replboot backup list` shows it, through a node's settings."""

    def __init__(self, node, settings):
        self.node, self.settings = node, settings
        self.verified = set()

    def listed(self):
        r = cli(self.node, ["backup", "list", "--json"], self.settings, timeout=120)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        return json.loads(r.stdout)

    def complete(self, after=0):
        return [b for b in self.listed() if b["complete"] and id_time(b["id"]) >= after]

    def wait_complete(self, after, timeout, what, count=1):
        found = []

        def ok():
            found[:] = self.complete(after)
            return len(found) >= count
        wait_until(ok, timeout, what, interval=1)
        return found

    def check_whole(self):
        """Each complete backup verifies object by object; at most one per slot."""
        listed = self.listed()
        done = [b for b in listed if b["complete"]]
        slots = [slot_of(b["id"]) for b in done]
        assert len(slots) == len(set(slots)), [b["id"] for b in done]
        for b in done:
            if b["id"] in self.verified:
                continue
            r = cli(self.node, ["backup", "verify", "--backup", b["id"]], self.settings)
            assert r.returncode == 0, (b["id"], (r.stdout + r.stderr)[-2000:])
            self.verified.add(b["id"])
        return listed


def wait_failure(nodes, kind, before, timeout, what):
    wait_until(lambda: sum(failures(n, kind) for n in nodes) > before, timeout, what, interval=0.5)


def total_failures(nodes, kind):
    return sum(failures(n, kind) for n in nodes)


def start_cluster(H, dns, settings):
    p0, r1, r2 = nodes = [Node(H, i, dns) for i in range(3)]
    # Peers go into DNS as they start: a primary with an empty datadir waits for every peer in
    # DNS (a lost primary volume) before it initializes.
    dns.add_host("mysql-0.mysql", H.addr(0))
    dns.start()
    p0.start(settings)
    p0.wait_http("/ready", 200, 120, "mysql-0 initialized")
    r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL) ENGINE=InnoDB")
    assert r.returncode == 0, r.stderr.decode()
    write_rows(p0, 0, 100)
    dns.add_host("mysql-1.mysql", H.addr(1)).reload()
    r1.start(settings)
    r1.wait_http("/replica", 200, 240, "mysql-1 replicating")
    dns.add_host("mysql-2.mysql", H.addr(2)).reload()
    r2.start(settings)
    r2.wait_http("/replica", 200, 240, "mysql-2 replicating")
    return nodes


def test_scheduled_backups_and_faults():
    t_start = time.monotonic()

    def step(text):
        print(f"--- {time.monotonic() - t_start:6.1f}s {text}", flush=True)

    with Harness("archive-sched") as H, MotoServer(H.path("moto")) as moto, \
            FaultProxy((moto.host, moto.port),
                       sigv4=(moto.access_key_id, moto.secret_access_key, moto.region)) as proxy:
        moto.create_bucket("replboot-backups")
        dns = Dnsmasq(H, H.addr(9), port=53)
        make_pki(H.path("pki"), [f"mysql-{i}" for i in range(3)])
        key_file = write_private(H.path("backup.key"), KEY + "\n")
        access = write_private(H.path("s3-access"), moto.access_key_id + "\n")
        secret = write_private(H.path("s3-secret"), moto.secret_access_key + "\n")
        settings = store_settings(H, "s3://replboot-backups/sched", key_file, [
            "--set", f"archive.endpoint={proxy.address}", "--set", f"archive.access_key_file={access}",
            "--set", f"archive.secret_key_file={secret}", *SCHEDULE])
        p0, r1, r2 = nodes = start_cluster(H, dns, settings)
        store = Store(r1, settings)
        step("cluster ready")

        # --- every slot once, by its turn holder (replica 1 + k mod 2) ---
        ready_at = time.time()
        first = (int(ready_at) // PERIOD + 1) * PERIOD
        done = store.wait_complete(first, 4 * PERIOD, "two scheduled backups by the replicas", count=2)
        for b in done:
            k = id_time(b["id"]) // PERIOD
            assert id_time(b["id"]) == slot_of(b["id"]), b["id"]  # attempt 0: the slot's own id
            assert b["node"] == f"mysql-{1 + k % 2}", (b["id"], b["node"])
        for n in nodes:
            st = n.status()["archive"]
            assert st["enabled"] and st["schedule"] == f"every {PERIOD}s", st
            assert st["next_slot_at"] > ready_at, st
        m = metrics(r1)
        assert m["replboot_backup_last_success_timestamp_seconds"] >= first, m
        # archive.restore_test_interval (a day by default): the first taker proved its backup
        # restorable (a throwaway server on a scratch dir); the second found that within the
        # interval and ran none.
        # (The first backup may come from a slot before `first`, so may its test.)
        def passed():
            return sum(n.log().count("event=scheduled_restore_test_passed") for n in (r1, r2))
        # A restore test downloads, prepares and starts a throwaway server: on a CI machine busy
        # with other tests that can take a minute, so allow it two.
        try:
            wait_until(lambda: passed() >= 1, 8 * PERIOD, "a scheduled restore test to pass")
        except AssertionError:
            tails = ["\n".join(line for line in n.log().splitlines() if "restore_test" in line)[-3000:]
                     for n in (r1, r2)]
            raise AssertionError(f"no scheduled restore test passed; their log lines: {tails}")
        assert passed() == 1, [n.log()[-2000:] for n in (r1, r2)]
        assert "event=scheduled_restore_test_failed" not in r1.log() + r2.log()
        wait_until(lambda: metrics(r1)["replboot_backup_last_restore_test_timestamp_seconds"] > 0,
                   4 * PERIOD, "the last restore test's time in every node's metrics")
        assert m['replboot_backup_failures_total{kind="restore_test"}'] == 0, m
        assert m["replboot_backups_taken_total"] >= 1 or metrics(r2)["replboot_backups_taken_total"] >= 1
        stored = max(b["stored_bytes"] for b in done)
        step(f"scheduled backups by the turn holders: {[(b['id'], b['node']) for b in done]}; "
             f"{stored} bytes stored each")
        store.check_whole()

        # --- faults of the store, each followed by a complete backup ---
        def fault(what, kind, inject, clear=None, hold=0):
            before = total_failures(nodes, kind)
            t0 = time.time()
            inject()
            wait_failure(nodes, kind, before, 3 * PERIOD, f"a {kind} failure ({what})")
            if hold:
                # The store stays down `hold` seconds from the fault on, over several slots:
                # every attempt in them fails, none leaves a backup listed as complete.
                time.sleep(max(0.0, hold - (time.time() - t0)))
            if clear:
                clear()
            got = store.wait_complete(int(t0), 4 * PERIOD, f"a complete backup after {what}")
            step(f"{what}: counted as {kind}; then {got[-1]['id']} by {got[-1]['node']}")
            return got

        write_rows(p0, 100, 50)
        fault("uploads cut mid-object", "store_unreachable",
              lambda: proxy.cut_after_body_bytes(1024, 8, min_body=OBJECT_PUT))
        proxy.reset()
        fault("the store unreachable for a minute", "store_unreachable", proxy.cut_all, proxy.restore,
              hold=60)
        store.check_whole()
        fault("403 answers", "store_denied",
              lambda: proxy.fail_next(1, 403, "AccessDenied", method="PUT", min_body=OBJECT_PUT))
        fault("500 answers", "store_unreachable",
              lambda: proxy.fail_next(6, 500, "InternalError", method="PUT", min_body=OBJECT_PUT))
        proxy.reset()
        store.check_whole()
        # Counted per process: taken now, before a node is killed and its counters restart.
        assert total_failures(nodes, "store_denied") >= 1
        assert total_failures(nodes, "store_unreachable") >= 3

        # --- SIGKILL of the replica taking a backup ---
        victim = []

        def taking():
            for n in (r1, r2):
                try:
                    if metrics(n).get("replboot_backup_in_progress") == 1:
                        victim.append(n)
                        return True
                except OSError:
                    pass
            return False
        wait_until(taking, 3 * PERIOD, "a replica taking a scheduled backup", interval=0.05)
        v = victim[0]
        killed_id = v.status()["archive"]["current_id"]
        t_kill = time.time()
        os.kill(v.proc.pid, signal.SIGKILL)
        v.proc.wait(timeout=30)
        others = [n for n in nodes if n is not v]
        got = store.wait_complete(int(t_kill), 4 * PERIOD, "a backup by another node after the kill")
        assert got[-1]["node"] != v.name, got
        listed = {b["id"]: b for b in store.listed()}
        # Killed before its first object, the attempt is only a claim: not listed at all.
        assert killed_id not in listed or not listed[killed_id]["complete"], listed[killed_id]
        step(f"{v.name} killed taking {killed_id} ({'listed incomplete' if killed_id in listed else 'not listed'}); "
             f"{got[-1]['id']} by {got[-1]['node']}")
        wait_until(lambda: not tcp_open(v.addr, 3306), 60, f"{v.name}'s mysqld gone (parent-death signal)")
        v.start(settings)
        v.wait_http("/replica", 200, 120, f"{v.name} back after the kill")
        t_back = time.time()
        got = store.wait_complete(int(t_back), 5 * PERIOD, f"a backup by {v.name} after its restart",
                                  count=2)
        assert v.name in [b["node"] for b in got], [(b["id"], b["node"]) for b in got]
        step(f"{v.name} takes its turns again: {[(b['id'], b['node']) for b in got]}")
        listed = store.check_whole()
        assert all(b["node"] in ("mysql-0", "mysql-1", "mysql-2") for b in listed if b["complete"])
        for n in others:
            m = metrics(n)
            assert m["replboot_backup_in_progress"] in (0, 1), m
            assert m["replboot_backup_last_success_timestamp_seconds"] >= t_back - PERIOD, m

        # --- a full file store: a small tmpfs ---
        for n in (r2, r1, p0):
            assert n.stop() == 0, n.log()[-3000:]
        full = H.path("full-store")
        os.makedirs(full)
        size_kib = max(64, stored // 1024 // 2)  # half a backup: it cannot fit
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", full], check=True)
        try:
            file_settings = store_settings(H, f"file://{full}", key_file, SCHEDULE)
            for n in nodes:
                n.start(file_settings)
            for n in nodes:
                n.wait_http("/ready", 200, 120, f"{n.name} restarted on the file store")
            fstore = Store(r1, file_settings)
            before = total_failures(nodes, "store_full")
            wait_failure(nodes, "store_full", before, 3 * PERIOD, "the tmpfs store full")
            assert fstore.complete() == [], fstore.listed()
            t_full = time.time()
            subprocess.run(["mount", "-o", f"remount,size={64 * 1024}k", full], check=True)
            got = fstore.wait_complete(int(t_full) - PERIOD, 4 * PERIOD, "a backup once the store has room")
            step(f"store full, counted; then {got[-1]['id']} by {got[-1]['node']}")
            fstore.check_whole()
            m = [metrics(n) for n in nodes]
            assert sum(x['replboot_backup_failures_total{kind="store_full"}'] for x in m) >= 1, m
            for n in (r2, r1, p0):
                assert n.stop() == 0, n.log()[-3000:]
        finally:
            for n in nodes:
                if n.proc and n.proc.poll() is None:
                    n.proc.kill()
                    n.proc.wait()
            subprocess.run(["umount", "-l", full])
        for n in nodes:
            assert KEY not in n.log()
        step("done")


if __name__ == "__main__":
    run_tests(globals())
