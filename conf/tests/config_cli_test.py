"""`replboot config render|show|keys` end to end: exit codes, layering, --out, redaction,
and the rendered MariaDB files accepted by the real mariadbd."""
import os
import shutil
import subprocess

from replboot_harness import Harness, node_env, replboot_bin, run_tests, write_private

SECRET = "pw-" + "Zq8" * 4  # distinctive, so a leak is unambiguous


def clean_env(**extra):
    """The harness's environment for replboot (no REPLBOOT_* settings), with `extra`."""
    return dict(node_env(), **extra)


def replboot(*args, env=None):
    return subprocess.run([replboot_bin(), *args], capture_output=True, text=True, timeout=30,
                          env=env if env is not None else clean_env())


def test_render_replica_prints_server_id_and_read_only():
    r = replboot("config", "render", "--hostname", "mysql-2", "--flavour", "mariadb")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "server-id=102" in lines, r.stdout
    assert "read_only=ON" in lines, r.stdout
    assert "log_slave_updates=ON" in lines
    assert "skip_slave_start=ON" in lines


def test_render_primary_mysql_flavour():
    r = replboot("config", "render", "--hostname", "db-west-0", "--flavour", "mysql")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "server-id=100" in lines
    assert "read_only=OFF" in lines and "super_read_only=OFF" in lines
    assert "gtid_mode=ON" in lines and "enforce_gtid_consistency=ON" in lines
    assert "report-host=db-west-0.mysql" in lines


def test_hostname_without_ordinal_exits_2():
    for bad in ("mysql", "mysql-", "mysql-x", "mysql-4294967196"):
        r = replboot("config", "render", "--hostname", bad, "--flavour", "mariadb")
        assert r.returncode == 2, (bad, r.returncode, r.stdout, r.stderr)
        assert f"'{bad}'" in r.stderr, r.stderr
        assert "<statefulset>-<ordinal>" in r.stderr, r.stderr
        assert r.stdout == "", r.stdout


def test_out_writes_file_atomically():
    with Harness("conf-out") as h:
        out_dir = h.path("etc", "replboot")  # missing: created like mkdir -p
        r = replboot("config", "render", "--hostname", "mysql-1", "--flavour", "mariadb",
                     "--out", out_dir)
        assert r.returncode == 0, r.stderr
        path = os.path.join(out_dir, "replboot.cnf")
        assert r.stdout.strip() == path, r.stdout
        printed = replboot("config", "render", "--hostname", "mysql-1", "--flavour", "mariadb")
        with open(path) as f:
            assert f.read() == printed.stdout
        assert os.listdir(out_dir) == ["replboot.cnf"], os.listdir(out_dir)  # no temp left
        assert os.stat(path).st_mode & 0o777 == 0o644

        # A file where the directory should be: an I/O error (1), not a config error (2).
        blocker = h.path("blocker")
        open(blocker, "w").close()
        r = replboot("config", "render", "--hostname", "mysql-1", "--flavour", "mariadb",
                     "--out", blocker)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert blocker in r.stderr


