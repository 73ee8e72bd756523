"""Point-in-time restore (issue 24), end to end: real mariadbd, real mariabackup, moto with
SigV4 checked (behind tests/harness/fault_proxy.py), segments cut from the real server's binlog
files with `replboot binlog archive-file`.

test_undo_a_drop_table:
  mysql-0 (the primary) gets app.t rows 1..50 in five transactions; a backup of it goes to the
  store; rows 51..100 in ten transactions; T is a second before the DROP, G the GTID position
  just before it; DROP TABLE app.t; 20 rows into app.u. Each phase ends with FLUSH BINARY LOGS,
  so the archive holds several segments.
  - restore --time T, and --gtid G: a server started on each restored datadir has exactly rows
    1..100 in app.t and nothing in app.u.
  - a target before the backup and one past the last archived commit: refused, naming the
    restorable range; nothing in the datadir.
  - a segment in the middle with one byte changed, then missing: refused naming it / the gap.
  - a restore after a restore: mysql-0's datadir replaced by the restore to T (a new history,
    its replboot.history row written at the primary's first start), rows 1000..1009 written and
    archived in the new history; a plain restore (everything archived) then has rows 1..100 and
    1000..1009 and none of the abandoned history's app.u rows, though their GTIDs' sequence
    numbers are the same as the new history's.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("REPLBOOT_SOURCE_DIR", "../.."), "daemon", "tests"))

from cluster_test import SECRETS, Node
from fault_proxy import FaultProxy
from moto_harness import MotoServer
from replboot_harness import Dnsmasq, Harness, MariaDB, make_pki, run_tests, write_private, node_env

KEY = "k" + os.urandom(24).hex()
BUCKET = "replboot-pitr"
PREFIX = "c"


def cli(node, args, settings, timeout=300):
    """`replboot <args>` with node's own settings (its argv with `run` replaced)."""
    argv = node.argv(settings)
    i = argv.index("run")
    argv = argv[:i] + list(args) + argv[i + 1:]
    if "--datadir" in args:  # the node's own goes: one datadir per command
        j = argv.index("--datadir", i + len(args))
        del argv[j:j + 2]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=node_env(SECRETS))


def ok(r, what):
    assert r.returncode == 0, f"{what}: exit {r.returncode}\n{(r.stdout + r.stderr)[-4000:]}"
    return r


def write(node, sql):
    r = node.app_sql(sql)
    assert r.returncode == 0, r.stderr.decode()


def rows_of(h, datadir, name):
    """app.t ids and the app.u count of a restored datadir, read by a server started on it."""
    server = MariaDB(h, h.addr(5), name=name, datadir=datadir, root_password=SECRETS["root"])
    server.start(set_root_password=False)
    try:
        ids = [int(r[0]) for r in server.sql("SELECT id FROM app.t ORDER BY id")]
        u = int(server.value("SELECT COUNT(*) FROM app.u"))
        return ids, u
    finally:
        server.stop()


def refused(node, settings, datadir, args, pattern, what):
    r = cli(node, ["restore", "--datadir", datadir, *args], settings)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"{what}: the restore succeeded\n{out[-3000:]}"
    assert pattern in out, f"{what}: {pattern!r} not in\n{out[-3000:]}"
    assert not os.path.exists(datadir) or os.listdir(datadir) == [], (what, os.listdir(datadir))
    assert not os.path.exists(datadir + ".replboot-staging"), what
    assert not os.path.exists(datadir + ".replboot-pitr"), what
    return out


def keys_of(out):
    """The segment keys archive-file printed (its log lines go to stdout too)."""
    return [line for line in out.splitlines() if line.startswith("binlogs/")]


def restored_line(out):
    return next(line for line in out.splitlines() if line.startswith("restored "))


def seq(gtid):
    return int(gtid.split("-")[-1]) if gtid else 0


def binlog_files(node):
    with open(os.path.join(node.datadir, "mysql-bin.index")) as f:
        names = [line.strip() for line in f if line.strip()]
    return [os.path.join(node.datadir, os.path.basename(n)) for n in names]


