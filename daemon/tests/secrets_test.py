"""Secrets that the option-file and SQL parsers would change, end to end (issue 15).

Two `replboot run` nodes on loopback (mysql-0 at H.addr(0), mysql-1 at H.addr(1), a dnsmasq at
H.addr(9):53 playing the headless Service, each replboot in a mount namespace whose
/etc/resolv.conf names it, as in daemon/tests/cluster_test.py). Every password (root, app,
replication, backup) and the backup secret hold '#', ', ", \\, inner and leading spaces and
non-ASCII text, read from *_file settings as an operator's Secret would be mounted:
- mysql-0 initializes with them (the root password reaches mysqld through the init file),
  mysql-1 clones it (mariabackup reads the backup password from replboot's option file) and
  replicates (CHANGE MASTER with the replication password);
- the same with sql_mode=NO_BACKSLASH_ESCAPES in mysql.options, which would make every
  backslash-escaped literal mean something else;
- secret leftovers of a killed run (a per-backup dir with backup.cnf, an init dir with
  init.sql) are gone after the next start, while such a dir that a live process still holds
  (another node sharing /tmp) stays.
"""
import fcntl
import os
import re
import secrets
import signal
import subprocess
import tempfile

from replboot_harness import (FAST_CLUSTER_SETTINGS, Dnsmasq, Harness, assert_no_secret_in_procs, files_containing, http_get,
                              processes_mentioning, replboot_bin, run_tests, wait_until, write_private)

HTTP_PORT = 8008
NAMES = ("root", "app", "repl", "backup", "secret")


def nasty(name):
    """A secret with what option files and SQL literals treat specially, unique per run."""
    return f" {name}#1'\"\\ x \\n \u00e9\u20ac\u65e5\u672c-{secrets.token_hex(6)}"


