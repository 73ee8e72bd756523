"""k8s/: the manifests render with kustomize, hang together, and carry a replboot.toml that
replboot itself accepts.

Renders `kubectl kustomize k8s/` (no cluster needed), parses the YAML (PyYAML, Debian's
python3-yaml) and checks the structure a working deployment depends on: probes on replboot's
HTTP port, a grace period longer than replboot's, the headless Service publishing not-ready
pods, Secret keys matching the *_file settings (the backups' key and S3 credentials too), the ConfigMap key mounted where replboot reads
it, and the datadir on the volume. Then feeds the ConfigMap's TOML to `replboot config render`.
"""
import os
import re
import shutil
import subprocess
import tempfile
import sys
import tomllib

try:
    import yaml
except ImportError:
    # PyYAML comes from Debian's python3-yaml (scripts/install-deps): when ctest found another
    # interpreter without it, run under Debian's.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    raise

from replboot_harness import node_env, replboot_bin, run_tests, source_dir

K8S_DIR = os.path.join(source_dir(), "k8s")


def render():
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: scripts/install-deps installs Debian's kubernetes-client"
    r = subprocess.run([kubectl, "kustomize", K8S_DIR], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"kubectl kustomize {K8S_DIR} failed: {r.stderr.strip()}"
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def one(by_kind, kind, name=None):
    items = [d for d in by_kind.get(kind, []) if name is None or d["metadata"]["name"] == name]
    assert len(items) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in items]}"
    return items[0]


def container(sts):
    containers = sts["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"expected one container, got {[c['name'] for c in containers]}"
    return containers[0]


def port_number(c, port):
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    assert port in named, f"port name {port!r} is not a container port ({named})"
    return named[port]


def config_toml(by_kind):
    sts = one(by_kind, "StatefulSet", "mysql")
    c = container(sts)
    mount = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/replboot/replboot.toml"]
    assert mount, "nothing is mounted at /etc/replboot/replboot.toml (replboot's default config file)"
    vol = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == mount[0]["name"]][0]
    cm = one(by_kind, "ConfigMap", vol["configMap"]["name"])
    key = mount[0]["subPath"]
    assert key in cm["data"], f"ConfigMap {cm['metadata']['name']} has no key {key!r}"
    return cm["data"][key]


def listen_port(listen):
    return int(listen.rsplit(":", 1)[1])


def test_statefulset_runs_replboot_with_probes_ports_and_grace():
    by_kind = render()
    sts = one(by_kind, "StatefulSet", "mysql")
    spec = sts["spec"]
    conf = tomllib.loads(config_toml(by_kind))
    assert spec["replicas"] == 3
    # New replicas start together and share one backup run on their donor (issue 12); that only
    # pays when the donor waits for them: the window must be on.
    assert spec["podManagementPolicy"] == "Parallel"
    window = conf["backup"].get("fanout_window_ms", 5000)
    assert 1000 <= window <= 60000, f"backup.fanout_window_ms {window}: new replicas would not share a backup"
    assert conf["backup"].get("max_concurrent", 1) >= 1
    assert spec["serviceName"] == "mysql" == conf["cluster"]["service"], \
        "the StatefulSet's serviceName must be replboot's cluster.service (peer names mysql-N.<service>)"
    pod_labels = spec["template"]["metadata"]["labels"]
    for k, v in spec["selector"]["matchLabels"].items():
        assert pod_labels.get(k) == v, f"selector {k}={v} does not match the pod template's labels"

    c = container(sts)
    assert c.get("command", ["replboot", "run"])[:2] == ["replboot", "run"], c.get("command")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"mysql": 3306, "backup": 3307, "http": 8008}, ports
    assert ports["mysql"] == conf["mysql"]["port"]
    assert ports["backup"] == conf["backup"]["port"] == listen_port(conf["backup"]["listen"])
    http_port = listen_port(conf["http"]["listen"])
    assert ports["http"] == http_port

    ready = c["readinessProbe"]["httpGet"]
    assert ready["path"] == "/ready" and port_number(c, ready["port"]) == http_port, ready
    live = c["livenessProbe"]["httpGet"]
    assert live["path"] == "/health" and port_number(c, live["port"]) == http_port, live
    if "startupProbe" in c:
        startup = c["startupProbe"]
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        assert budget >= 3600, f"a clone must be allowed an hour or more before liveness applies, got {budget}s"

    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown_grace = conf["mysql"].get("shutdown_grace", 25)
    assert grace >= shutdown_grace + 10, \
        f"terminationGracePeriodSeconds {grace} must exceed mysql.shutdown_grace {shutdown_grace} with margin"


