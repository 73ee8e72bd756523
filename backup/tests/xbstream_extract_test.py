#!/usr/bin/env python3
"""Integration: `replboot xbstream extract` on real mariabackup streams.

A real mariadbd (with InnoDB, MyISAM, Aria and CSV tables, a few MB) is backed up by
a real `mariabackup --backup --stream=xbstream` (serial and --parallel=4) as a backup
user whose password lives only in a 0600 --defaults-extra-file. Each stream is
extracted by `mbstream -x` and by `replboot xbstream extract`; the two trees must be
byte-for-byte identical, and `mariabackup --prepare` must succeed on ours. Damaged
copies of the real stream must fail with exit 1 and a message naming the problem.
"""
import filecmp
import os
import subprocess

from replboot_harness import Harness, MariaDB, replboot_bin, run_tests, write_private

BACKUP_PASSWORD = "bk-" + "s3cret" * 3


def load_data(db):
    db.sql("CREATE DATABASE shop; CREATE DATABASE logs; CREATE DATABASE `weird-name`;")
    db.sql("CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64), "
           "note TEXT, amount DECIMAL(10,2), KEY(customer)) ENGINE=InnoDB;"
           "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(200)) ENGINE=InnoDB;"
           "CREATE TABLE logs.events (id INT, msg VARCHAR(255)) ENGINE=MyISAM;"
           "CREATE TABLE logs.aria (id INT, msg VARCHAR(255)) ENGINE=Aria;"
           "CREATE TABLE logs.csv (id INT NOT NULL, msg VARCHAR(255) NOT NULL) ENGINE=CSV;"
           "CREATE TABLE `weird-name`.`t@1` (id INT) ENGINE=InnoDB;")
    # A few MB, made server-side with the Sequence engine (seq_1_to_N tables).
    db.sql("USE shop; INSERT INTO shop.orders (customer, note, amount) "
           "SELECT CONCAT('cust', seq % 977), REPEAT(MD5(seq), 3), seq / 7 FROM seq_1_to_60000;"
           "INSERT INTO shop.items SELECT seq, SHA2(seq, 256) FROM seq_1_to_20000;"
           "INSERT INTO logs.events SELECT seq, REPEAT('e', seq % 200) FROM seq_1_to_20000;"
           "INSERT INTO logs.aria SELECT * FROM logs.events;"
           "INSERT INTO logs.csv SELECT id, msg FROM logs.events LIMIT 500;"
           "INSERT INTO `weird-name`.`t@1` VALUES (1), (2);")
    db.sql("CREATE USER 'bk'@'localhost' IDENTIFIED BY '%s';"
           "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'bk'@'localhost';"
           % BACKUP_PASSWORD)


def take_backup(h, db, name, parallel):
    cnf = write_private(h.path(f"{name}.cnf"),
                        f"[client]\nuser=bk\npassword={BACKUP_PASSWORD}\nsocket={db.socket}\n")
    assert (os.stat(cnf).st_mode & 0o777) == 0o600
    stream = h.path(f"{name}.xb")
    tmp = h.path(f"{name}-tmp")
    os.makedirs(tmp)
    with open(stream, "wb") as out:
        r = subprocess.run(["mariabackup", f"--defaults-extra-file={cnf}", "--backup",
                            "--stream=xbstream", f"--target-dir={tmp}", f"--parallel={parallel}"],
                           stdout=out, stderr=subprocess.PIPE)
    err = r.stderr.decode()
    assert r.returncode == 0 and "completed OK!" in err, f"mariabackup failed: {err[-3000:]}"
    assert BACKUP_PASSWORD not in err
    return stream


def extract_both(h, stream, name, stdin=False):
    ours = h.path(f"{name}-replboot")
    ref = h.path(f"{name}-mbstream")
    os.makedirs(ours)
    os.makedirs(ref)
    with open(stream, "rb") as f:
        subprocess.run(["mbstream", "-x", "-C", ref], stdin=f, check=True)
    if stdin:
        with open(stream, "rb") as f:
            r = subprocess.run([replboot_bin(), "xbstream", "extract", "-C", ours, "-"], stdin=f,
                               capture_output=True)
    else:
        r = subprocess.run([replboot_bin(), "xbstream", "extract", "-C", ours, stream],
                           capture_output=True)
    assert r.returncode == 0, f"replboot xbstream extract failed: {r.stderr.decode()}"
    return ours, ref