def cnf_value(value):
    """Client option-file quoting, as replboot writes it (base/option_file.h)."""
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
                         ("\b", "\\b")):
        value = value.replace(raw, escaped)
    return f'"{value}"'


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def clean_env():
    """No REPLBOOT_* from the caller's environment: every secret comes from a file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLBOOT_")}
    for k in ("REPLBOOT_BIN", "REPLBOOT_SOURCE_DIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


class Node:
    """One `replboot run` (mysql-i) with its own datadir, socket, config dir and tmpdir."""

    def __init__(self, h, i, dns, secret_values, extra_sets=()):
        self.h = h
        self.name = f"mysql-{i}"
        self.addr = h.addr(i)
        self.base = h.path(self.name)
        self.datadir = os.path.join(self.base, "data")
        self.run_dir = os.path.join(self.base, "run")
        self.socket = os.path.join(self.run_dir, "mysqld.sock")
        self.tmpdir = os.path.join(self.base, "tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        os.chmod(self.base, 0o755)
        os.chmod(self.tmpdir, 0o1777)  # mariadbd's own tmpdir, never shared between servers
        self.resolv = os.path.join(self.base, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {dns.addr}\noptions timeout:1 attempts:2\n")
        os.chmod(self.resolv, 0o644)
        self.secret_files = {}
        for name in NAMES:
            self.secret_files[name] = write_private(os.path.join(self.base, f"{name}.secret"),
                                                    secret_values[name] + "\n")
        self.root_cnf = write_private(
            os.path.join(self.base, "root.cnf"),
            f"[client]\nuser=root\npassword={cnf_value(secret_values['root'])}\nsocket={self.socket}\n")
        self.app_cnf = write_private(os.path.join(self.base, "app.cnf"),
                                     f"[client]\nuser=app\npassword={cnf_value(secret_values['app'])}\n")
        self.dns = dns
        self.extra_sets = list(extra_sets)
        self.proc = None
        self.starts = 0

    def argv(self):
        run = [replboot_bin(), "run", "--hostname", self.name, "--flavour", "mariadb", "--datadir", self.datadir,
               "--dns-server", f"{self.dns.addr}:{self.dns.port}",
               "--set", f"mysql.socket={self.socket}",
               "--set", f"mysql.config_dir={os.path.join(self.base, 'etc')}",
               "--set", f"mysql.bind_address={self.addr}",
               "--set", f"http.listen={self.addr}:{HTTP_PORT}",
               "--set", f"backup.listen={self.addr}:3307",
               "--set", f"mysql.options.tmpdir={self.tmpdir}",
               "--set", "mysql.options.innodb_buffer_pool_size=64M",
               "--set", "mysql.options.innodb_log_file_size=48M",
               *FAST_CLUSTER_SETTINGS,
               "--set", f"mysql.root_password_file={self.secret_files['root']}",
               "--set", f"cluster.app_password_file={self.secret_files['app']}",
               "--set", f"replication.password_file={self.secret_files['repl']}",
               "--set", f"backup.password_file={self.secret_files['backup']}",
               "--set", f"backup.secret_file={self.secret_files['secret']}"]
        for s in self.extra_sets:
            run += ["--set", s]
        # mariadbd resolves MASTER_HOST=mysql-0.mysql through the dnsmasq, as in a pod.
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', self.resolv] + run

    def start(self):
        self.starts += 1
        self.proc = self.h.spawn(self.argv(), log_name=f"{self.name}-{self.starts}", env=clean_env())
        return self.proc

    def log(self):
        return read(self.proc.log_path)

    def wait_log(self, pattern, timeout, what=None):
        def found():
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before {what or pattern}:\n"
                                     f"{self.log()[-4000:]}")
            return None
        try:
            return wait_until(found, timeout, f"{self.name}: {what or pattern}", interval=0.2)
        except AssertionError:
            print(f"=== {self.name} log tail\n{self.log()[-4000:]}")
            raise

    def wait_http(self, path, code, timeout, what=None):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            return http_get(f"http://{self.addr}:{HTTP_PORT}{path}", timeout=5)[0] == code
        try:
            wait_until(ok, timeout, f"{self.name} {path} -> {code}" + (f" ({what})" if what else ""), interval=0.2)
        except AssertionError:
            print(f"=== {self.name} log tail\n{self.log()[-4000:]}")
            raise

    def client(self, cnf, statement, tcp=False):
        argv = ["mariadb", f"--defaults-extra-file={cnf}", "-N", "-B"]
        if tcp:
            argv += [f"--host={self.addr}", "--port=3306", "--protocol=TCP"]
        return subprocess.run(argv, input=statement.encode(), capture_output=True)

    def sql(self, statement):
        """Rows of a statement run as root through the socket (the root password's option file)."""
        r = self.client(self.root_cnf, statement)
        assert r.returncode == 0, f"SQL as root on {self.name}: {statement!r}: {r.stderr.decode().strip()}"
        return [line.split("\t") for line in r.stdout.decode().splitlines()]

    def stop(self, timeout=90):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def cluster_with_nasty_secrets(test_name, extra_sets=()):
    """mysql-0 initializes, mysql-1 clones it and replicates, all with nasty secrets."""
    values = {name: nasty(name) for name in NAMES}
    with Harness(test_name) as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()  # mysql-1's name comes with it
        p0, r1 = (Node(H, i, dns, values, extra_sets) for i in range(2))

        p0.start()
        p0.wait_log(r"event=after_ready_done", 120, "mysql-0 initialized and ready")
        p0.wait_http("/primary", 200, 30)
        assert "action=initialize" in p0.log(), p0.log()[-2000:]
        # The root password set through the init file is the operator's, byte for byte.
        assert p0.sql("SELECT CURRENT_USER()") == [["root@localhost"]]
        for mode in extra_sets:
            if "sql_mode" in mode:
                assert "NO_BACKSLASH_ESCAPES" in p0.sql("SELECT @@GLOBAL.sql_mode")[0][0]
        # The app user logs in over TCP with its password and writes.
        r = p0.client(p0.app_cnf, "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.t (id INT PRIMARY KEY) ENGINE=InnoDB;"
                                  "USE app; INSERT INTO app.t SELECT seq FROM seq_1_to_100;", tcp=True)
        assert r.returncode == 0, r.stderr.decode()

        # mysql-1 clones with the backup password (mariabackup's option file) and replicates with
        # the replication password (CHANGE MASTER).
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        r1.start()
        r1.wait_log(r"event=bootstrap_decision action=clone", 60)
        r1.wait_log(r"event=clone_done", 180, "mysql-1's clone")
        r1.wait_http("/replica", 200, 90, "replicating after the clone")
        r = p0.client(p0.app_cnf, "INSERT INTO app.t VALUES (101)", tcp=True)
        assert r.returncode == 0, r.stderr.decode()
        wait_until(lambda: r1.sql("SELECT COUNT(*) FROM app.t") == [["101"]], 30, "the row replicated to mysql-1")
        # The cloned datadir carries mysql-0's users: root and app log in on mysql-1 too.
        r = r1.client(r1.app_cnf, "SELECT COUNT(*) FROM app.t", tcp=True)
        assert r.returncode == 0 and r.stdout.decode().strip() == "101", r.stderr.decode()

        # No secret on a command line, in a child's environment, in a log; no option or init
        # file left behind by a finished backup or start.
        for name in NAMES:
            assert_no_secret_in_procs(values[name])
            for node in (p0, r1):
                assert values[name] not in node.log(), f"{name} in {node.name}'s log"
        for node in (p0, r1):
            left = [e for e in os.listdir(node.run_dir) if e.startswith("replboot-init.")]
            assert not left, left

        assert p0.stop() == 0, p0.log()[-2000:]
        assert r1.stop() == 0, r1.log()[-2000:]


def test_nasty_secrets_initialize_clone_and_replicate():
    cluster_with_nasty_secrets("secrets")


def test_nasty_secrets_with_no_backslash_escapes():
    cluster_with_nasty_secrets(
        "secrets-nbe", ["mysql.options.sql_mode=NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES"])


def test_stale_secret_files_of_a_killed_run_are_swept_at_start():
    values = {name: nasty(name) for name in NAMES}
    with Harness("secrets-sweep") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()
        p0 = Node(H, 0, dns, values)
        os.makedirs(p0.run_dir, exist_ok=True)
        # What a replboot killed mid-way leaves: its init dir (root password) next to the socket
        # and a per-backup dir (backup password) in the backup server's work dir, /tmp.
        stale_init = os.path.join(p0.run_dir, "replboot-init.k1ll3d")
        os.makedirs(stale_init, mode=0o700)
        write_private(os.path.join(stale_init, "init.sql"), "ALTER USER 'root'@'localhost' IDENTIFIED BY 'old';\n")
        stale_backup = tempfile.mkdtemp(prefix="replboot-backup-", dir="/tmp")
        write_private(os.path.join(stale_backup, "backup.cnf"), "[client]\npassword=\"old\"\n")
        os.makedirs(os.path.join(stale_backup, "target", "sub"))
        # Another node's backup in progress in the same /tmp: it holds its dir's lock.
        live_backup = tempfile.mkdtemp(prefix="replboot-backup-", dir="/tmp")
        write_private(os.path.join(live_backup, "backup.cnf"), "[client]\npassword=\"live\"\n")
        live_fd = os.open(live_backup, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(live_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            p0.start()
            p0.wait_log(r"event=after_ready_done", 120, "mysql-0 ready")
            assert not os.path.exists(stale_init), os.listdir(p0.run_dir)
            assert re.search(r"event=stale_init_files_removed .*count=1", p0.log()), p0.log()[-3000:]
            # Removed by this node's backup server, or by any other replboot's starting at the
            # same time (tests run in parallel, and every node sweeps the /tmp they share).
            wait_until(lambda: not os.path.exists(stale_backup), 10, "the stale backup dir removed")
            assert read(os.path.join(live_backup, "backup.cnf")) == "[client]\npassword=\"live\"\n"
            # The root password of this start is in place and its own init dir is gone too.
            assert p0.sql("SELECT 1") == [["1"]]
            assert not [e for e in os.listdir(p0.run_dir) if e.startswith("replboot-init.")]
            # Nothing under the test's dir or /tmp holds a secret of this run in a file.
            # (The datadir is mysqld's: it keeps password hashes, not replboot's files.)
            ours = tuple(p0.secret_files.values()) + (p0.root_cnf, p0.app_cnf)
            for name in NAMES:
                found = [p for p in files_containing(p0.base, values[name].encode(), skip=ours)
                         if not p.startswith(p0.datadir + os.sep)]
                assert not found, (name, found)
            assert p0.stop() == 0, p0.log()[-2000:]
        finally:
            os.close(live_fd)
            subprocess.run(["rm", "-rf", live_backup, stale_backup], check=False)


def backup_dirs():
    return {e for e in os.listdir("/tmp") if e.startswith("replboot-backup-")}


def test_a_donor_killed_mid_backup_leaves_no_secret_after_its_next_start():
    """SIGKILL of a donor's replboot (and its mysqld) while mariabackup streams: its
    /tmp/replboot-backup-*/backup.cnf (the backup password) stays, and the next start removes it."""
    values = {name: nasty(name) for name in NAMES}
    with Harness("secrets-kill") as H:
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0)).start()  # mysql-1's name comes with it
        # A slow donor (64 KiB/s), so the backup is still running when it is killed.
        p0 = Node(H, 0, dns, values, ["backup.bandwidth_limit=65536"])
        r1 = Node(H, 1, dns, values)
        p0.start()
        p0.wait_log(r"event=after_ready_done", 120, "mysql-0 ready")
        before = backup_dirs()
        dns.add_host("mysql-1.mysql", H.addr(1)).reload()
        r1.start()
        p0.wait_log(r"event=backup_started", 60, "mysql-0 serving mysql-1's clone")
        ours = wait_until(lambda: [d for d in backup_dirs() - before
                                   if values["backup"][-12:] in read(os.path.join("/tmp", d, "backup.cnf"))],
                          10, "the backup's option file")
        assert len(ours) == 1, ours
        stale = os.path.join("/tmp", ours[0])
        # replboot and the mysqld it started share its process group; mariabackup has its own.
        tool_pids = processes_mentioning(stale)
        os.killpg(p0.proc.pid, signal.SIGKILL)
        p0.proc.wait(timeout=30)
        for pid in tool_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.killpg(r1.proc.pid, signal.SIGKILL)
        r1.proc.wait(timeout=30)
        wait_until(lambda: not processes_mentioning(p0.base), 30, "mysql-0's processes gone")
        assert os.path.exists(os.path.join(stale, "backup.cnf")), "the killed backup left nothing to sweep"

        p0.start()
        p0.wait_log(r"event=backup_server_listening", 120, "mysql-0's backup server after the restart")
        assert not os.path.exists(stale), os.listdir(stale)
        assert re.search(r"event=stale_backup_dirs_removed .*count=[1-9]", p0.log()), p0.log()[-3000:]
        # The backup server listens from the first second (issue 21), before mysqld has finished
        # its crash recovery: stop a node that is up, not one whose mysqld is still starting.
        p0.wait_log(r"event=after_ready_done", 120, "mysql-0 ready after the restart")
        assert p0.stop() == 0, p0.log()[-2000:]


if __name__ == "__main__":
    run_tests(globals())
