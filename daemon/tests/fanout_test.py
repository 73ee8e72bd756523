"""Four replicas added at once share one backup of their donor (issue 12), end to end.

mysql-0 (the primary, with some data) is ready; mysql-1..4 start together with empty datadirs,
as a StatefulSet with podManagementPolicy Parallel starts them. Each probes its lower peers
from the nearest down (none of them is ready: the authenticated probe fails there) to mysql-0,
and asks it for a backup within its fan-out window (backup.fanout_window_ms, default 5 s), so
mysql-0 runs mariabackup ONCE and streams it to the four, each over its own authenticated TLS
session. mysql-0 is slowed down (backup.bandwidth_limit) so the stream lasts some seconds, and
mysql-4's replboot is SIGKILLed in the middle of it: the other three finish and are ready with
CHECKSUM TABLE equal to the primary's, mysql-0's /metrics count one backup run for them (and its
log says the run had four receivers), its /status lists mysql-4 as gone. Restarted, mysql-4
converges: it throws its partial staging dir away, clones again (from a ready peer) and
replicates.

The cluster nodes are daemon/tests/cluster_test.py's (TLS backups, a resolv.conf naming the
test's dnsmasq, root SQL over the socket).
"""
import os
import re
import signal
import time

from cluster_test import SECRETS, Node, table_state
from replboot_harness import Dnsmasq, Harness, LeakWatcher, make_pki, run_tests, wait_until

REPLICAS = 4
# The donor's read rate: the ~40 MB stream of this dataset takes about ten seconds.
DONOR_BYTES_PER_S = 4 * 1000 * 1000


def metric(node, name):
    code, body = node.get("/metrics")
    assert code == 200, (node.name, code)
    m = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    assert m, f"{name} not in {node.name}'s /metrics"
    return float(m.group(1))


def test_four_replicas_at_once_share_one_backup_and_a_killed_one_converges():
    t0 = time.time()

    def step(text):
        print(f"[{time.time() - t0:6.1f}s] {text}", flush=True)

    with Harness("fanout") as H:
        # Only mysql-0 is in DNS at first: a pod that does not exist yet has no name (a primary
        # with an empty datadir waits for every peer that is in DNS, see primary_recovery.h).
        dns = Dnsmasq(H, H.addr(9), port=53)
        dns.add_host("mysql-0.mysql", H.addr(0))
        dns.start()
        names = [f"mysql-{i}" for i in range(REPLICAS + 1)]
        make_pki(H.path("pki"), names)
        nodes = [Node(H, i, dns) for i in range(REPLICAS + 1)]
        primary, replicas = nodes[0], nodes[1:]
        killed = replicas[-1]
        watcher = LeakWatcher(SECRETS, scope=H.dir).start()

        step("starting mysql-0")
        # The production window (FAST_CLUSTER_SETTINGS shortens it for the other tests).
        primary.start(["--set", f"backup.bandwidth_limit={DONOR_BYTES_PER_S}", "--set", "backup.fanout_window_ms=5000"])
        primary.wait_http("/ready", 200, 180, "the primary")
        # About 20 MB of rows on top of the system tablespaces.
        r = primary.app_sql("CREATE TABLE app.t (id INT PRIMARY KEY, origin VARCHAR(16) NOT NULL, "
                            "pad VARCHAR(1000) NOT NULL) ENGINE=InnoDB;"
                            "USE app; INSERT INTO app.t SELECT seq, 'seed', REPEAT(MD5(seq), 25) FROM seq_1_to_20000;")
        assert r.returncode == 0, r.stderr.decode()
        want = table_state(primary)
        step(f"mysql-0 ready with {want['count']} rows, checksum {want['checksum']}")

        step(f"starting mysql-1..{REPLICAS} at once")
        for i in range(1, REPLICAS + 1):
            dns.add_host(f"mysql-{i}.mysql", H.addr(i))
        dns.reload()
        for node in replicas:
            node.start()

        # All four join one run on mysql-0; each receiver's /status says its bytes come from a
        # run shared by four.
        def streaming_to_all():
            s = primary.status()
            receivers = {r["name"]: r for r in s["backup"]["receivers"] if r["state"] == "streaming"}
            return len(receivers) == REPLICAS and receivers.get(killed.name, {}).get("bytes_sent", 0) > 1_000_000 \
                and receivers
        receivers = wait_until(streaming_to_all, 120, "mysql-0 streaming to the four replicas", interval=0.2)
        step(f"mysql-0 streams one backup to {sorted(receivers)}")
        clone = replicas[0].status()["clone"]
        assert clone["phase"] == "streaming" and clone["donor_run_receivers"] == REPLICAS \
            and clone["donor_run_shared"] is True, clone
        assert clone["donor"] == f"{primary.addr}:3307", clone

        # mysql-4 dies in the middle of the stream.
        os.kill(killed.proc.pid, signal.SIGKILL)
        killed.proc.wait(timeout=30)
        step(f"{killed.name} killed mid-stream")

        for node in replicas[:-1]:
            node.wait_http("/ready", 200, 300, "replicating after the shared clone")
            m = re.search(r"event=clone_done peer=(\S+)", node.log())
            assert m and m.group(1) == f"{primary.addr}:3307", (node.name, m and m.group(0))
        step("mysql-1..3 ready")
        assert metric(primary, "replboot_backup_runs_total") == 1
        assert metric(primary, "replboot_backups_served_total") == REPLICAS - 1
        log0 = primary.log()
        started = re.findall(r"event=backup_started run=(\d+) receivers=(\d+)", log0)
        assert started == [("1", str(REPLICAS))], started
        # The killed receiver had its HEADER: the donor keeps it detached for
        # backup.resume_window (spooling the run), so its restart may resume.
        backup = primary.status()["backup"]
        held = {r["name"]: r for r in backup["receivers"]}
        assert held.get(killed.name, {}).get("state") == "detached", backup
        assert backup["resume"]["receivers_detached"] == 1, backup
        assert "event=backup_run_finished run=1" in log0, log0[-3000:]

        # Restarted, the killed one resumes from its durable point, or clones afresh when it had
        # none, and converges either way.
        step(f"restarting {killed.name}")
        killed.start()
        killed.wait_http("/ready", 200, 300, "replicating after the second clone")
        m = re.search(r"event=clone_done peer=(\S+)", killed.log())
        assert m, killed.log()[-3000:]
        step(f"{killed.name} ready, cloned again from {m.group(1)}")

        for node in nodes:
            got = table_state(node)
            assert got["count"] == want["count"] and got["checksum"] == want["checksum"], (node.name, got["count"],
                                                                                             got["checksum"], want)
        step(f"CHECKSUM TABLE equal on all {len(nodes)} nodes")
        watcher.stop()
        assert "mariabackup" in watcher.seen_comms, watcher.seen_comms
        assert not watcher.found, f"secrets seen in processes: {watcher.found[:5]}"
        for node in reversed(nodes):
            node.stop()
    step("done")


if __name__ == "__main__":
    run_tests(globals())