def assert_same_tree(a, b):
    files_a, files_b = {}, {}
    for root, files in ((a, files_a), (b, files_b)):
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            files[rel + "/"] = None
            for f in filenames:
                files[os.path.normpath(os.path.join(rel, f))] = os.path.join(dirpath, f)
    assert sorted(files_a) == sorted(files_b), \
        f"different file sets: only ours {sorted(set(files_a) - set(files_b))}, " \
        f"only mbstream {sorted(set(files_b) - set(files_a))}"
    n = 0
    for rel, path in files_a.items():
        if path is None:
            continue
        assert filecmp.cmp(path, files_b[rel], shallow=False), f"{rel} differs"
        n += 1
    assert n > 20, f"suspiciously few files: {n}"
    for must in ("ibdata1", "xtrabackup_checkpoints", "backup-my.cnf", "logs/events.MYD",
                 "logs/aria.MAD", "logs/csv.CSV", "weird@002dname/t@00401.frm"):
        assert must in files_a, f"{must} missing from the extracted tree"
    # Tables created after the backup's checkpoint arrive as .new (prepare renames them).
    assert "shop/orders.ibd" in files_a or "shop/orders.new" in files_a
    return n


def prepare(h, target):
    r = subprocess.run(["mariabackup", "--prepare", f"--target-dir={target}"], capture_output=True)
    err = r.stderr.decode()
    assert r.returncode == 0 and "completed OK!" in err, f"prepare failed: {err[-3000:]}"
    with open(os.path.join(target, "xtrabackup_checkpoints")) as f:
        assert "backup_type = log-applied" in f.read()
    assert os.path.getsize(os.path.join(target, "shop", "orders.ibd")) > 1 << 20


def start_server(h):
    db = MariaDB(h, h.addr(0), extra_args=["--log-bin=mysql-bin", "--server-id=7"])
    db.install().start()
    load_data(db)
    return db


def test_serial_and_parallel_streams_match_mbstream_and_prepare():
    with Harness("xbextract") as h:
        db = start_server(h)
        for parallel in (1, 4):
            stream = take_backup(h, db, f"p{parallel}", parallel)
            assert os.path.getsize(stream) > 4 << 20
            ours, ref = extract_both(h, stream, f"p{parallel}", stdin=(parallel == 4))
            n = assert_same_tree(ours, ref)
            print(f"parallel={parallel}: {n} files identical, stream {os.path.getsize(stream)} bytes")
            prepare(h, ours)


def test_list_and_damaged_streams():
    with Harness("xblist") as h:
        db = start_server(h)
        stream = take_backup(h, db, "s", 2)
        ours, _ = extract_both(h, stream, "s")
        r = subprocess.run([replboot_bin(), "xbstream", "list", stream], capture_output=True)
        assert r.returncode == 0, r.stderr.decode()
        listed = {}
        for line in r.stdout.decode().splitlines():
            path, size, chunks = line.split("\t")
            listed[path] = (int(size), int(chunks))
        for path, (size, chunks) in listed.items():
            assert os.path.getsize(os.path.join(ours, path)) == size, path
            assert chunks >= 1
        assert listed["ibdata1"][1] >= 2  # at least one payload chunk and the 'E'

        data = open(stream, "rb").read()
        # One payload byte flipped in the middle of the stream.
        flipped = bytearray(data)
        pos = len(data) // 2
        flipped[pos] ^= 0x01
        cases = {
            "flip": (bytes(flipped), "checksum mismatch"),
            "cut": (data[:len(data) // 3], "stream truncated"),
            "empty": (b"", "empty"),
        }
        for name, (content, want) in cases.items():
            bad = h.path(f"bad-{name}.xb")
            with open(bad, "wb") as f:
                f.write(content)
            target = h.path(f"bad-{name}")
            os.makedirs(target)
            r = subprocess.run([replboot_bin(), "xbstream", "extract", "-C", target, bad],
                               capture_output=True)
            err = r.stderr.decode()
            assert r.returncode == 1, f"{name}: exit {r.returncode}, stderr {err}"
            assert want in err and ("stream offset" in err or name == "empty"), f"{name}: {err}"
            print(f"{name}: {err.strip()}")
        # Flavour mysql on a MariaDB stream still reads P/E, and mariabackup wrote no S/R/D.
        target = h.path("as-mysql")
        os.makedirs(target)
        r = subprocess.run([replboot_bin(), "xbstream", "extract", "--flavour", "mysql", "-C",
                            target, stream], capture_output=True)
        assert r.returncode == 0, r.stderr.decode()


if __name__ == "__main__":
    run_tests(globals())
