"""Integration-test harness: real mariadbd, dnsmasq and replboot processes on loopback.

Every process started through a Harness is killed (its whole process group) when the
harness closes, and its temp dir is removed, even when a test fails. Node i of a test
lives at f"{H.subnet}.{10+i}" so every node uses the same ports, as pods do; the subnet
differs per test so tests can run in parallel.
"""
import atexit
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

_ALL_HARNESSES = []


def replboot_bin():
    path = os.environ.get("REPLBOOT_BIN")
    if not path:
        sys.exit("REPLBOOT_BIN is not set (run through ctest)")
    return path


def source_dir():
    return os.environ.get("REPLBOOT_SOURCE_DIR",
                          os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling, report the last failure
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def tcp_open(addr, port, timeout=0.5):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False


class Harness:
    """Owns a temp dir, a loopback subnet and every process a test starts."""

    def __init__(self, name):
        self.name = name
        digest = hashlib.sha256(f"{name}-{os.getpid()}".encode()).digest()
        # 127.A.B.x with A in 20..219, B in 0..249: unique enough per test run.
        self.subnet = f"127.{20 + digest[0] % 200}.{digest[1] % 250}"
        self.dir = tempfile.mkdtemp(prefix=f"replboot-{name}-")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self._closed = False
        _ALL_HARNESSES.append(self)

    def addr(self, i):
        return f"{self.subnet}.{10 + i}"

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, argv, log_name=None, env=None, **kw):
        """Starts a process in its own process group, output to <dir>/<log_name>.log."""
        log_name = log_name or os.path.basename(argv[0])
        log_path = self.path(f"{log_name}.log")
        log = open(log_path, "ab")
        kw.setdefault("stdout", log)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, env=env, start_new_session=True, **kw)
        p.log_path = log_path
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.kill_all()
        if os.environ.get("REPLBOOT_KEEP_TMP"):
            print(f"keeping {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@atexit.register
def _close_all():
    for h in _ALL_HARNESSES:
        h.close()


def write_private(path, content):
    """Writes a file readable by its owner only (option files holding passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(path, 0o600)
    return path


class MariaDB:
    """A real mariadbd on addr:port with its own datadir and socket."""

    def __init__(self, h, addr, port=3306, name=None, root_password="root-pw-" + "x" * 8,
                 datadir=None, extra_args=()):
        self.h = h
        self.addr = addr
        self.port = port
        self.name = name or f"mariadb-{addr}"
        self.root_password = root_password
        self.base = h.path(self.name)
        os.makedirs(self.base, exist_ok=True)
        self.datadir = datadir or os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "mysqld.sock")
        self.extra_args = list(extra_args)
        self.proc = None
        shutil.chown(self.base, "mysql", "mysql")
        # mariadbd deletes stale #sql* files in its tmpdir when it starts: servers must not share one.
        self.tmpdir = os.path.join(self.base, "tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        shutil.chown(self.tmpdir, "mysql", "mysql")
        self.client_cnf = write_private(
            os.path.join(self.base, "client.cnf"),
            f"[client]\nuser=root\npassword={root_password}\nsocket={self.socket}\n")

    def install(self):
        os.makedirs(self.datadir, exist_ok=True)
        shutil.chown(self.datadir, "mysql", "mysql")
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
                        "--auth-root-authentication-method=normal", "--skip-test-db", f"--tmpdir={self.tmpdir}"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def args(self):
        return ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
                f"--port={self.port}", f"--socket={self.socket}", f"--bind-address={self.addr}",
                f"--pid-file={os.path.join(self.base, 'mysqld.pid')}", f"--tmpdir={self.tmpdir}",
                "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
                "--skip-name-resolve"] + self.extra_args

    def start(self, set_root_password=True, timeout=60):
        self.proc = self.h.spawn(self.args(), log_name=self.name)
        wait_until(lambda: os.path.exists(self.socket) and self._ping(), timeout, f"{self.name} to accept connections")
        if set_root_password:
            # Fresh datadir: root has no password yet; set it through the socket (stdin, not argv).
            # mariadb-install-db also makes password-less root@127.0.0.1/::1/<host> and anonymous
            # users, which would shadow root@'%' for TCP clients: drop them.
            host = socket.gethostname()
            self._run_sql_nopw("DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', "
                               f"'root'@'{host}', ''@'localhost', ''@'{host}';"
                               f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{self.root_password}';"
                               f"CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '{self.root_password}';"
                               "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;")
        return self

    def _ping(self):
        r = subprocess.run(["mariadb-admin", f"--defaults-extra-file={self.client_cnf}", "ping"],
                           capture_output=True)
        if r.returncode == 0:
            return True
        r = subprocess.run(["mariadb-admin", "--no-defaults", "-uroot", f"--socket={self.socket}", "ping"],
                           capture_output=True)
        return r.returncode == 0

    def _run_sql_nopw(self, sql):
        subprocess.run(["mariadb", "--no-defaults", "-uroot", f"--socket={self.socket}"], input=sql.encode(),
                       check=True, capture_output=True)

    def sql(self, statement, user=None, password=None, tcp=False, check=True):
        """Runs SQL (passed on stdin) and returns rows as lists of strings."""
        cnf = self.client_cnf
        if user is not None:
            cnf = write_private(self.h.path(f"client-{user}.cnf"),
                                f"[client]\nuser={user}\npassword={password or ''}\n")
        argv = ["mariadb", f"--defaults-extra-file={cnf}", "-N", "-B"]
        argv += [f"--host={self.addr}", f"--port={self.port}", "--protocol=TCP"] if (tcp or user) else \
            [f"--socket={self.socket}"]
        r = subprocess.run(argv, input=statement.encode(), capture_output=True)
        if check and r.returncode != 0:
            raise AssertionError(f"SQL failed on {self.name}: {statement!r}: {r.stderr.decode().strip()}")
        if not check:
            return r
        return [line.split("\t") for line in r.stdout.decode().splitlines()]

    def value(self, statement):
        rows = self.sql(statement)
        return rows[0][0] if rows else None

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None


class Dnsmasq:
    """dnsmasq on addr:port answering only from records the test gives (plays the headless Service)."""

    def __init__(self, h, addr="127.0.0.1", port=None, domain=None):
        self.h = h
        self.addr = addr
        self.port = port or free_port(addr, udp=True)
        self.hosts_path = h.path(f"dnsmasq-{self.port}.hosts")
        self.conf_path = h.path(f"dnsmasq-{self.port}.conf")
        self.hosts = {}  # name -> [ip]
        self.srv = []  # (name, target, port, priority, weight)
        self.proc = None
        self.domain = domain

    def add_host(self, name, ip):
        self.hosts.setdefault(name, []).append(ip)
        return self

    def remove_host(self, name):
        self.hosts.pop(name, None)
        return self

    def add_srv(self, name, target, port, priority=0, weight=0):
        self.srv.append((name, target, port, priority, weight))
        return self

    def _write(self):
        with open(self.hosts_path, "w") as f:
            for name, ips in self.hosts.items():
                for ip in ips:
                    f.write(f"{ip} {name}\n")
        lines = [
            "no-resolv", "no-hosts", "no-poll", "bind-interfaces", "keep-in-foreground", "log-queries",
            f"listen-address={self.addr}", f"port={self.port}", f"addn-hosts={self.hosts_path}",
            "user=root", "pid-file=", "local-ttl=0", "neg-ttl=0", "no-negcache",
        ]
        if ":" in self.addr:
            lines.append("except-interface=nonexistent0")
        for name, target, port, prio, weight in self.srv:
            lines.append(f"srv-host={name},{target},{port},{prio},{weight}")
        # Answer authoritatively for the test domains: unknown names are NXDOMAIN, not forwarded.
        lines.append("local=/mysql/")
        if self.domain:
            lines.append(f"local=/{self.domain}/")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        self._write()
        self.proc = self.h.spawn(["dnsmasq", f"--conf-file={self.conf_path}"], log_name=f"dnsmasq-{self.port}")
        wait_until(lambda: self.proc.poll() is None and _udp_bound(self.addr, self.port), 10, "dnsmasq to listen")
        return self

    def reload(self):
        """Re-reads hosts (SIGHUP). SRV changes need restart()."""
        self._write()
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)

    def restart(self):
        self.stop()
        return self.start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def server(self):
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"


def _udp_bound(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, port))
            return False  # still free: dnsmasq not up yet
        except OSError:
            return True


def free_port(addr="127.0.0.1", udp=False):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def assert_no_secret_in_procs(secret, also_environ=True):
    """No running process has `secret` in its argv (and, when asked, in an environment that is
    not the test's own: see leaks_in)."""
    found = [hit for pid in other_pids() for hit in leaks_in(pid, {"secret": secret})
             if also_environ or hit[3] == "cmdline"]
    assert not found, f"secret found in processes: {found[:5]}"


def run_tests(namespace, only=None):
    """Runs every test_* function in `namespace` (or `only`), prints 'N passed, M failed'."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    if only:
        tests = [(n, f) for n, f in tests if n in only]
    selected = sys.argv[1:]
    if selected:
        tests = [(n, f) for n, f in tests if n in selected]
    passed = failed = 0
    for name, fn in tests:
        start = time.time()
        print(f"--- {name}", flush=True)
        try:
            fn()
            passed += 1
            print(f"PASS {name} ({time.time() - start:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - report every failure, run the rest
            failed += 1
            traceback.print_exc()
            print(f"FAIL {name} ({time.time() - start:.1f}s)", flush=True)
        finally:
            for h in list(_ALL_HARNESSES):
                h.close()
            _ALL_HARNESSES.clear()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not tests else 0)


# --- Process tree and file contents, from /proc and the file system (daemon tests) ---

def other_pids():
    """Every live pid but this process's."""
    me = os.getpid()
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != me]


def proc_read(pid, name):
    """The bytes of /proc/<pid>/<name> (cmdline, environ, ...); None once the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def processes_mentioning(text):
    """Pids (but this one) whose argv contains `text`."""
    needle = text.encode()
    return [pid for pid in other_pids() if needle in (proc_read(pid, "cmdline") or b"")]


def process_parents():
    """pid -> parent pid of every live process (from /proc/*/stat)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # After the last ')': comm may itself hold ')' or spaces.
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def descendants(pid):
    """Every live descendant of pid."""
    parents = process_parents()
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def proc_hwm_kib(pid):
    """VmHWM of a live process: the peak of its resident set so far, KiB; None once it is gone."""
    text = proc_read(pid, "status")
    for line in (text or b"").decode(errors="replace").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def proc_children(pid):
    """The live children of pid (from /proc/<pid>/task/*/children), without scanning /proc."""
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            kids += [int(c) for c in (proc_read(pid, f"task/{tid}/children") or b"").split()]
    except OSError:
        pass
    return kids


class PeakRss:
    """The peak resident set (VmHWM, KiB) of a process and, apart, of its descendants, polled
    until it exits (VmHWM only grows, so the last reading is the peak unless it came in the
    last `interval`). wait4's ru_maxrss cannot stand in: it is the largest of the process and
    the children it reaped (a clone's --prepare), and a child of Python starts from the
    interpreter's resident set (vfork shares it until the exec), ~20 MiB it never used."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.own = 0
        self.descendants = {}  # comm -> peak KiB of the largest process of that name
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._halt.is_set():
            own = proc_hwm_kib(self.pid)
            if own is None:
                return
            self.own = max(self.own, own)
            frontier = proc_children(self.pid)
            while frontier:
                kid = frontier.pop()
                comm, kib = proc_comm(kid), proc_hwm_kib(kid)
                if comm and kib:
                    self.descendants[comm] = max(self.descendants.get(comm, 0), kib)
                frontier += proc_children(kid)
            self._halt.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        """Stops polling (call it once the process was waited for); the process's own peak."""
        self._halt.set()
        self._thread.join(timeout=30)
        return self.own


def proc_comm(pid):
    """The process's command name, or None when the pid is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def proc_state(pid):
    """Process state letter ('Z' for a zombie), or None when the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def regular_files(root):
    """(path, content) of every regular file under root; symlinks are neither followed nor read."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            yield path, data


def files_containing(root, needle, skip=()):
    """Paths of the regular files under root (but those in skip) whose content holds `needle`."""
    return [path for path, data in regular_files(root) if path not in skip and needle in data]


def http_get(url, timeout=10):
    """(status, body) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def make_pki(directory, leaves, other_ca_leaves=()):
    """A throwaway PKI for backup.tls in `directory` (made 0700): ca.pem signs each name in
    `leaves`, other-ca.pem each in `other_ca_leaves` (a stranger to ca.pem). Every name gets
    <name>.pem and <name>.key; P-256 keys, valid for a day. Returns `directory`."""
    os.makedirs(directory, mode=0o700, exist_ok=True)

    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    signed = [(leaf, "ca") for leaf in leaves] + [(leaf, "other-ca") for leaf in other_ca_leaves]
    for ca in sorted({ca for _, ca in signed}):
        ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{directory}/{ca}.key", "-out", f"{directory}/{ca}.pem", "-days", "1",
            "-subj", f"/CN={ca}")
    for serial, (leaf, ca) in enumerate(signed, 2):
        ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{directory}/{leaf}.key", "-out", f"{directory}/{leaf}.csr", "-subj", f"/CN={leaf}")
        ssl("x509", "-req", "-in", f"{directory}/{leaf}.csr", "-CA", f"{directory}/{ca}.pem",
            "-CAkey", f"{directory}/{ca}.key", "-set_serial", str(serial), "-days", "1",
            "-out", f"{directory}/{leaf}.pem")
    return directory


# The secrets `replboot run` reads from its environment, by short name.
SECRET_ENV_NAMES = {
    "root": "REPLBOOT_MYSQL_ROOT_PASSWORD",
    "repl": "REPLBOOT_REPLICATION_PASSWORD",
    "backup": "REPLBOOT_BACKUP_PASSWORD",
    "secret": "REPLBOOT_BACKUP_SECRET",
    "app": "REPLBOOT_CLUSTER_APP_PASSWORD",
}


def random_secrets():
    """Fresh values for SECRET_ENV_NAMES, by short name ("root-1f2e…"), for a test to look for."""
    return {name: f"{name}-{secrets.token_hex(10)}" for name in SECRET_ENV_NAMES}


# --- Which process may hold a secret: the test's own marker ---
#
# Every replboot a test starts (through node_env) gets REPLBOOT_TEST_OWN=<token> beside its
# secrets. replboot drops every REPLBOOT_* variable from its children's environment
# (process::ChildEnvironment), so the marker is held only by the launcher the test runs
# (unshare, sh, mount, ...), by replboot itself, and by a fork of replboot that has not exec'd
# yet (it still is replboot's memory). A secret in the environment of any other process is a
# leak. The verdict needs no picture of the process tree taken earlier, so a process started
# between two reads cannot be mistaken for a stranger.
OWN_MARKER_NAME = "REPLBOOT_TEST_OWN"
OWN_MARKER = secrets.token_hex(12)
# What the tests' launchers exec on the way to replboot (sh is dash on Debian).
LAUNCHER_EXECUTABLES = {"unshare", "sh", "dash", "bash", "mount", "hostname", "ip", "nsenter", "env"}


def node_env(values=None):
    """The environment for a replboot a test starts: this one without REPLBOOT_* settings
    (REPLBOOT_BIN and REPLBOOT_SOURCE_DIR stay), the secrets in `values` (short name ->
    value, as random_secrets() gives) under their SECRET_ENV_NAMES, and the own-process marker."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REPLBOOT_") or k in ("REPLBOOT_BIN", "REPLBOOT_SOURCE_DIR")}
    for name, value in (values or {}).items():
        env[SECRET_ENV_NAMES[name]] = value
    env[OWN_MARKER_NAME] = OWN_MARKER
    return env


def proc_identity(pid):
    """(start time, executable) of a live process; None when it is gone, a zombie or a kernel
    thread. An exec changes the executable, a reused pid the start time."""
    stat = proc_read(pid, "stat")
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        # Field 22 (starttime), counted after the last ')': comm may hold ')' or spaces.
        return int(stat.rsplit(b")", 1)[1].split()[19]), exe
    except (OSError, AttributeError, IndexError, ValueError):
        return None


def proc_parent(pid):
    """The parent pid of a live process, None once it is gone."""
    stat = proc_read(pid, "stat")
    try:
        return int(stat.rsplit(b")", 1)[1].split()[1])
    except (AttributeError, IndexError, ValueError):
        return None


def _is_launcher(pid):
    """A launcher tool this test process started (its child), or one such a launcher forked
    (sh -c 'mount ... && exec replboot')."""
    me = os.getpid()
    parent = proc_parent(pid)
    if parent == me:
        return True
    ident = proc_identity(parent) if parent else None
    return bool(ident) and os.path.basename(ident[1]) in LAUNCHER_EXECUTABLES and proc_parent(parent) == me


def _is_own(pid, exe):
    """Whether a process holding the marker is allowed to: replboot (or its fork before exec),
    or the launcher chain that execs it. Read now, not from an earlier picture."""
    if exe == os.path.realpath(replboot_bin()):
        return True
    return os.path.basename(exe) in LAUNCHER_EXECUTABLES and _is_launcher(pid)


def leaks_in(pid, values):
    """[(name, pid, comm, "cmdline" | "environ")] for each secret in `values` (name -> text or
    bytes) that process `pid` holds where it must not: on its command line, or in an environment
    that is not the test's own (see OWN_MARKER). A process that vanished or exec'd while it was
    read is unknown, not guilty, and gives []."""
    needles = {name: v.encode() if isinstance(v, str) else v for name, v in values.items()}
    before = proc_identity(pid)
    if before is None:
        return []
    cmdline = proc_read(pid, "cmdline") or b""
    environ = proc_read(pid, "environ") or b""
    hits = [(name, "cmdline") for name, n in needles.items() if n in cmdline]
    env_hits = [(name, "environ") for name, n in needles.items() if n in environ]
    # The marker and the secrets come from one read of the environment: the same instant.
    if env_hits and f"{OWN_MARKER_NAME}={OWN_MARKER}".encode() in environ and _is_own(pid, before[1]):
        env_hits = []
    hits += env_hits
    if not hits or proc_identity(pid) != before:
        return []
    comm = proc_comm(pid)
    return [(name, pid, comm, what) for name, what in hits]


class LeakWatcher:
    """Scans every process in a thread while a test runs: no secret of `values` (name -> text)
    on any command line or in any environment but the test's own (leaks_in). `scope` (a path)
    names what the scans are meant to cover: the command names of the processes whose argv (or
    whose parent's) mention it are collected in seen_comms, so a test can show the scans saw its
    backups run."""

    def __init__(self, values, scope=None, interval=0.25):
        self.values = dict(values)
        self.scope = scope.encode() if scope else None
        self.interval = interval
        self.found = []
        self.scans = 0
        self.seen_comms = set()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def scan(self):
        for pid in other_pids():
            self.found += leaks_in(pid, self.values)
            if self.scope and self._in_scope(pid):
                comm = proc_comm(pid)
                if comm:
                    self.seen_comms.add(comm)
        self.scans += 1

    def _in_scope(self, pid):
        """Its argv or its parent's names the scope (a donor's mariabackup works in a temp dir,
        its parent replboot has the node's --datadir)."""
        if self.scope in (proc_read(pid, "cmdline") or b""):
            return True
        parent = proc_parent(pid)
        return bool(parent) and self.scope in (proc_read(parent, "cmdline") or b"")

    def _run(self):
        while not self._halt.is_set():
            self.scan()
            self._halt.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._halt.set()
        self._thread.join(timeout=30)


def assert_clean_descendants(root, values, must_include=None):
    """No descendant of `root` (a replboot) holds a secret of `values`, or any REPLBOOT_*
    variable, where it must not (leaks_in); `must_include`, a pid that has to be among them."""
    kids = descendants(root)
    if must_include is not None:
        assert must_include in kids, (must_include, kids)
    found = [hit for pid in kids for hit in leaks_in(pid, dict(values, **{"REPLBOOT_*": b"REPLBOOT_"}))
             if not (hit[0] == "REPLBOOT_*" and hit[3] == "cmdline")]
    assert not found, f"secrets in the processes under {root}: {found[:5]}"


# --- Logs of the processes a Harness started, and the one way tests start a node ---

def read_text(path):
    """A file's text ("" while it does not exist), undecodable bytes replaced."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def read_log(p):
    """The log (stdout and stderr) of a process started with Harness.spawn, so far."""
    return read_text(p.log_path)


def wait_log(p, pattern, timeout, what=None, name="replboot"):
    """The first match of `pattern` in p's log, waiting up to `timeout` s; fails at once, with
    the log's tail, when p exits first."""
    def found():
        m = re.search(pattern, read_log(p))
        if m:
            return m
        if p.poll() is not None:
            raise AssertionError(f"{name} exited ({p.returncode}) before {what or pattern}:\n{read_log(p)[-4000:]}")
        return None
    try:
        return wait_until(found, timeout, f"{name}: {what or pattern}", interval=0.2)
    except AssertionError:
        print(f"=== {name} log tail\n{read_log(p)[-4000:]}", flush=True)
        raise


# Short DNS and replication retries and a small --prepare, for multi-node tests that restart
# nodes and wait on each other (the defaults are for pods that come up over minutes).
FAST_CLUSTER_SETTINGS = [
    "--set", "backup.use_memory=64M",
    "--set", "dns.timeout_ms=500",
    "--set", "dns.tries=2",
    "--set", "dns.lookup_deadline=60",
    "--set", "replication.connect_retry=1",
    "--set", "replication.start_deadline=30",
    # A donor waits this long for more replicas to share a backup run (default 5 s): the tests'
    # nodes start within a second of each other.
    "--set", "backup.fanout_window_ms=1500",
]


class Node:
    """One `replboot run` node as every test starts it: mysql-<ordinal> with its datadir, socket,
    config dir and private tmpdir under `base`, mysqld/backup/HTTP on `addr` (3306, 3307, 8008),
    the secrets in `values` (short name -> value) in its environment with the own-process marker
    (node_env), a log per start. `launcher` wraps the replboot argv (a mount namespace for
    resolv.conf, a pod's namespaces, PID 1), and must exec so the started pid is replboot's;
    `hostname=None` leaves --hostname out (replboot reads the real one), `flavour=None` --flavour."""

    HTTP_PORT = 8008

    def __init__(self, h, ordinal=0, addr=None, base=None, hostname="", values=None, dns=None, launcher=None,
                 flavour="mariadb"):
        self.h = h
        self.i = ordinal
        self.name = f"mysql-{ordinal}"
        self.addr = addr or h.addr(ordinal)
        self.base = base or h.path(self.name)
        self.hostname = self.name if hostname == "" else hostname
        self.values = values
        self.dns = dns
        self.launcher = launcher
        self.flavour = flavour
        self.datadir = os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "run", "mysqld.sock")
        self.tmpdir = os.path.join(self.base, "tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        os.chmod(self.base, 0o755)
        # mariadbd deletes stale #sql* files in its tmpdir at start: never share one between servers.
        os.chmod(self.tmpdir, 0o1777)
        self.proc = None
        self.starts = 0

    def argv(self, extra=()):
        run = [replboot_bin(), "run", "--datadir", self.datadir]
        if self.flavour is not None:
            run += ["--flavour", self.flavour]
        if self.hostname is not None:
            run += ["--hostname", self.hostname]
        if self.dns is not None:
            run += ["--dns-server", f"{self.dns.addr}:{self.dns.port}"]
        run += ["--set", f"mysql.socket={self.socket}",
                "--set", f"mysql.config_dir={os.path.join(self.base, 'etc')}",
                "--set", f"mysql.bind_address={self.addr}",
                "--set", f"http.listen={self.addr}:{self.HTTP_PORT}",
                "--set", f"backup.listen={self.addr}:3307",
                "--set", f"mysql.options.tmpdir={self.tmpdir}",
                "--set", "mysql.options.innodb_buffer_pool_size=64M",
                "--set", "mysql.options.innodb_log_file_size=48M", *extra]
        return self.launcher(self, run) if self.launcher else run

    def start(self, extra=()):
        """Starts replboot (again); its log is <dir>/mysql-i-<n>.log for the n-th start."""
        self.starts += 1
        self.proc = self.h.spawn(self.argv(extra), log_name=f"{self.name}-{self.starts}", env=node_env(self.values))
        return self.proc

    def log(self):
        return read_log(self.proc)

    def wait_log(self, pattern, timeout, what=None):
        return wait_log(self.proc, pattern, timeout, what, name=self.name)

    def url(self, path):
        return f"http://{self.addr}:{self.HTTP_PORT}{path}"

    def get(self, path, timeout=10):
        return http_get(self.url(path), timeout=timeout)

    def wait_http(self, path, code, timeout, what=None):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-4000:]}")
            return self.get(path, timeout=5)[0] == code
        try:
            wait_until(ok, timeout, f"{self.name} {path} -> {code}" + (f" ({what})" if what else ""), interval=0.2)
        except AssertionError:
            try:
                print(f"=== {self.name} {path}: {self.get(path, timeout=5)}; /status: {self.get('/status', 5)}")
            except OSError as e:
                print(f"=== {self.name} {path}: {e}")
            print(f"=== {self.name} log tail\n{self.log()[-4000:]}")
            raise

    def stop(self, timeout=90):
        """SIGTERM to replboot (launchers exec: the started pid is replboot); its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def resolv_conf_launcher(resolv):
    """A Node launcher: a private mount namespace whose /etc/resolv.conf is `resolv`, so the
    mariadbd replboot starts resolves the test's names the way a pod does."""
    def wrap(node, argv):
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv] + argv
    return wrap