def test_layers_file_env_set_flags():
    with Harness("conf-layers") as h:
        toml = h.path("replboot.toml")
        with open(toml, "w") as f:
            f.write('[mysql]\nport = 4000\ndatadir = "/data/file"\nsocket = "/run/file.sock"\n'
                    '[mysql.options]\nmax_connections = 500\nperformance_schema = false\n')
        env = clean_env(REPLBOOT_MYSQL_DATADIR="/data/env", REPLBOOT_MYSQL_PORT="4001",
                        REPLBOOT_MYSQL_OPTIONS_WAIT_TIMEOUT="60")
        r = replboot("config", "render", "--config", toml, "--hostname", "mysql-3",
                     "--flavour", "mariadb", "--set", "mysql.port=4002",
                     "--set", "mysql.options.max_connections=600", env=env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert "socket=/run/file.sock" in lines        # file
        assert "datadir=/data/env" in lines            # env over file
        assert "port=4002" in lines                    # --set over env
        assert "max_connections=600" in lines          # --set over file
        assert "performance_schema=OFF" in lines
        assert "wait_timeout=60" in lines
        # Options come after everything replboot renders.
        assert lines.index("wait_timeout=60") > lines.index("read_only=ON")

        r = replboot("config", "render", "--config", toml, "--hostname", "mysql-3",
                     "--flavour", "mariadb", "--set", "mysql.port=4002", "--port", "4003",
                     env=env)
        assert "port=4003" in r.stdout.splitlines()   # dedicated flag over --set

        # REPLBOOT_CONFIG names the file when --config is absent.
        r = replboot("config", "show", "--hostname", "mysql-3",
                     env=clean_env(REPLBOOT_CONFIG=toml))
        assert r.returncode == 0, r.stderr
        assert f"mysql.port = 4000  # {toml}:2" in r.stdout.splitlines(), r.stdout


def test_errors_name_key_and_origin():
    with Harness("conf-errors") as h:
        toml = h.path("replboot.toml")
        with open(toml, "w") as f:
            f.write("[mysql]\nport = 3306\nprot = 3307\n[dns]\npolicy = 'random'\n")
        r = replboot("config", "show", "--config", toml, "--hostname", "mysql-1",
                     env=clean_env(REPLBOOT_MYSQL_PROT="1", REPLBOOT_LOG_LEVEL="loud"))
        assert r.returncode == 2, r.stderr
        assert "4 configuration problems" in r.stderr, r.stderr
        assert f"unknown setting 'mysql.prot' in {toml}:3 (did you mean mysql.port?)" in r.stderr
        assert "unknown environment variable REPLBOOT_MYSQL_PROT" in r.stderr
        assert f'dns.policy = "random" (from {toml}:5)' in r.stderr
        assert 'log.level = "loud" (from environment variable REPLBOOT_LOG_LEVEL)' in r.stderr

        r = replboot("config", "render", "--hostname", "mysql-1", "--set", "mysql.port=x")
        assert r.returncode == 2
        assert "mysql.port in --set mysql.port: expected an integer, got 'x'" in r.stderr


def test_secret_redacted_and_never_printed():
    with Harness("conf-secret") as h:
        pw_file = write_private(h.path("root-pw"), SECRET + "-file\n")
        env = clean_env(REPLBOOT_MYSQL_ROOT_PASSWORD=SECRET, REPLBOOT_BACKUP_SECRET=SECRET + "b")
        r = replboot("config", "show", "--hostname", "mysql-1", "--set",
                     f"mysql.root_password_file={pw_file}", "--set",
                     f"replication.password={SECRET}r", env=env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert ("mysql.root_password = <redacted>  # environment variable "
                "REPLBOOT_MYSQL_ROOT_PASSWORD") in lines, r.stdout
        assert "replication.password = <redacted>  # --set replication.password" in lines
        assert "backup.secret = <redacted>  # environment variable REPLBOOT_BACKUP_SECRET" in lines
        assert 'cluster.app_password = ""' in lines
        assert SECRET not in r.stdout + r.stderr

        r = replboot("config", "render", "--hostname", "mysql-1", "--flavour", "mariadb", env=env)
        assert r.returncode == 0, r.stderr
        assert SECRET not in r.stdout + r.stderr

        # A misspelt secret variable is refused without echoing its value.
        r = replboot("config", "show", "--hostname", "mysql-1",
                     env=clean_env(REPLBOOT_MYSQL_ROOT_PASWORD=SECRET))
        assert r.returncode == 2
        assert "REPLBOOT_MYSQL_ROOT_PASWORD" in r.stderr
        assert SECRET not in r.stdout + r.stderr


def test_flavour_detection():
    with Harness("conf-flavour") as h:
        r = replboot("config", "render", "--hostname", "mysql-1", "--set",
                     f"mysql.mysqld={h.path('no-such-mysqld')}")
        assert r.returncode == 2, r.stderr
        assert "cannot detect the server flavour" in r.stderr and "--flavour" in r.stderr

        fake = h.path("fake-mysqld")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\necho '/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 "
                    "(MySQL Community Server - GPL)'\n")
        os.chmod(fake, 0o755)
        r = replboot("config", "render", "--hostname", "mysql-1", "--set", f"mysql.mysqld={fake}")
        assert r.returncode == 0, r.stderr
        assert "super_read_only=ON" in r.stdout.splitlines()


def test_real_mariadbd_accepts_rendered_config():
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    assert mariadbd, "mariadbd is not installed"
    with Harness("conf-mariadbd") as h:
        for host, read_only in (("mysql-0", "FALSE"), ("mysql-2", "TRUE")):
            out = h.path(host)
            r = replboot("config", "render", "--hostname", host, "--out", out,
                         "--set", "mysql.options.init_connect=SET NAMES 'utf8mb4' # utf8",
                         "--set", "mysql.options.max_connections=77")
            assert r.returncode == 0, r.stderr
            cnf = r.stdout.strip()
            # Without --flavour the flavour came from `mariadbd --version`.
            assert "(replica, mariadb)" in open(cnf).read() or host == "mysql-0"
            # --help --verbose parses every option and refuses unknown ones.
            v = subprocess.run([mariadbd, f"--defaults-file={cnf}", "--verbose", "--help"],
                               capture_output=True, text=True, timeout=60)
            assert v.returncode == 0, v.stderr[-2000:]
            values = {}
            for line in v.stdout.splitlines():
                parts = line.split(None, 1)
                if len(parts) == 2:
                    values[parts[0]] = parts[1].strip()
            assert values["server-id"] == str(100 + int(host[-1])), values.get("server-id")
            assert values["read-only"] == read_only
            assert values["log-bin"] == "mysql-bin"
            assert values["gtid-strict-mode"] == "TRUE"
            assert values["skip-slave-start"] == "TRUE"
            assert values["max-connections"] == "77"
            # The quoted value survives mysqld's option-file parser.
            assert values["init-connect"] == "SET NAMES 'utf8mb4' # utf8", values["init-connect"]


def test_managed_options_refused_in_every_spelling():
    """On a replica, read_only is what keeps it from diverging: no spelling may override it."""
    for name in ("read_only", "skip-read-only", "loose-read_only", "read-only", "Loose-Skip-Read-Only",
                 "disable-read-only", "read_o", "skip-super-read-only", "loose-server-id", "loose-port"):
        r = replboot("config", "render", "--hostname", "mysql-2", "--flavour", "mariadb",
                     "--set", f"mysql.options.{name}=1")
        assert r.returncode == 2, (name, r.returncode, r.stdout)
        assert f"mysql.options.{name}" in r.stderr and "replboot manages this option" in r.stderr, r.stderr


def test_short_backup_secret_is_a_configuration_error():
    r = replboot("config", "show", "--hostname", "mysql-1",
                 env=clean_env(REPLBOOT_BACKUP_SECRET="short-Zq8Zq8"))
    assert r.returncode == 2, (r.returncode, r.stdout)
    assert "backup.secret = <redacted>" in r.stderr and "at least 16 bytes" in r.stderr, r.stderr
    assert "short-Zq8Zq8" not in r.stderr + r.stdout


def test_keys_lists_every_setting():
    r = replboot("config", "keys")
    assert r.returncode == 0, r.stderr
    assert any(l.startswith("mysql.root_password ") and "REPLBOOT_MYSQL_ROOT_PASSWORD" in l
               and "(secret)" in l for l in r.stdout.splitlines()), r.stdout


if __name__ == "__main__":
    run_tests(globals())
