"""Slow receivers against a real donor (issue 22, fair fan-out): a real mariadbd, `replboot
serve-backup` running mariabackup, and `replboot clone`s, one of them behind a relay that reads
the donor's stream slowly.

- In a shared backup run, a receiver that takes one chunk every few seconds is dropped within
  the slow window (backup.fanout_slow_window_ms), named in the donor's log and counted, and the
  receiver sharing the run with it commits exactly the donor's rows.
- A lone receiver that reads a trickle cannot hold the donor's one backup slot: it is given up
  at its frame deadline (10 s plus the frame at backup.min_send_rate_kib), long before
  backup.idle_timeout, and the next clone is served.

The relay's socket buffers are kept small so that the kernel cannot absorb the stream for it.
"""
import os
import socket
import threading
import time

from clone_test import BACKUP_PASSWORD, ROWS, assert_good_clone, cluster, read_log
from replboot_harness import free_port, replboot_bin, run_tests, wait_until


class SlowReadingRelay:
    """Forwards a TCP connection. Donor → receiver, after the first `free` bytes (the handshake),
    it forwards `chunk` bytes at a time, then waits `interval` seconds: a receiver that takes one
    chunk every few seconds."""

    def __init__(self, upstream, chunk, interval, free=256 << 10):
        self.upstream = upstream
        self.chunk = chunk
        self.interval = interval
        self.free = free
        self.port = free_port("127.0.0.1")
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(4)
        self.stopped = threading.Event()
        self.sockets = []
        self.forwarded = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Small buffers on the donor's side: what the donor sends waits in its own socket.
            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
            up.connect(self.upstream)
            self.sockets += [client, up]
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src, dst, paced):
        try:
            while not self.stopped.is_set():
                if not paced or self.forwarded < self.free:
                    data = src.recv(1 << 16)
                else:
                    data = b""
                    while len(data) < self.chunk:
                        more = src.recv(self.chunk - len(data))
                        if not more:
                            break
                        data += more
                if not data:
                    break
                dst.sendall(data)
                if paced:
                    self.forwarded += len(data)
                    if self.forwarded >= self.free:
                        time.sleep(self.interval)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stopped.set()
        for s in [self.listener, *self.sockets]:
            try:
                s.close()
            except OSError:
                pass


def spawn_clone(c, name, hostname, source, datadir):
    cfg = c.config(name, datadir=datadir, hostname=hostname)
    return c.h.spawn([replboot_bin(), "clone", "--config", cfg, "--from", source], log_name=name)


def test_a_receiver_taking_a_chunk_every_few_seconds_is_dropped_and_the_other_commits():
    c = cluster()
    # A donor that waits 3 s for others to share its run, and holds a slow one back 4 s at most.
    donor = c.serve(c.h.addr(4), "serve-shared", window_ms=3000,
                    extra="fanout_grace_ms = 4000\nfanout_slow_window_ms = 10000\nfanout_buffer_mb = 2\n")
    # One stream frame (1 MiB) every 3 s: each wait is shorter than the 4 s grace, so the old rule
    # (a full queue for the grace without a break) never dropped it, and the run crawled at its
    # pace; the hold time added up over the slow window does.
    relay = SlowReadingRelay((donor.addr, 3307), (1 << 20) + 64, 3.0)
    try:
        fast_dir = c.h.path("fair-fast-data")
        slow_dir = c.h.path("fair-slow-data")
        slow = spawn_clone(c, "fair-slow", "mysql-2", relay.address, slow_dir)
        fast = spawn_clone(c, "fair-fast", "mysql-1", f"{donor.addr}:3307", fast_dir)
        wait_until(lambda: "event=backup_receiver_dropped" in read_log(donor), 60,
                   "the donor to drop the slow receiver")
        text = read_log(donor)
        started = [line for line in text.splitlines() if "event=backup_started" in line]
        assert started and "receivers=2" in started[0], started
        dropped = [line for line in text.splitlines() if "event=backup_receiver_dropped" in line]
        assert len(dropped) == 1 and "peer=mysql-2/" in dropped[0], dropped
        assert "while mysql-1 waited" in dropped[0], dropped  # the rule names whom it held back
        assert fast.wait(timeout=120) == 0, read_log(fast)[-3000:]
        assert_good_clone(c, fast_dir, 1)
        # The slow one learns why when it reads that far, or retries; either way it never commits
        # from the run it was dropped from.
        slow.kill()
        slow.wait(timeout=30)
        assert not os.path.exists(os.path.join(slow_dir, "replboot-clone.json"))
        print(f"the slow receiver was dropped after the relay forwarded {relay.forwarded} bytes")
    finally:
        relay.close()


def test_a_trickle_reader_cannot_hold_the_donors_slot():
    c = cluster()
    donor = c.serve(c.h.addr(5), "serve-trickle", extra="idle_timeout = 300\n")
    # 8 KiB every half second: 16 KiB/s, under backup.min_send_rate_kib (256) but never idle.
    relay = SlowReadingRelay((donor.addr, 3307), 8 << 10, 0.5)
    try:
        t0 = time.time()
        trickle = spawn_clone(c, "trickle", "mysql-2", relay.address, c.h.path("trickle-data"))
        wait_until(lambda: "did not take a frame within" in read_log(donor), 90,
                   "the donor to give the trickle reader up at its frame deadline")
        given_up = time.time() - t0
        print(f"the trickle reader was given up after {given_up:.1f}s (idle_timeout 300 s)")
        # The slot is free again: the next clone is served and commits.
        ok_dir = c.h.path("after-trickle-data")
        ok = spawn_clone(c, "after-trickle", "mysql-1", f"{donor.addr}:3307", ok_dir)
        assert ok.wait(timeout=120) == 0, read_log(ok)[-3000:]
        assert_good_clone(c, ok_dir, 1)
        trickle.kill()
        trickle.wait(timeout=30)
        assert BACKUP_PASSWORD not in read_log(donor)
    finally:
        relay.close()


if __name__ == "__main__":
    assert ROWS > 0
    run_tests(globals())
