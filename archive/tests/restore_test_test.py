"""The restore test (issue 23, "Verification"), end to end: real mariadbd and mariabackup, a
file:// store.

test_restore_test_proves_and_records:
  mysql-0 starts with an empty store and gets an InnoDB and an Aria table; mysql-1 clones and
  replicates, and `replboot backup now` puts its backup into the store (a replica's: its GTID
  position is in its tables, so the restored server's position must equal the manifest's).
  Each interrupted run below has its throwaway server frozen (SIGSTOP) first, so it cannot
  finish before the signal arrives.
  - SIGKILLed: its server ends with it (parent-death signal), the scratch dir stays behind.
  - SIGTERM: that leftover is removed first; then its own server is killed and its scratch dir
    removed; it exits 143 and records nothing.
  - --keep-scratch: restored, started, every table checked, the time recorded (`backup list`,
    table and --json); the kept scratch dir holds the restored datadir (no promotion marker) and
    no server runs on it.
  - an innodb_page_size the datadir does not have: the server does not start; the failure names
    that step and the end of the server's error log, is recorded, and the kept dir is gone.
  - one byte of object 0 changed in the store: fails at download/verify naming the object,
    recorded, no scratch dir left.
  All along mysql-1's mysqld is the same process with the same rows, still a replica that
  replicates, and nothing appears in its datadir.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("REPLBOOT_SOURCE_DIR", "../.."), "daemon", "tests"))

from cluster_test import SECRETS, Node
from replboot_harness import (Dnsmasq, Harness, make_pki, proc_children, proc_comm, read_log,
                              run_tests, wait_until, write_private, node_env)

KEY = "k" + os.urandom(24).hex()


def cli(node, args, settings, timeout=300):
    """`replboot <args>` with node's own settings (its argv with `run` replaced)."""
    argv = node.argv(settings)
    i = argv.index("run")
    argv = argv[:i] + list(args) + argv[i + 1:]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=node_env(SECRETS))


def cli_argv(node, args, settings):
    argv = node.argv(settings)
    i = argv.index("run")
    return argv[:i] + list(args) + argv[i + 1:]