def test_datadir_is_a_directory_on_the_volume():
    by_kind = render()
    sts = one(by_kind, "StatefulSet", "mysql")
    c = container(sts)
    conf = tomllib.loads(config_toml(by_kind))
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    data_mounts = [m for m in c["volumeMounts"] if m["name"] in claims]
    assert len(data_mounts) == 1, f"expected one volume claim mount, got {data_mounts}"
    mount = data_mounts[0]["mountPath"].rstrip("/")
    datadir = conf["mysql"]["datadir"].rstrip("/")
    # Strictly inside: the clone's staging dir <datadir>.replboot-staging must be on the volume too.
    assert datadir.startswith(mount + "/"), f"datadir {datadir} must be a directory inside the volume at {mount}"


def test_services_and_disruption_budget():
    by_kind = render()
    sts = one(by_kind, "StatefulSet", "mysql")
    c = container(sts)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    headless = one(by_kind, "Service", "mysql")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True, "a cloning (not ready) pod must still find its peers"
    read = one(by_kind, "Service", "mysql-read")["spec"]
    assert read.get("clusterIP") != "None", "mysql-read load-balances over ready pods"
    assert not read.get("publishNotReadyAddresses", False), "mysql-read must only route to ready pods"
    for name, svc in (("mysql", headless), ("mysql-read", read)):
        for k, v in svc["selector"].items():
            assert pod_labels.get(k) == v, f"Service {name} selector {k}={v} matches no pod"
        for p in svc["ports"]:
            port_number(c, p.get("targetPort", p["port"]))
    assert {p["port"] for p in headless["ports"]} >= {3306, 3307}, "peers reach mysql and backup by pod name"
    assert [p["port"] for p in read["ports"]] == [3306]

    pdb = one(by_kind, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    for k, v in pdb["spec"]["selector"]["matchLabels"].items():
        assert pod_labels.get(k) == v, f"PodDisruptionBudget selector {k}={v} matches no pod"


# Every secret replboot reads: a *_file setting naming a key of a mounted Secret.
SECRET_FILE_SETTINGS = {("mysql", "root_password_file"), ("cluster", "app_password_file"),
                        ("backup", "password_file"), ("backup", "secret_file"),
                        ("replication", "password_file"),
                        # Backups outside the cluster (issue 23): the key and the S3 credentials.
                        ("archive", "key_file"), ("archive", "access_key_file"),
                        ("archive", "secret_key_file")}


def test_secret_files_match_the_settings_and_nothing_secret_is_in_env():
    by_kind = render()
    sts = one(by_kind, "StatefulSet", "mysql")
    c = container(sts)
    conf = tomllib.loads(config_toml(by_kind))
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    assert secrets, "no Secret"
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    # mount path -> the keys of the Secret mounted there
    secret_mounts = {}
    for m in c["volumeMounts"]:
        if "secret" not in vols.get(m["name"], {}):
            continue
        vol = vols[m["name"]]["secret"]
        assert vol["secretName"] in secrets, f"volume {m['name']} mounts Secret {vol['secretName']}, which is not rendered"
        assert m.get("readOnly") is True
        mode = vol.get("defaultMode", 0o644)
        assert mode & 0o077 == 0, f"secret files must be private, defaultMode of {m['name']} is {oct(mode)}"
        assert "items" not in vol and "subPath" not in m, "every key of the Secret is a file under its mount"
        secret = secrets[vol["secretName"]]
        secret_mounts[m["mountPath"].rstrip("/")] = (vol["secretName"],
                                                     set(secret.get("stringData", {})) | set(secret.get("data", {})))
    assert secret_mounts, "no Secret is mounted"
    mounted = {name for name, _ in secret_mounts.values()}
    assert mounted == set(secrets), f"Secrets not mounted: {sorted(set(secrets) - mounted)}"

    used = {name: set() for name in secrets}
    for section, key in sorted(SECRET_FILE_SETTINGS):
        path = conf.get(section, {}).get(key)
        assert path, f"{section}.{key} is not set: that secret would be missing"
        directory, file_name = os.path.split(path)
        assert directory in secret_mounts, f"{section}.{key}={path} is not under a Secret mount ({list(secret_mounts)})"
        secret_name, keys = secret_mounts[directory]
        assert file_name in keys, f"{section}.{key}={path}: Secret {secret_name} has no key {file_name!r} ({sorted(keys)})"
        used[secret_name].add(file_name)
        inline = key.replace("_file", "")
        assert inline not in conf.get(section, {}), f"{section}.{inline} is inline in the ConfigMap"
    for directory, (secret_name, keys) in secret_mounts.items():
        assert keys == used[secret_name], f"keys of Secret {secret_name} no setting reads: {sorted(keys - used[secret_name])}"
    for secret in secrets.values():
        for value in list(secret.get("stringData", {}).values()):
            assert value.startswith("CHANGE-ME"), "the shipped Secret values must be marked as placeholders"

    for e in c.get("env", []):
        assert not re.search(r"PASSWORD|SECRET|KEY", e["name"]) or "valueFrom" in e, \
            f"environment variable {e['name']} carries a secret inline"


def test_archive_store_is_off_and_its_commented_settings_are_ready():
    """Backups are off as shipped (a store that cannot be read would keep a new mysql-0 from
    initializing); uncommenting the [archive] section's example lines gives settings replboot
    accepts, with the key and the credentials already pointing into the mounted Secret."""
    by_kind = render()
    text = config_toml(by_kind)
    conf = tomllib.loads(text)
    assert "store" not in conf.get("archive", {}), "archive.store is set in the shipped replboot.toml"
    lines, section, uncommented = [], None, []
    for line in text.splitlines():
        if m := re.match(r"^\[([a-z.]+)\]", line):
            section = m.group(1)
        if section == "archive" and (m := re.match(r"^# ((store|endpoint|addressing|schedule) = .*)$", line)):
            line = m.group(1)
            uncommented.append(m.group(2))
        lines.append(line)
    assert sorted(uncommented) == ["addressing", "endpoint", "schedule", "store"], uncommented
    ready = tomllib.loads("\n".join(lines))["archive"]
    assert ready["store"].startswith("s3://") and ready["endpoint"].startswith("https://"), ready
    with tempfile.TemporaryDirectory(prefix="replboot-k8s-") as d:
        path = os.path.join(d, "replboot.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run([replboot_bin(), "config", "render", "--config", path, "--hostname", "mysql-0",
                            "--flavour", "mariadb"], capture_output=True, text=True, env=node_env(), timeout=60)
        assert r.returncode == 0, f"config render with the store on exited {r.returncode}: {r.stderr.strip()}"


