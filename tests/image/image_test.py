"""The container image, built once per run with podman from the repository's Dockerfile:
- one container, `podman run --hostname mysql-0 ...` with Kubernetes' security settings,
  becomes a healthy primary (/health 200) whose mysqld does not run as root, and `podman stop`
  ends it cleanly (exit code 0, mysqld's clean shutdown in the log);
- three containers, README "A cluster with docker run" (see that test's docstring for how its
  network differs): mysql-1 clones from mysql-0, mysql-2 from mysql-1, they replicate, and each
  stops cleanly.

Needs root (rootful podman). scripts/podman-setup installs podman/runc/debootstrap and creates
the base image from the Debian archive; the build uses the host network (for apt). The single
container binds only to this test's 127.A.B.10 (host network, loopback address) and the cluster
lives in the test's own network namespaces, so nothing listens beyond loopback or those
namespaces and no NAT rules are added.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from replboot_harness import (SECRET_ENV_NAMES, Harness, assert_no_secret_in_procs, proc_read, random_secrets, run_tests,
                              source_dir, wait_until, write_private)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pods"))
import netns  # noqa: E402
from pods_test import SwitchDnsmasq  # noqa: E402

# The securityContext of k8s/statefulset.yaml, so the image is proven with the same capabilities.
CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
SECRETS = random_secrets()
# Where the image finds each secret: a file in the read-only secrets mount, named by
# REPLBOOT_<SETTING>_FILE, so no secret value is ever in a container's environment.
SECRETS_DIR = "/etc/replboot/secrets"
SECRET_FILES = {"root": "root-password", "app": "app-password", "backup": "backup-password",
                "secret": "backup-secret", "repl": "replication-password"}
# A client option file in the secrets mount, for `podman exec ... mariadb` as root over the socket.
CLIENT_CNF = f"{SECRETS_DIR}/client.cnf"
SECURITY = ["--cap-drop", "all", "--security-opt", "no-new-privileges"] + \
    [arg for cap in CAPS for arg in ("--cap-add", cap)]


def write_secrets(directory):
    """The secrets directory a user prepares (README "A cluster with docker run"): one file per
    secret, and replboot.env naming them (for --env-file)."""
    os.makedirs(directory, mode=0o700)
    env = []
    for name, file in SECRET_FILES.items():
        write_private(os.path.join(directory, file), SECRETS[name] + "\n")
        env.append(f"{SECRET_ENV_NAMES[name]}_FILE={SECRETS_DIR}/{file}\n")
    write_private(os.path.join(directory, "replboot.env"), "".join(env))
    write_private(os.path.join(directory, "client.cnf"), f"[client]\nuser=root\npassword={SECRETS['root']}\n")
    return directory


def podman(*args, check=True, timeout=120, capture=True):
    r = subprocess.run(["podman", *args], capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}… exited {r.returncode}: {(r.stderr or '').strip()[-2000:]}")
    return r


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


class Image:
    """The image under test, built once per test run (every test here uses it) under a test-only
    tag and removed with the build's intermediate images when the run ends. REPLBOOT_TEST_IMAGE
    names an image built beforehand to use (and keep) instead, for iterating on these tests
    without a rebuild."""

    def __init__(self):
        self.tag = None
        self.owned = False
        self.layer_ids = []
        self.timings = {}

    def get(self):
        if self.tag is None:
            self._prepare()
        return self.tag

    def _prepare(self):
        given = os.environ.get("REPLBOOT_TEST_IMAGE")
        if given:
            assert podman("image", "exists", given, check=False).returncode == 0, \
                f"REPLBOOT_TEST_IMAGE={given}: no such image"
            self.tag = given
            return
        t = time.time()
        setup = subprocess.run([os.path.join(source_dir(), "scripts", "podman-setup")], capture_output=True,
                               text=True, timeout=1200)
        assert setup.returncode == 0, f"scripts/podman-setup failed: {setup.stdout[-2000:]}{setup.stderr[-2000:]}"
        self.timings["podman-setup"] = time.time() - t
        tag = f"localhost/replboot-image-test:{os.getpid()}"
        t = time.time()
        with tempfile.TemporaryFile("w+") as log:
            r = subprocess.run(["podman", "build", "--network", "host", "--pull=never", "-t", tag, source_dir()],
                               stdout=log, stderr=subprocess.STDOUT, timeout=3000)
            log.seek(0)
            text = log.read()
        self.layer_ids = re.findall(r"^--> ([0-9a-f]{10,64})$", text, re.M)
        self.owned = True
        self.tag = tag
        assert r.returncode == 0, f"podman build failed:\n{text[-4000:]}"
        self.timings["build"] = time.time() - t
        print("image: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()), flush=True)

    def remove(self):
        if not self.owned:
            return
        podman("rmi", "-f", self.tag, check=False)
        # The build stage's image is dangling once the tag is gone; layers still used stay.
        for layer in reversed(self.layer_ids):
            r = podman("image", "inspect", "--format", "{{len .RepoTags}}", layer, check=False)
            if r.returncode == 0 and r.stdout.strip() == "0":
                podman("rmi", layer, check=False)


IMAGE = Image()


def container_log(name):
    r = podman("logs", name, check=False)
    return r.stdout + r.stderr


def stop_cleanly(name, secrets):
    """`podman stop`: exit code 0, mysqld's clean shutdown in the log, no secret in the log.
    Returns how long the stop took."""
    t = time.time()
    podman("stop", name, timeout=120)
    took = time.time() - t
    code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    log_text = container_log(name)
    assert code == "0", f"{name}: exit code after podman stop: {code}\n{log_text[-3000:]}"
    assert re.search(r"mariadbd: Shutdown complete", log_text), \
        f"{name}: no clean mysqld shutdown in the log:\n{log_text[-3000:]}"
    for value in secrets:
        assert value not in log_text, f"a secret appears in {name}'s log"
    return took


def test_image_runs_a_healthy_primary_and_stops_cleanly():
    timings = {}
    start = time.time()
    with Harness("image") as h:
        tag = IMAGE.get()
        name = f"replboot-image-test-{os.getpid()}"
        addr = h.addr(0)
        try:
            secrets = write_secrets(h.path("secrets"))
            data = h.path("volume")
            os.makedirs(data)

            argv = ["run", "-d", "--name", name, "--hostname", "mysql-0", "--network", "host",
                    "--stop-timeout", "40", *SECURITY,
                    "-v", f"{data}:/var/lib/mysql", "-v", f"{secrets}:/etc/replboot/secrets:ro",
                    "--env-file", os.path.join(secrets, "replboot.env"),
                    "-e", f"REPLBOOT_MYSQL_BIND_ADDRESS={addr}",
                    "-e", f"REPLBOOT_BACKUP_LISTEN={addr}:3307",
                    "-e", f"REPLBOOT_HTTP_LISTEN={addr}:8008",
                    "-e", "REPLBOOT_MYSQL_OPTIONS_INNODB_BUFFER_POOL_SIZE=64M"]
            t = time.time()
            podman(*argv, tag)

            def healthy():
                state = json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)
                if not state["Running"]:
                    raise AssertionError(f"container exited {state['ExitCode']} before /health answered:\n"
                                         f"{container_log(name)[-4000:]}")
                return http_status(f"http://{addr}:8008/health") == 200
            try:
                wait_until(healthy, 240, f"/health on {addr}:8008 to answer 200", interval=0.5)
            except AssertionError as e:
                if "container exited" in str(e):
                    raise
                raise AssertionError(f"{e}\ncontainer log:\n{container_log(name)[-4000:]}") from None
            timings["start to /health 200"] = time.time() - t

            # A primary: server-id 100 (ordinal 0) and writable.
            r = podman("exec", name, "mariadb", f"--defaults-extra-file={CLIENT_CNF}",
                       "-N", "-B", "-e", "SELECT @@server_id, @@read_only")
            assert r.stdout.split() == ["100", "0"], f"server_id/read_only: {r.stdout!r}"
            # PID 1 is replboot; mysqld runs as mysql.
            top = podman("top", name, "pid", "user", "comm").stdout.splitlines()[1:]
            procs = [line.split() for line in top]
            assert any(p[0] == "1" and p[2] == "replboot" for p in procs), f"PID 1 is not replboot: {procs}"
            mysqld = [p for p in procs if p[2] in ("mariadbd", "mysqld")]
            assert mysqld and all(p[1] == "mysql" for p in mysqld), f"mysqld must run as mysql: {procs}"
            for value in SECRETS.values():
                assert_no_secret_in_procs(value)

            timings["podman stop"] = stop_cleanly(name, SECRETS.values())
        finally:
            podman("rm", "-f", "-v", "-t", "0", name, check=False)
    timings["total"] = time.time() - start
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()), flush=True)


def in_namespace(net, argv, **kw):
    return subprocess.run(net.exec_argv(net.switch, argv), capture_output=True, text=True, **kw)


class Cluster:
    """The README's `docker run` cluster, in this test's namespaces (see the module docstring)."""

    def __init__(self, h, net, dns, tag):
        self.h = h
        self.net = net
        self.dns = dns
        self.tag = tag
        self.secrets = write_secrets(h.path("secrets"))
        self.names = {}
        self.app_cnf = write_private(h.path("app.cnf"), f"[client]\nuser=app\npassword={SECRETS['app']}\n")

    def name(self, i):
        return f"replboot-image-test-{os.getpid()}-mysql-{i}"

    def run(self, i):
        """`docker run` of mysql-i (README step 3), joined to namespace i instead of a network."""
        ns = self.net.add_node(i)
        self.dns.add_host(f"mysql-{i}.mysql", self.net.addr(i))
        self.dns.reload()
        volume = self.h.path(f"mysql-{i}")
        os.makedirs(volume)
        name = self.name(i)
        self.names[i] = name
        podman("run", "-d", "--name", name, "--hostname", f"mysql-{i}",
               "--network", f"ns:/run/netns/{ns}", "--dns", self.net.gateway, "--dns-search", "mysql",
               "--stop-timeout", "60", *SECURITY,
               "-v", f"{volume}:/var/lib/mysql", "-v", f"{self.secrets}:{SECRETS_DIR}:ro",
               "--env-file", os.path.join(self.secrets, "replboot.env"),
               "-e", "REPLBOOT_MYSQL_OPTIONS_INNODB_BUFFER_POOL_SIZE=64M", self.tag)

    def wait_ready(self, i, timeout):
        """README step 3's wait: `replboot status` inside the container says `ready yes`."""
        name = self.names[i]

        def ready():
            state = json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)
            if not state["Running"]:
                raise AssertionError(f"{name} exited {state['ExitCode']}:\n{container_log(name)[-4000:]}")
            # The README's command as written, so its pattern is proven against the real output.
            return podman("exec", name, "sh", "-c", "replboot status | grep -q '^ready  *yes'",
                          check=False).returncode == 0
        try:
            wait_until(ready, timeout, f"mysql-{i} to be ready", interval=1)
        except AssertionError as e:
            if "exited" in str(e):
                raise
            raise AssertionError(f"{e}\n{name} log:\n{container_log(name)[-4000:]}") from None

    def sql(self, i, statement, check=True):
        """As the application user, over TCP from the switch namespace (a client on the network)."""
        r = in_namespace(self.net, ["mariadb", f"--defaults-extra-file={self.app_cnf}", "-N", "-B",
                                    f"--host={self.net.addr(i)}", "--port=3306", "--protocol=TCP",
                                    "--connect-timeout=3"], input=statement, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"SQL on mysql-{i} failed: {statement!r}: {r.stderr.strip()}")
        return r

    def rows(self, i):
        return [line.split("\t") for line in self.sql(i, "SELECT id, note FROM app.t ORDER BY id").stdout.splitlines()]

    def host_pids(self, i):
        """Host pids of every process in mysql-i's container."""
        out = podman("top", self.names[i], "hpid").stdout.split()[1:]
        return [int(p) for p in out]


