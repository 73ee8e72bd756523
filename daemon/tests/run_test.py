"""`replboot run` end to end: a real mariadbd initialized, served and stopped as PID 1
would, and stand-in server binaries for the cases a real mysqld does not produce on
demand (ignoring SIGTERM, dying on its own, never answering).

The stand-ins are given as `--set mysql.mysqld=<script>` with an already populated
datadir, so replboot uses the datadir as is and runs the stand-in as the server; it
then waits for a connection that never comes, which is where a SIGTERM finds it.
"""
import os
import pwd
import re
import signal
import subprocess
import time

from replboot_harness import (Harness, LeakWatcher, Node, assert_clean_descendants, assert_no_secret_in_procs,
                              descendants, files_containing, leaks_in, proc_comm, proc_state, processes_mentioning,
                              random_secrets, read_log, resolv_conf_launcher, run_tests, wait_log, wait_until,
                              write_private)


def assert_nothing_outlives(H, p):
    """After replboot `p` exited: no mysqld it started and no process naming the test's dir is
    left. (Its descendants cannot be asked for any more: orphans belong to another parent.)"""
    for pid in map(int, re.findall(r"event=mysqld_started pid=(\d+)", read_log(p))):
        assert proc_comm(pid) is None, f"mysqld {pid} outlived replboot"
    left = processes_mentioning(H.dir)
    assert not left, f"processes still mention {H.dir}: {left}"


def node(H, hostname="mysql-0", values=None, launcher=None):
    """The test's one node, its files directly in the test's dir (data, run, etc, tmp)."""
    return Node(H, 0, base=H.dir, hostname=hostname, values=values, launcher=launcher)


def standin(mysqld, *extra):
    """replboot arguments running `mysqld` (a stand-in script) as the server."""
    return ["--set", f"mysql.mysqld={mysqld}", *extra]


def sql_tcp(H, cnf, statement, check=True):
    r = subprocess.run(["mariadb", f"--defaults-extra-file={cnf}", "-N", "-B", f"--host={H.addr(0)}",
                        "--port=3306", "--protocol=TCP"], input=statement.encode(), capture_output=True)
    if check and r.returncode != 0:
        raise AssertionError(f"query failed: {statement!r}: {r.stderr.decode().strip()}")
    return r


