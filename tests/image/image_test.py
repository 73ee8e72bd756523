"""The container image: built with podman from the repository's Dockerfile, run as
`podman run --hostname mysql-0 ...` with Kubernetes' security settings, it becomes a healthy
primary (/health 200) whose mysqld does not run as root, and `podman stop` ends it cleanly
(exit code 0, mysqld's clean shutdown in the log).

Needs root (rootful podman). scripts/podman-setup installs podman/runc/debootstrap and creates
the base image from the Debian archive; the build uses the host network (for apt) and the
container binds only to this test's 127.A.B.10 (host network, loopback address), so nothing
listens beyond loopback and no NAT rules are added.
"""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

from replboot_harness import Harness, assert_no_secret_in_procs, run_tests, source_dir, wait_until, write_private

# The securityContext of k8s/statefulset.yaml, so the image is proven with the same capabilities.
CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]
SECRETS = {
    "root-password": "image-root-pw-4c1d",
    "app-password": "image-app-pw-9e2b",
    "backup-password": "image-backup-pw-77aa",
    "backup-secret": "image-backup-secret-31f0",
    "replication-password": "image-repl-pw-a5c8",
}
SETTING_FILES = {
    "REPLBOOT_MYSQL_ROOT_PASSWORD_FILE": "root-password",
    "REPLBOOT_CLUSTER_APP_PASSWORD_FILE": "app-password",
    "REPLBOOT_BACKUP_PASSWORD_FILE": "backup-password",
    "REPLBOOT_BACKUP_SECRET_FILE": "backup-secret",
    "REPLBOOT_REPLICATION_PASSWORD_FILE": "replication-password",
}


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
    """Builds the image under a test-only tag; removes it and the build's intermediate images."""

    def __init__(self, h):
        self.h = h
        self.tag = f"localhost/replboot-image-test:{os.getpid()}"
        self.layer_ids = []

    def build(self):
        log = self.h.path("build.log")
        with open(log, "w") as f:
            r = subprocess.run(["podman", "build", "--network", "host", "--pull=never", "-t", self.tag,
                                source_dir()], stdout=f, stderr=subprocess.STDOUT, timeout=3000)
        with open(log) as f:
            text = f.read()
        self.layer_ids = re.findall(r"^--> ([0-9a-f]{10,64})$", text, re.M)
        assert r.returncode == 0, f"podman build failed:\n{text[-4000:]}"

    def remove(self):
        podman("rmi", "-f", self.tag, check=False)
        # The build stage's image is dangling once the tag is gone; layers still used stay.
        for layer in reversed(self.layer_ids):
            r = podman("image", "inspect", "--format", "{{len .RepoTags}}", layer, check=False)
            if r.returncode == 0 and r.stdout.strip() == "0":
                podman("rmi", layer, check=False)


def test_image_runs_a_healthy_primary_and_stops_cleanly():
    timings = {}
    start = time.time()
    with Harness("image") as h:
        setup = subprocess.run([os.path.join(source_dir(), "scripts", "podman-setup")], capture_output=True,
                               text=True, timeout=1200)
        assert setup.returncode == 0, f"scripts/podman-setup failed: {setup.stdout[-2000:]}{setup.stderr[-2000:]}"
        timings["podman-setup"] = time.time() - start

        image = Image(h)
        name = f"replboot-image-test-{os.getpid()}"
        addr = h.addr(0)
        try:
            t = time.time()
            image.build()
            timings["build"] = time.time() - t

            secrets = h.path("secrets")
            os.makedirs(secrets, mode=0o700)
            for key, value in SECRETS.items():
                write_private(os.path.join(secrets, key), value + "\n")
            # A client option file for `podman exec mariadb` as root through the socket.
            write_private(os.path.join(secrets, "client.cnf"),
                          f"[client]\nuser=root\npassword={SECRETS['root-password']}\n")
            data = h.path("volume")
            os.makedirs(data)

            argv = ["run", "-d", "--name", name, "--hostname", "mysql-0", "--network", "host",
                    "--stop-timeout", "40", "--cap-drop", "all", "--security-opt", "no-new-privileges",
                    "-v", f"{data}:/var/lib/mysql", "-v", f"{secrets}:/etc/replboot/secrets:ro",
                    "-e", f"REPLBOOT_MYSQL_BIND_ADDRESS={addr}",
                    "-e", f"REPLBOOT_BACKUP_LISTEN={addr}:3307",
                    "-e", f"REPLBOOT_HTTP_LISTEN={addr}:8008",
                    "-e", "REPLBOOT_MYSQL_OPTIONS=innodb_buffer_pool_size=64M"]
            for cap in CAPS:
                argv += ["--cap-add", cap]
            for var, key in SETTING_FILES.items():
                argv += ["-e", f"{var}=/etc/replboot/secrets/{key}"]
            t = time.time()
            podman(*argv, image.tag)

            def healthy():
                state = json.loads(podman("inspect", "--format", "{{json .State}}", name).stdout)
                if not state["Running"]:
                    logs = podman("logs", name, check=False)
                    raise AssertionError(f"container exited {state['ExitCode']} before /health answered:\n"
                                         f"{(logs.stdout + logs.stderr)[-4000:]}")
                return http_status(f"http://{addr}:8008/health") == 200
            try:
                wait_until(healthy, 240, f"/health on {addr}:8008 to answer 200", interval=0.5)
            except AssertionError as e:
                if "container exited" in str(e):
                    raise
                logs = podman("logs", name, check=False)
                raise AssertionError(f"{e}\ncontainer log:\n{(logs.stdout + logs.stderr)[-4000:]}") from None
            timings["start to /health 200"] = time.time() - t

            # A primary: server-id 100 (ordinal 0) and writable.
            r = podman("exec", name, "mariadb", "--defaults-extra-file=/etc/replboot/secrets/client.cnf",
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

            t = time.time()
            podman("stop", name, timeout=90)
            timings["podman stop"] = time.time() - t
            code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            logs = podman("logs", name)
            log_text = logs.stdout + logs.stderr
            assert code == "0", f"exit code after podman stop: {code}\n{log_text[-3000:]}"
            assert re.search(r"mariadbd: Shutdown complete", log_text), \
                f"no clean mysqld shutdown in the log:\n{log_text[-3000:]}"
            for value in SECRETS.values():
                assert value not in log_text, "a secret appears in the container's log"
        finally:
            podman("rm", "-f", "-v", "-t", "0", name, check=False)
            image.remove()
    timings["total"] = time.time() - start
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()), flush=True)


if __name__ == "__main__":
    run_tests(globals())