def expect_cloned_from(cluster, i, donor):
    log = container_log(cluster.names[i])
    m = re.search(r"event=clone_done peer=(\S+) ", log)
    assert m, f"mysql-{i} did not clone:\n{log[-3000:]}"
    assert m.group(1) == f"{cluster.net.addr(donor)}:3307", (m.group(1), cluster.net.addr(donor))


def test_image_cluster_of_three_containers():
    """Three containers of the image, `--hostname mysql-0..2`, as README "A cluster with docker
    run" runs them: the same secrets directory mounted read-only with the same --env-file, one
    volume (here a directory) per container, started one at a time, each waited for with
    `replboot status`, stopped with `podman stop` replicas first.

    Where it differs from the README, and why: the README puts the containers on a user-defined
    network (`docker network create mysql`) whose DNS answers the aliases `mysql-N.mysql`. Here
    each container joins a network namespace this test creates (`--network ns:/run/netns/...`,
    tests/pods/netns.py: one namespace per node plugged into a switch namespace) and the
    test's dnsmasq in the switch namespace answers `mysql-N.mysql` (`--dns`, `--dns-search mysql`
    in place of Docker's embedded DNS). So no traffic leaves the test's own namespaces, no
    firewall rule or bridge is added to the machine, and the test does not depend on a podman
    network backend with DNS (Debian 12's podman has none by default). Smaller differences: the
    containers are named replboot-image-test-<pid>-mysql-N (their hostnames are mysql-N) so they
    cannot collide with a user's or another run's; they drop every capability but those of
    k8s/statefulset.yaml, proving the recipe also works that tight; each mysqld gets a 64M
    buffer pool so three fit on a small CI machine. mysql-3 (the README's scale-up step) is the
    same `run` with N=3 as mysql-1 and mysql-2 here, so it is not run again.
    """
    if os.geteuid() != 0:
        raise AssertionError("the image cluster test needs root (rootful podman, network namespaces)")
    netns.remove_stale()
    timings = {}
    start = time.time()
    with Harness("image-cluster") as h:
        tag = IMAGE.get()
        net = None
        cluster = None
        try:
            net = netns.PodNetwork()
            dns = SwitchDnsmasq(h, net).start()
            cluster = Cluster(h, net, dns, tag)
            t = time.time()
            cluster.run(0)
            cluster.wait_ready(0, 240)
            timings["mysql-0 ready"] = time.time() - t
            cluster.sql(0, "CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(64));"
                           "INSERT INTO app.t VALUES (1, 'before the replicas')")
            for i in (1, 2):
                t = time.time()
                cluster.run(i)
                cluster.wait_ready(i, 300)
                timings[f"mysql-{i} cloned and ready"] = time.time() - t
                # Each replica cloned from the nearest lower peer, found by its name mysql-N.mysql.
                expect_cloned_from(cluster, i, i - 1)

            # Replication: a write on the primary is read on the last replica.
            cluster.sql(0, "INSERT INTO app.t VALUES (2, 'after the replicas')")
            expected = [["1", "before the replicas"], ["2", "after the replicas"]]
            wait_until(lambda: cluster.rows(2) == expected, 60, f"mysql-2 to read {expected}", interval=0.5)
            # A replica refuses writes (read_only), even from the application user.
            r = cluster.sql(2, "INSERT INTO app.t VALUES (3, 'on a replica')", check=False)
            assert r.returncode != 0 and "read-only" in r.stderr, f"write on mysql-2: {r.returncode} {r.stderr!r}"
            assert cluster.rows(0) == expected

            # No secret in any container process's argv or environment (nor anywhere else).
            for i in (0, 1, 2):
                pids = cluster.host_pids(i)
                assert len(pids) >= 2, f"mysql-{i}: expected replboot and mysqld, got pids {pids}"
                for pid in pids:
                    for part in ("cmdline", "environ"):
                        data = proc_read(pid, part) or b""
                        for value in SECRETS.values():
                            assert value.encode() not in data, f"a secret in mysql-{i}'s /proc/{pid}/{part}"
            for value in SECRETS.values():
                assert_no_secret_in_procs(value)

            for i in (2, 1, 0):
                timings[f"stop mysql-{i}"] = stop_cleanly(cluster.names[i], SECRETS.values())
        finally:
            if cluster is not None:
                for name in cluster.names.values():
                    podman("rm", "-f", "-v", "-t", "0", name, check=False)
            if net is not None:
                net.destroy()
    left = netns.our_namespaces(os.getpid())
    assert not left, f"namespaces leaked: {left}"
    timings["total"] = time.time() - start
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()), flush=True)


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        IMAGE.remove()