def test_primary_initializes_serves_and_stops_cleanly():
    with Harness("daemon-run") as H:
        values = random_secrets()
        password = values["root"]
        n = node(H, values=values)
        p = n.start()
        wait_log(p, r"event=root_password_set", 120, "mysqld to be initialized and ready")
        log = read_log(p)
        assert "action=initialize" in log, log[-2000:]
        mysqld_pid = int(re.search(r"event=mysqld_started pid=(\d+)", log).group(1))

        # A query with the root password, over TCP, from a 0600 option file.
        cnf = write_private(H.path("client.cnf"), f"[client]\nuser=root\npassword={password}\n")
        rows = sql_tcp(H, cnf, "SELECT CURRENT_USER(); SELECT @@server_id, @@read_only;").stdout.decode().split()
        assert rows == ["root@%", "100", "0"], rows
        # install-db's password-less root@127.0.0.1 and friends are gone.
        nopw = write_private(H.path("nopw.cnf"), "[client]\nuser=root\npassword=\n")
        assert sql_tcp(H, nopw, "SELECT 1", check=False).returncode != 0, "root without password accepted"

        # The secret is on no command line, in no child's environment, in no file.
        assert_no_secret_in_procs(password, also_environ=False)
        assert_clean_descendants(p.pid, values, must_include=mysqld_pid)
        assert not [n for n in os.listdir(H.path("run")) if n.startswith("replboot-init")], \
            os.listdir(H.path("run"))
        assert not os.path.exists(H.path("data", "replboot-root-password.pending"))

        assert n.stop() == 0, read_log(p)[-3000:]
        log = read_log(p)
        assert "Shutdown complete" in log, log[-3000:]
        assert re.search(r"event=mysqld_exited status=\"exit code 0\" requested=true killed=false", log), log[-2000:]
        assert proc_state(mysqld_pid) is None, "mysqld still running after replboot exited"
        assert password not in log, "root password in the log"
        leaked = files_containing(H.dir, password.encode(), skip={cnf})
        assert not leaked, f"root password left in {leaked}"
        # The accounts the primary creates after the first start: no clear password in the
        # binlog (replicas and REPLICATION SLAVE holders read it) or in the log.
        for name, secret in values.items():
            if name == "root":
                continue
            assert secret not in log, f"{name} secret in the log"
            leaked = files_containing(H.dir, secret.encode(), skip={cnf})
            assert not leaked, f"{name} secret left in {leaked}"

        # Second start on the same datadir: used as is, not re-initialized.
        p2 = n.start()
        wait_log(p2, r"event=mysqld_ready", 90, "second start ready")
        log2 = read_log(p2)
        assert "action=use_as_is" in log2 and "initialize_datadir" not in log2, log2[-2000:]
        assert sql_tcp(H, cnf, "SELECT 1").stdout.decode().strip() == "1"
        assert n.stop() == 0, read_log(p2)[-3000:]
        assert "Shutdown complete" in read_log(p2)
        assert password not in read_log(p2)
        assert_nothing_outlives(H, p2)

        # Killed outside a container (no PID namespace): mysqld, started as its own user so
        # that it keeps its parent-death signal, shuts down by itself, and the next start
        # finds the datadir free.
        p3 = n.start()
        wait_log(p3, r"event=mysqld_ready", 90, "third start ready")
        mysqld_pid = int(re.search(r"event=mysqld_started pid=(\d+)", read_log(p3)).group(1))
        with open(f"/proc/{mysqld_pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        if os.geteuid() == 0:
            mysql_uid = pwd.getpwnam("mysql").pw_uid
            assert uids == [str(mysql_uid)] * 4, f"mysqld runs with uids {uids}, not mysql's"
        p3.kill()
        p3.wait()
        wait_until(lambda: proc_state(mysqld_pid) in (None, "Z"), 60, "mysqld to end after replboot was SIGKILLed")
        p4 = n.start()
        wait_log(p4, r"event=mysqld_ready", 90, "a start after the kill ready")
        assert n.stop() == 0, read_log(p4)[-3000:]
        assert_nothing_outlives(H, p4)


def test_stop_during_initialization_leaves_an_empty_datadir():
    with Harness("daemon-initstop") as H:
        n = node(H, values=random_secrets())
        p = n.start()
        wait_log(p, r"event=step_started step=initialize_datadir", 30)
        time.sleep(0.3)  # install-db is now running mariadbd --bootstrap
        code = n.stop(timeout=60)
        log = read_log(p)
        assert code == 128 + signal.SIGTERM, (code, log[-2000:])
        assert "event=startup_cancelled" in log, log[-2000:]
        # The half-made datadir was cleared so the next start initializes again,
        # and nothing install-db started survives.
        assert os.listdir(H.path("data")) == [], os.listdir(H.path("data"))
        assert not processes_mentioning(H.path("data")), processes_mentioning(H.path("data"))


def test_first_start_interrupted_before_the_password_is_finished_later():
    with Harness("daemon-pending") as H:
        # A datadir that install-db made but whose first start never set the root
        # password (the marker says so): the next run must set it, not use it as is.
        os.makedirs(H.path("data"))
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={H.path('data')}",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        with open(H.path("data", "replboot-root-password.pending"), "w") as f:
            f.write("root password not set yet\n")
        values = random_secrets()
        password = values["root"]
        n = node(H, values=values)
        p = n.start()
        wait_log(p, r"event=root_password_set", 90)
        assert "action=finish_initialize" in read_log(p)
        cnf = write_private(H.path("client.cnf"), f"[client]\nuser=root\npassword={password}\n")
        assert sql_tcp(H, cnf, "SELECT CURRENT_USER()").stdout.decode().strip() == "root@%"
        assert not os.path.exists(H.path("data", "replboot-root-password.pending"))
        assert n.stop() == 0, read_log(p)[-2000:]


STANDIN_IGNORES_TERM = """#!/usr/bin/env python3
# Stand-in server binary: ignores SIGTERM and leaves an orphan behind, as a
# misbehaving mysqld plugin or script might.
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid_file = {pid_file!r}
middle = os.fork()
if middle == 0:
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(1.0)   # outlives its parent, then exits: a zombie unless reaped
        os._exit(0)
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(grandchild))
    os.rename(pid_file + ".tmp", pid_file)
    os._exit(0)           # the grandchild is re-parented to replboot (subreaper)
os.waitpid(middle, 0)
while True:
    time.sleep(1)
"""


def write_standin(H, name, body):
    path = H.path(name)
    with open(path, "w") as f:
        f.write(body)
    os.chmod(path, 0o755)
    return path


def populated_datadir(H):
    # Non-empty: used as is, so the stand-in is run as the server without install-db.
    os.makedirs(H.path("data"), exist_ok=True)
    with open(H.path("data", "ibdata1"), "w") as f:
        f.write("stand-in\n")


def test_child_ignoring_sigterm_is_killed_after_grace_and_orphan_is_reaped():
    with Harness("daemon-standin") as H:
        populated_datadir(H)
        # The stand-in runs as mysqld's user (replboot starts the server as that user).
        out_dir = H.path("standin-out")
        os.makedirs(out_dir)
        if os.geteuid() == 0:
            mysql = pwd.getpwnam("mysql")
            os.chown(out_dir, mysql.pw_uid, mysql.pw_gid)
        pid_file = os.path.join(out_dir, "orphan.pid")
        script = write_standin(H, "standin-ignore-term.py", STANDIN_IGNORES_TERM.format(pid_file=pid_file))
        n = node(H)
        p = n.start(standin(script, "--set", "mysql.shutdown_grace=2", "--set", "mysql.startup_timeout=120"))
        wait_log(p, r"event=mysqld_started pid=\d+", 30)
        standin_pid = int(re.search(r"event=mysqld_started pid=(\d+)", read_log(p)).group(1))
        orphan = int(wait_until(lambda: os.path.exists(pid_file) and open(pid_file).read(), 10, "orphan pid"))
        wait_log(p, rf"event=reaped_orphan pid={orphan} ", 10, "the orphan to be reaped")
        # Reaped means gone, not a zombie; and replboot has no zombie child at all.
        assert proc_state(orphan) is None, f"orphan {orphan} state {proc_state(orphan)}"
        zombies = [pid for pid in descendants(p.pid) if proc_state(pid) == "Z"]
        assert not zombies, zombies
        assert p.poll() is None, "replboot ended early"

        start = time.time()
        code = n.stop(timeout=30)
        elapsed = time.time() - start
        log = read_log(p)
        assert code == 137, (code, log[-2000:])
        assert 2.0 <= elapsed < 10, elapsed
        assert "event=mysqld_killed" in log and "reason=grace_expired" in log, log[-2000:]
        assert re.search(r"event=mysqld_exited status=\"killed by signal 9 \(Killed\)\" requested=true killed=true",
                         log), log[-2000:]
        assert proc_state(standin_pid) is None, "stand-in still running"


STANDIN_CLEAN = """#!/usr/bin/env python3
# Stand-in server binary that exits 0 on SIGTERM (a clean shutdown) and leaves
# an orphan behind.
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
middle = os.fork()
if middle == 0:
    if os.fork() == 0:
        time.sleep(0.5)
        os._exit(0)
    os._exit(0)
os.waitpid(middle, 0)
while True:
    time.sleep(1)
"""


def test_leak_watcher_reports_a_planted_leak():
    """The secret watchers' own test (LeakWatcher, leaks_in, assert_clean_descendants): replboot,
    the launcher that execs it and a child started with replboot's scrubbed environment are not
    reported; a child of replboot that holds a secret in its environment is. (With the scrubbing
    in process::ChildEnvironment disabled, the first child holds replboot's secrets: this fails.)"""
    with Harness("daemon-leak") as H:
        populated_datadir(H)
        values = random_secrets()
        resolv = H.path("resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\n")
        os.chmod(resolv, 0o644)
        # Launched as the cluster test does (unshare, sh, mount, then replboot), watched closely.
        n = node(H, values=values, launcher=resolv_conf_launcher(resolv))
        watcher = LeakWatcher(values, scope=H.dir, interval=0.02).start()
        try:
            def started_child(script):
                """replboot running `script` as its server; replboot's Popen and the script's pid."""
                p = n.start(standin(write_standin(H, f"standin-{n.starts}.sh", script),
                                    "--set", "mysql.startup_timeout=120"))
                m = wait_log(p, r"event=mysqld_started pid=(\d+)", 30)
                pid = int(m.group(1))
                wait_until(lambda: proc_comm(pid) == "sleep", 10, "the stand-in to exec sleep")
                return p, pid

            p, child = started_child("#!/bin/sh\nexec sleep 600\n")
            scans = watcher.scans
            wait_until(lambda: watcher.scans >= scans + 20, 30, "the watcher to scan the running node")
            assert not watcher.found, f"reported without a leak: {watcher.found[:5]}"
            assert_clean_descendants(p.pid, values, must_include=child)
            n.stop()

            # The child copies the backup secret into its own environment: a leak.
            p, child = started_child(f"#!/bin/sh\nexport COPIED_SECRET='{values['backup']}'\nexec sleep 600\n")
            assert leaks_in(child, values) == [("backup", child, "sleep", "environ")], leaks_in(child, values)
            wait_until(lambda: watcher.found, 10, "the watcher to report the planted leak")
            assert set(watcher.found) == {("backup", child, "sleep", "environ")}, watcher.found
            n.stop()
        finally:
            watcher.stop()
        assert "replboot" in watcher.seen_comms, watcher.seen_comms


def test_runs_as_pid_1_of_a_pid_namespace():
    # As a container ENTRYPOINT: PID 1, where the kernel gives no default signal
    # action, and orphans come to it without PR_SET_CHILD_SUBREAPER.
    with Harness("daemon-pid1") as H:
        populated_datadir(H)
        script = write_standin(H, "standin-clean.py", STANDIN_CLEAN)
        p = node(H, launcher=lambda n, argv: ["unshare", "--pid", "--fork", "--mount-proc"] + argv).start(
            standin(script))
        wait_log(p, r"event=reaped_orphan pid=\d+ status=\"exit code 0\"", 20, "the orphan to be reaped by PID 1")
        kids = [pid for pid in descendants(p.pid) if proc_comm(pid) == "replboot"]
        assert len(kids) == 1, kids
        with open(f"/proc/{kids[0]}/status") as f:
            nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        assert nspid[-1] == "1", nspid
        os.kill(kids[0], signal.SIGTERM)
        code = p.wait(timeout=30)
        log = read_log(p)
        assert code == 0, (code, log[-2000:])
        assert re.search(r"event=mysqld_exited status=\"exit code 0\" requested=true killed=false", log), log[-2000:]
        assert "subreaper_failed" not in log


def test_mysqld_ending_on_its_own_exits_nonzero():
    with Harness("daemon-selfexit") as H:
        populated_datadir(H)
        script = write_standin(H, "standin-exit0.sh", "#!/bin/sh\nsleep 1\nexit 0\n")
        p = node(H).start(standin(script))
        code = p.wait(timeout=30)
        log = read_log(p)
        assert code == 1, (code, log[-2000:])
        assert re.search(r"event=mysqld_exited status=\"exit code 0\" requested=false exit_code=1", log), log[-2000:]
        assert "mysqld exited before accepting connections" in log, log[-2000:]


def test_mysqld_never_answering_times_out_naming_the_socket():
    with Harness("daemon-timeout") as H:
        populated_datadir(H)
        script = write_standin(H, "standin-silent.sh", "#!/bin/sh\nexec sleep 600\n")
        p = node(H).start(standin(script, "--set", "mysql.startup_timeout=2"))
        code = p.wait(timeout=30)
        log = read_log(p)
        assert code == 1, (code, log[-2000:])
        sock = H.path("run", "mysqld.sock")
        assert re.search(r"event=startup_failed .*did not accept a connection as root on socket " + re.escape(sock)
                         + r" within 2s .*last error", log), log[-2000:]
        # The silent stand-in was stopped (sleep dies on SIGTERM) and nothing is left.
        assert "event=mysqld_exited" in log
        assert_nothing_outlives(H, p)


def test_replica_with_empty_datadir_and_no_donor_waits_and_stops_promptly():
    # No DNS entry and no peer answers: the replica keeps looking for a donor, says why, never
    # starts mysqld on its empty datadir, and a SIGTERM ends the wait at once.
    with Harness("daemon-replica") as H:
        p = node(H, hostname="mysql-1", values=random_secrets()).start(
            ["--dns-server", f"{H.addr(9)}:53", "--set", "dns.timeout_ms=200", "--set", "dns.tries=1"])
        wait_log(p, r"event=bootstrap_decision action=clone", 30)
        time.sleep(3)
        assert p.poll() is None, read_log(p)[-2000:]
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=20)
        log = read_log(p)
        assert code != 0, log[-2000:]
        assert "event=mysqld_started" not in log, log[-2000:]
        assert [e for e in os.listdir(H.path("data"))] == [], "replica datadir was written without a clone"
        assert_nothing_outlives(H, p)


def test_hostname_without_ordinal_exits_2():
    with Harness("daemon-badhost") as H:
        p = node(H, hostname="mysql").start()
        code = p.wait(timeout=30)
        log = read_log(p)
        assert code == 2, (code, log)
        assert "mysql" in log and "event=config_invalid" in log, log


if __name__ == "__main__":
    run_tests(globals())