def mysqld_pid(node):
    """The pid of the mariadbd replboot supervises."""
    kids = [p for p in proc_children(node.proc.pid) if proc_comm(p) == "mariadbd"]
    assert len(kids) == 1, kids
    return kids[0]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent was killed; init reaps it soon).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listed(node, settings):
    r = cli(node, ["backup", "list", "--json"], settings)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_restore_test_proves_and_records():
    with Harness("archive-rtest") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        make_pki(H.path("pki"), ["mysql-0", "mysql-1"])
        key_file = write_private(H.path("backup.key"), KEY + "\n")
        store = H.path("store")
        settings = ["--set", f"archive.store=file://{store}", "--set", f"archive.key_file={key_file}"]
        primary = Node(H, 0, dns)
        primary.start(settings)
        primary.wait_http("/ready", 200, 120, "mysql-0 initialized")
        r = primary.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL) ENGINE=InnoDB;"
                            "CREATE TABLE app.a (id INT PRIMARY KEY) ENGINE=Aria;"
                            "INSERT INTO app.a VALUES (1), (2), (3);"
                            "INSERT INTO app.t SELECT seq, CONCAT('row-', seq) FROM app.seq_1_to_300")
        assert r.returncode == 0, r.stderr.decode()
        # The backup of a replica: its GTID position (slave_info) is in its tables too
        # (mysql.gtid_slave_pos), so the restored server's position can be held against it.
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        r1 = Node(H, 1, dns)
        r1.start(settings)
        r1.wait_http("/replica", 200, 240, "mysql-1 replicating")
        wait_until(lambda: r1.sql("SELECT COUNT(*) FROM app.t")[0][0] == "300", 30, "mysql-1 caught up")
        r = cli(r1, ["backup", "now", "--from", r1.addr], settings)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        backup_id = r.stdout.strip().splitlines()[-1]
        pid = mysqld_pid(r1)
        datadir_before = sorted(os.listdir(r1.datadir))
        scratch = r1.datadir + ".replboot-restore-test"

        def live_server_untouched():
            assert mysqld_pid(r1) == pid, "mysql-1's mysqld was restarted"
            assert r1.sql("SELECT COUNT(*) FROM app.t")[0][0] == "300"
            assert r1.sql("SELECT @@read_only")[0][0] == "1"  # a replica, as before
            assert r1.status()["role"] == "replica", r1.status()
            assert sorted(os.listdir(r1.datadir)) == datadir_before, \
                set(os.listdir(r1.datadir)) ^ set(datadir_before)

        def test_restore_held(name):
            """A `backup test-restore` whose throwaway server is frozen (SIGSTOP) as soon as it
            is spawned, so the test cannot end before the test below has its signal sent."""
            p = H.spawn(cli_argv(r1, ["backup", "test-restore"], settings), log_name=name,
                        env=node_env(SECRETS))
            started = re.compile(r"event=restore_test_server_started .*?pid=(\d+)")
            wait_until(lambda: started.search(read_log(p)), 60, f"{name}: the server started",
                       interval=0.01)
            server = int(started.search(read_log(p)).group(1))
            os.kill(server, signal.SIGSTOP)
            assert p.poll() is None and alive(server), read_log(p)[-2000:]
            return p, server

        # --- killed mid-test: its server goes with it, the scratch dir stays ---
        killed, throwaway = test_restore_held("rtest-killed")
        os.kill(killed.pid, signal.SIGKILL)  # the CLI only, not its group: the server's own signal
        killed.wait(timeout=10)
        wait_until(lambda: not alive(throwaway), 15, "the throwaway server ended with replboot")
        assert os.path.isdir(os.path.join(scratch, "data")), os.listdir(scratch)
        live_server_untouched()

        # --- SIGTERM mid-test: the leftover removed first, then its own server killed and its
        # scratch dir removed before it exits 143; a stopped test records nothing ---
        stopped, throwaway = test_restore_held("rtest-stopped")
        assert "event=restore_test_leftover_removed" in read_log(stopped), read_log(stopped)[-2000:]
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(timeout=30) == 143, read_log(stopped)[-3000:]
        assert not alive(throwaway)
        assert not os.path.exists(scratch), os.listdir(scratch)
        [b] = listed(r1, settings)
        assert b["restore_test"] == "never", b
        live_server_untouched()

        # --- the next run: leftover removed, restored, started, checked, recorded, kept ---
        start = time.time()
        r = cli(r1, ["backup", "test-restore", "--keep-scratch"], settings)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        print(f"test-restore of backup {backup_id} passed in {time.time() - start:.1f}s: {r.stdout.strip()}")
        assert f"{backup_id} restorable:" in r.stdout, r.stdout
        assert "event=restore_test_passed" in out, out[-3000:]
        assert 'gtid_check=equal' in out, out[-3000:]  # the replica's position, restored
        # The server's own tables (mysql.*) and ours, each checked.
        assert "restore_test_failed" not in out
        [b] = listed(r1, settings)
        assert b["restore_test"] == "passed" and b["restore_tested_at"] != "never", b
        assert b["restore_test_error"] == "" and b["restore_test_tables"] >= 30, b
        assert b["restore_test_seconds"] > 0 and b["verified_at"] != "never", b
        r = cli(r1, ["backup", "list"], settings)
        assert r.returncode == 0 and b["restore_tested_at"] in r.stdout, r.stdout
        # Kept: the restored datadir, no promotion marker (tested as a replica), no server on it.
        assert os.path.isdir(os.path.join(scratch, "data", "app")), os.listdir(scratch)
        assert not os.path.exists(os.path.join(scratch, "data", "replboot-promote.json"))
        assert not any(scratch.encode() in (open(f"/proc/{p}/cmdline", "rb").read() if alive(p) else b"")
                       for p in [int(e) for e in os.listdir("/proc") if e.isdigit()]
                       if p != os.getpid()), "a server still runs on the kept scratch dir"
        live_server_untouched()

        # --- a server that cannot open the restored datadir: fails at server start, with the
        # end of its error log (mysql.options a datadir needs reach the test server) ---
        r = cli(r1, ["backup", "test-restore"], settings + ["--set", "mysql.options.innodb_page_size=8k"])
        out = r.stdout + r.stderr
        assert r.returncode == 1, (r.returncode, out[-3000:])
        assert "failed at server start" in out and "page size" in out.lower(), out[-3000:]
        assert not os.path.exists(scratch), os.listdir(scratch)
        [b] = listed(r1, settings)
        assert b["restore_test"] == "failed" and b["restore_test_error"].startswith("server start: "), b
        print("recorded:", b["restore_test_error"][:600])
        live_server_untouched()

        # --- one byte changed in object 0: fails at download/verify, named, recorded ---
        obj = os.path.join(store, "backups", backup_id, "objects", "00000000")
        with open(obj, "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 1]))
        r = cli(r1, ["backup", "test-restore", "--backup", backup_id], settings)
        out = r.stdout + r.stderr
        assert r.returncode == 1, (r.returncode, out[-3000:])
        assert "failed at download/verify" in out and "object 0" in out, out[-3000:]
        assert not os.path.exists(scratch), os.listdir(scratch)
        [b] = listed(r1, settings)
        assert b["restore_test"] == "failed", b
        assert b["restore_test_error"].startswith("download/verify: ") and "object 0" in b["restore_test_error"], b
        print("recorded:", b["restore_test_error"][:600])
        r = cli(r1, ["backup", "list"], settings)
        assert "FAILED " in r.stdout, r.stdout
        live_server_untouched()
        # Still replicating: a row written on the primary arrives.
        assert primary.app_sql("INSERT INTO app.t VALUES (1000, 'after')").returncode == 0
        wait_until(lambda: r1.sql("SELECT COUNT(*) FROM app.t")[0][0] == "301", 30, "mysql-1 replicating on")
        assert r1.stop() == 0, r1.log()[-3000:]
        assert primary.stop() == 0, primary.log()[-3000:]


if __name__ == "__main__":
    run_tests(globals())