def test_fsgroup_is_the_image_mysql_group():
    by_kind = render()
    sts = one(by_kind, "StatefulSet", "mysql")
    with open(os.path.join(source_dir(), "Dockerfile")) as f:
        dockerfile = f.read()
    m = re.search(r"groupadd\b[^\n]*--gid (\d+) mysql", dockerfile)
    assert m, "the Dockerfile no longer creates the mysql group with a fixed gid"
    assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == int(m.group(1))
    sc = container(sts).get("securityContext", {})
    assert not sc.get("privileged", False)
    assert sc.get("allowPrivilegeEscalation") is False


def test_configmap_toml_is_accepted_by_replboot_config_render():
    by_kind = render()
    toml_text = config_toml(by_kind)
    with tempfile.TemporaryDirectory(prefix="replboot-k8s-") as d:
        path = os.path.join(d, "replboot.toml")
        with open(path, "w") as f:
            f.write(toml_text)
        env = node_env()
        for host, server_id, replica in (("mysql-0", 100, False), ("mysql-1", 101, True), ("mysql-2", 102, True)):
            r = subprocess.run([replboot_bin(), "config", "render", "--config", path, "--hostname", host,
                                "--flavour", "mariadb"], capture_output=True, text=True, env=env, timeout=60)
            assert r.returncode == 0, f"config render --hostname {host} exited {r.returncode}: {r.stderr.strip()}"
            assert re.search(rf"^server[-_]id\s*=\s*{server_id}$", r.stdout, re.M), r.stdout
            has_read_only = re.search(r"^read[-_]only\s*=\s*(ON|1)\s*$", r.stdout, re.M | re.I) is not None
            assert has_read_only == replica, f"{host}: read_only {'missing' if replica else 'set'}:\n{r.stdout}"
            # The pass-through options reach mysqld.
            assert re.search(r"^innodb[-_]buffer[-_]pool[-_]size\s*=\s*256M$", r.stdout, re.M), r.stdout


if __name__ == "__main__":
    run_tests(globals())
