"""Backups outside the cluster, end to end (issue 23): real mariadbd, real mariabackup, a
file:// store.

test_file_store_backup_and_lost_cluster:
  mysql-0 starts with the store configured and empty: it initializes as before. mysql-1 clones
  and replicates. `replboot backup now` streams mysql-1's backup into the store; `backup list`
  shows it complete and verified. More rows are written, then both nodes stop and both datadirs
  are deleted. Started again, mysql-0 finds no peer holding data and restores the newest backup
  by itself (not an empty database): exactly the backed-up rows, writable; mysql-1 clones it and
  replicates. Bad input on a copy of the store (one byte changed, an object missing, another
  key, another cluster): `replboot restore` refuses, names the object or reason, and writes
  nothing into the datadir.
test_s3_store_backup_restore:
  the same backup into moto over SigV4 (through tests/harness/fault_proxy.py, which checks each
  signature the way AWS does: moto 5.2.1 checks a query's signature against its decoded form, so
  a correctly signed `prefix=backups%2F` would get 403 from it directly), listed, restored into a
  fresh datadir; a wrong S3 secret is refused as such (403), naming no secret.
"""
import json
import os
import shutil
import subprocess
import sys

# The cluster tests' Node (backups over TLS, a resolv.conf of its own) lives beside them.
sys.path.insert(0, os.path.join(os.environ.get("REPLBOOT_SOURCE_DIR", "../.."), "daemon", "tests"))

from cluster_test import SECRETS, Node
from fault_proxy import FaultProxy
from moto_harness import MotoServer
from replboot_harness import (Dnsmasq, Harness, LeakWatcher, make_pki, read_text, run_tests, wait_until,
                              write_private, node_env)

KEY = "k" + os.urandom(24).hex()            # the backups' encryption key (secret text)
OTHER_KEY = "o" + os.urandom(24).hex()
OTHER_CLUSTER = "00000000-0000-4000-8000-000000000000"


def store_settings(h, url, key_file, extra=()):
    return ["--set", f"archive.store={url}", "--set", f"archive.key_file={key_file}", *extra]


def cli(node, args, settings, timeout=600):
    """`replboot <args>` with node's own settings (its argv with `run` replaced)."""
    argv = node.argv(settings)
    i = argv.index("run")
    argv = argv[:i] + list(args) + argv[i + 1:]
    if "--datadir" in args:  # the node's own goes: one datadir per command
        j = argv.index("--datadir", i + len(args))
        del argv[j:j + 2]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=node_env(SECRETS))


def count_rows(node):
    return int(node.sql("SELECT COUNT(*) FROM app.t")[0][0])


def write_rows(node, first, n):
    values = ",".join(f"({i}, 'row-{i}')" for i in range(first, first + n))
    r = node.app_sql(f"INSERT INTO app.t VALUES {values}")
    assert r.returncode == 0, r.stderr.decode()


def assert_refused(node, settings, scratch, pattern, what, extra=()):
    r = cli(node, ["restore", "--datadir", scratch, *extra], settings)
    assert r.returncode != 0, f"{what}: restore succeeded\n{r.stdout}{r.stderr}"
    out = r.stdout + r.stderr
    assert pattern in out, f"{what}: {pattern!r} not in\n{out[-3000:]}"
    # Nothing written into the datadir (absent or empty) and no staging dir left.
    assert not os.path.exists(scratch) or os.listdir(scratch) == [], (what, os.listdir(scratch))
    assert not os.path.exists(scratch + ".replboot-staging"), what
    return out