def test_undo_a_drop_table():
    with Harness("pitr") as H, MotoServer(H.path("moto")) as moto, \
            FaultProxy((moto.host, moto.port),
                       sigv4=(moto.access_key_id, moto.secret_access_key, moto.region)) as proxy:
        started = time.monotonic()
        moto.create_bucket(BUCKET)
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        make_pki(H.path("pki"), ["mysql-0"])
        key_file = write_private(H.path("backup.key"), KEY + "\n")
        access = write_private(H.path("s3-access"), moto.access_key_id + "\n")
        secret = write_private(H.path("s3-secret"), moto.secret_access_key + "\n")
        settings = ["--set", f"archive.store=s3://{BUCKET}/{PREFIX}", "--set", f"archive.key_file={key_file}",
                    "--set", f"archive.endpoint={proxy.address}", "--set", f"archive.access_key_file={access}",
                    "--set", f"archive.secret_key_file={secret}"]
        p0 = Node(H, 0, dns)
        p0.start(settings)
        p0.wait_http("/ready", 200, 120, "mysql-0 initialized")
        write(p0, "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL) ENGINE=InnoDB;"
                  "CREATE TABLE app.u (id INT PRIMARY KEY) ENGINE=InnoDB")
        for k in range(5):
            write(p0, "INSERT INTO app.t SELECT seq, CONCAT('row-', seq) FROM app.seq_%d_to_%d"
                  % (k * 10 + 1, k * 10 + 10))
        backup_id = ok(cli(p0, ["backup", "now", "--from", p0.addr], settings), "backup").stdout.split()[-1]
        p0.sql("FLUSH BINARY LOGS")
        for i in range(51, 101):
            if i % 5 == 0:
                write(p0, f"INSERT INTO app.t VALUES ({i - 4}, 'r'), ({i - 3}, 'r'), ({i - 2}, 'r'), "
                          f"({i - 1}, 'r'), ({i}, 'r')")
        p0.sql("FLUSH BINARY LOGS")
        gtid_before_drop = p0.sql("SELECT @@gtid_binlog_pos")[0][0]
        time.sleep(2.1)
        t_before_drop = int(time.time()) - 1  # the writes above committed before it
        target_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_before_drop))
        write(p0, "DROP TABLE app.t")
        for i in range(1, 21):
            write(p0, f"INSERT INTO app.u VALUES ({i})")
        p0.sql("FLUSH BINARY LOGS")

        # The server's binlog files into the archive. Twice: the second run goes on after the
        # first (only the heartbeats written meanwhile), nothing archived twice.
        files = binlog_files(p0)
        keys = keys_of(ok(cli(p0, ["binlog", "archive-file", *files], settings), "archive-file").stdout)
        assert len(keys) >= 3, keys
        again = keys_of(ok(cli(p0, ["binlog", "archive-file", *binlog_files(p0)], settings),
                           "archive-file again").stdout)
        chain = json.loads(ok(cli(p0, ["binlog", "list", "--json"], settings), "binlog list").stdout)
        assert [s["key"] for s in chain["segments"]] == keys + again, (keys, again, chain)
        assert chain["gaps"] == [] and len(chain["ranges"]) == 1, chain
        for a, b in zip(chain["segments"], chain["segments"][1:]):
            assert a["end"] == b["start"], (a, b)
        assert chain["ranges"][0]["from_backup"] == backup_id, chain
        listed = json.loads(ok(cli(p0, ["backup", "list", "--json"], settings), "backup list").stdout)
        assert listed[0]["restorable_to_gtid"] == chain["ranges"][0]["to_gtid"], listed
        table = ok(cli(p0, ["backup", "list"], settings), "backup list").stdout
        assert "restorable" in table and chain["ranges"][0]["to_gtid"] in table, table

        # --- a second before the DROP, by time and by GTID: exactly the rows written before ---
        d1 = H.path("restore-time")
        out = restored_line(ok(cli(p0, ["restore", "--datadir", d1, "--time", target_time, "--as-replica"],
                                   settings), "restore --time").stdout)
        assert "backup " + backup_id in out, out
        assert rows_of(H, d1, "check-time") == (list(range(1, 101)), 0)
        d2 = H.path("restore-gtid")
        out = restored_line(ok(cli(p0, ["restore", "--datadir", d2, "--gtid", gtid_before_drop, "--as-replica"],
                                   settings), "restore --gtid").stdout)
        assert gtid_before_drop in out, out
        assert rows_of(H, d2, "check-gtid") == (list(range(1, 101)), 0)

        # --- outside the range: refused, naming it ---
        d = H.path("refused")
        early = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_before_drop - 3600))
        out = refused(p0, settings, d, ["--time", early], "before the oldest backup", "an early target")
        assert "restorable " in out and chain["ranges"][0]["to_gtid"] in out, out[-2000:]
        late = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) + 3600))
        refused(p0, settings, d, ["--time", late], "past the end of the archive", "a late target")
        refused(p0, settings, d, ["--time", "2026-13-01T00:00:00Z"], "RFC 3339", "a bad time")

        # --- a restore after a restore: the new history, never the abandoned one ---
        assert p0.stop() == 0, p0.log()[-3000:]
        shutil.move(p0.datadir, H.path("abandoned-data"))
        out = restored_line(ok(cli(p0, ["restore", "--datadir", p0.datadir, "--time", target_time], settings),
                               "restore as the primary").stdout)
        new_history = out.split("new history ")[1].split(";")[0].split()[0]
        p0.start(settings)
        p0.wait_http("/ready", 200, 120, "mysql-0 ready on the restored datadir")
        assert p0.sql("SELECT id FROM replboot.history") == [[new_history]]
        assert int(p0.sql("SELECT COUNT(*) FROM app.t")[0][0]) == 100
        for i in range(1000, 1010):
            write(p0, f"INSERT INTO app.t VALUES ({i}, 'new')")
        p0.sql("FLUSH BINARY LOGS")
        ok(cli(p0, ["binlog", "archive-file", *binlog_files(p0)], settings), "archive-file, new history")
        chain = json.loads(ok(cli(p0, ["binlog", "list", "--json"], settings), "binlog list").stdout)
        assert chain["history"] == new_history and chain["gaps"] == [], chain
        d3 = H.path("restore-latest")
        ok(cli(p0, ["restore", "--datadir", d3, "--as-replica"], settings), "restore latest")
        assert rows_of(H, d3, "check-latest") == (list(range(1, 101)) + list(range(1000, 1010)), 0)
        # --- a segment in the middle changed by one byte, then missing ---
        # The segment after the backup's position: rows 51..100 (the DROP's file follows it).
        after = [s for s in chain["segments"] if seq(s["start"]) >= seq(listed[0]["gtid_position"])]
        assert len(after) >= 2, (listed, chain)
        middle = after[0]["key"]
        path = f"/{BUCKET}/{PREFIX}/{middle}"
        original = moto.request("GET", path).body
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 1
        assert moto.request("PUT", path, body=bytes(changed)).status == 200
        refused(p0, settings, d, ["--time", target_time], "binlog segment " + middle, "a changed segment")
        assert moto.request("DELETE", path).status in (200, 204)
        refused(p0, settings, d, ["--time", target_time], "a gap in history", "a missing segment")

        print(f"pitr test: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    run_tests(globals())