def test_file_store_backup_and_lost_cluster():
    with Harness("archive-file") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        make_pki(H.path("pki"), [f"mysql-{i}" for i in range(2)])
        key_file = write_private(H.path("backup.key"), KEY + "\n")
        store = H.path("store")
        settings = store_settings(H, f"file://{store}", key_file)
        p0, r1 = nodes = [Node(H, i, dns) for i in range(2)]
        watcher = LeakWatcher({**SECRETS, "key": KEY}, scope=H.dir).start()

        p0.start(settings)
        p0.wait_http("/ready", 200, 120, "mysql-0 initialized (the store is empty)")
        assert "event=primary_recovery_store_empty action=initialize" in p0.log(), p0.log()[-3000:]
        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL) ENGINE=InnoDB")
        assert r.returncode == 0, r.stderr.decode()
        write_rows(p0, 0, 200)
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        r1.start(settings)
        r1.wait_http("/replica", 200, 240, "mysql-1 replicating")
        wait_until(lambda: count_rows(r1) == 200, 30, "mysql-1 caught up")

        r = cli(r1, ["backup", "now", "--from", r1.addr], settings)
        assert r.returncode == 0, r.stderr[-4000:]
        backup_id = r.stdout.strip().splitlines()[-1]
        assert "event=backup_done" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
        r = cli(r1, ["backup", "list", "--json"], settings)
        assert r.returncode == 0, r.stderr
        listed = json.loads(r.stdout)
        assert [b["id"] for b in listed] == [backup_id], listed
        b = listed[0]
        assert b["complete"] and b["verified_at"] != "never" and b["gtid_position"], b
        assert b["logical_bytes"] > b["stored_bytes"] > 0, b
        r = cli(r1, ["backup", "list"], settings)
        assert r.returncode == 0 and backup_id in r.stdout and "complete" in r.stdout, r.stdout
        r = cli(r1, ["backup", "verify", "--deep"], settings)
        assert r.returncode == 0, r.stderr[-3000:]
        # The store holds no clear text of the data and no secret.
        for root, _, files in os.walk(store):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                assert b"row-1" not in data and KEY.encode() not in data, name

        write_rows(p0, 200, 50)  # after the backup: not in it

        # --- bad input, each on a copy of the store: refused, named, nothing written ---
        scratch = H.path("scratch")
        obj = os.path.join("backups", backup_id, "objects", "00000000")

        def copy_store(name):
            dst = H.path(name)
            shutil.copytree(store, dst)
            return dst, store_settings(H, f"file://{dst}", key_file)

        dst, s = copy_store("store-flipped")
        with open(os.path.join(dst, obj), "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 1]))
        assert_refused(r1, s, scratch, "object 0", "one byte changed")
        dst, s = copy_store("store-missing")
        os.unlink(os.path.join(dst, obj))
        assert_refused(r1, s, scratch, "object 0 of backup", "an object missing", ["--backup", backup_id])
        assert_refused(r1, s, scratch, "no complete backup (incomplete: " + backup_id, "latest, an object missing")
        other_key = write_private(H.path("other.key"), OTHER_KEY + "\n")
        assert_refused(r1, store_settings(H, f"file://{store}", other_key), scratch, "key",
                       "another key")
        assert_refused(r1, settings + ["--set", f"archive.source_cluster={OTHER_CLUSTER}"], scratch,
                       "no complete backup of cluster " + OTHER_CLUSTER, "another cluster")
        err = cli(r1, ["restore", "--datadir", scratch, "--backup", backup_id, "--cluster", OTHER_CLUSTER],
                  settings)
        err = err.stdout + err.stderr
        assert "not of " + OTHER_CLUSTER in err, err[-2000:]

        # --- every volume lost: mysql-0 restores the newest backup by itself ---
        assert r1.stop() == 0, r1.log()[-3000:]
        assert p0.stop() == 0, p0.log()[-3000:]
        shutil.rmtree(p0.datadir)
        shutil.rmtree(r1.datadir)
        p0.start(settings)
        r1.start(settings)
        p0.wait_log(r"event=restore_done id=" + backup_id, 300, "mysql-0 restoring the backup")
        p0.wait_http("/ready", 200, 240, "mysql-0 ready after its restore")
        assert "event=primary_recovered source=store" in p0.log(), p0.log()[-3000:]
        assert count_rows(p0) == 200, count_rows(p0)
        assert p0.sql("SELECT @@read_only")[0][0] == "0"
        write_rows(p0, 1000, 10)
        r1.wait_http("/replica", 200, 300, "mysql-1 cloned from the restored primary")
        wait_until(lambda: count_rows(r1) == 210, 60, "mysql-1 has the restored rows and the new ones")
        watcher.stop()
        for n in nodes:
            assert KEY not in n.log(), f"the encryption key in {n.name}'s log"


def test_s3_store_backup_restore():
    with Harness("archive-s3") as H, MotoServer(H.path("moto")) as moto, \
            FaultProxy((moto.host, moto.port),
                       sigv4=(moto.access_key_id, moto.secret_access_key, moto.region)) as proxy:
        moto.create_bucket("replboot-backups")
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        make_pki(H.path("pki"), ["mysql-0"])
        key_file = write_private(H.path("backup.key"), KEY + "\n")
        access = write_private(H.path("s3-access"), moto.access_key_id + "\n")
        secret = write_private(H.path("s3-secret"), moto.secret_access_key + "\n")
        wrong = write_private(H.path("s3-wrong"), "wrong" + moto.secret_access_key[5:] + "\n")
        s3 = ["--set", f"archive.endpoint={proxy.address}", "--set", f"archive.access_key_file={access}"]
        settings = store_settings(H, "s3://replboot-backups/cluster-a", key_file,
                                  s3 + ["--set", f"archive.secret_key_file={secret}"])
        p0 = Node(H, 0, dns)
        p0.start(settings)
        p0.wait_http("/ready", 200, 120, "mysql-0 (an empty store: initialized)")
        r = p0.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL) ENGINE=InnoDB")
        assert r.returncode == 0, r.stderr.decode()
        write_rows(p0, 0, 123)
        r = cli(p0, ["backup", "now", "--from", p0.addr], settings)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        backup_id = r.stdout.strip().splitlines()[-1]
        bad = store_settings(H, "s3://replboot-backups/cluster-a", key_file,
                             s3 + ["--set", f"archive.secret_key_file={wrong}"])
        r = cli(p0, ["backup", "list"], bad)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "403" in out, out[-2000:]
        assert moto.secret_access_key not in out and KEY not in out
        r = cli(p0, ["backup", "list", "--json"], settings)
        assert r.returncode == 0, r.stderr
        listed = json.loads(r.stdout)
        assert [b["id"] for b in listed] == [backup_id] and listed[0]["complete"], listed
        scratch = H.path("restored")
        r = cli(p0, ["restore", "--datadir", scratch, "--as-replica"], settings)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        assert os.path.isfile(os.path.join(scratch, "replboot-clone.json")), os.listdir(scratch)
        assert os.path.isdir(os.path.join(scratch, "app")), os.listdir(scratch)
        assert p0.stop() == 0


if __name__ == "__main__":
    run_tests(globals())
