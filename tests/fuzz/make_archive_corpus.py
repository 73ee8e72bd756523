#!/usr/bin/env python3
"""Writes the seed corpus for archive_fuzz (tests/fuzz/archive_corpus): a manifest and checks
document for the JSON targets, object-shaped bytes for OpenObject, a zstd frame for the target
behind the tag, and text for the round trip. Each file starts with the fuzzer's selector byte
(see archive_fuzz.cc). Re-run to regenerate: tests/fuzz/make_archive_corpus.py"""
import json
import os
import struct
import subprocess
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "archive_corpus")

MANIFEST = {
    "format": 1, "backup_id": "20261207T061500Z", "cluster_id": "c0ffee00-1111",
    "node": "mysql-1", "flavour": "mariadb", "server_version": "10.11.6-MariaDB",
    "tool_version": "mariabackup 10.11.6", "gtid_position": "0-100-1234",
    "binlog_file": "mysql-bin.000042", "binlog_position": 98765,
    "started_at_ms": 1796624100000, "finished_at_ms": 1796624160000,
    "logical_bytes": 4196, "stored_bytes": 2150, "key_id": "0123456789abcdef",
    "compression": "zstd:1", "object_bytes": 4096,
    "objects": [
        {"index": 0, "logical_bytes": 4096, "stored_bytes": 2000, "sha256": "a" * 64},
        {"index": 1, "logical_bytes": 100, "stored_bytes": 150, "sha256": "b" * 64},
    ],
    "mac": "0" * 64,
}
CHECKS = {
    "format": 1, "backup_id": "20261207T061500Z", "key_id": "0123456789abcdef",
    "verified_at_ms": 1796700000000, "verify_error": "", "restore_tested_at_ms": 0,
    "restore_test_error": "", "restore_test_tables": 12, "restore_test_rows": 1000000,
    "restore_test_seconds": 93.25, "mac": "0" * 64,
}


def zstd_frame(data):
    return subprocess.run(["zstd", "-q", "-c", "-1"], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def binlog_event(etype, ts, server_id, payload):
    header = struct.pack("<IBIII", ts, etype, server_id, 19 + len(payload) + 4, 0) + b"\0\0"
    body = header + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xffffffff)


def binlog(seqs, start=9):
    """A MariaDB binlog file: Format_description, Gtid_list, then GTID + rows + XID each."""
    post = bytearray(168)
    post[2 - 1] = 13
    post[162 - 1] = 19
    fde = struct.pack("<H", 4) + b"10.11.6-MariaDB".ljust(50, b"\0") + struct.pack("<I", 1) \
        + bytes([19]) + bytes(post) + bytes([1])
    out = b"\xfebin" + binlog_event(15, 1, 100, fde)
    out += binlog_event(163, 1, 100, struct.pack("<I", 1) + struct.pack("<IIQ", 0, 100, start))
    for seq in seqs:
        gtid = struct.pack("<QIB", seq, 0, 4).ljust(19, b"\0")
        out += binlog_event(162, 1800000000 + seq, 100, gtid)
        out += binlog_event(19, 1800000000 + seq, 100, bytes(range(40)))
        out += binlog_event(16, 1800000000 + seq, 100, struct.pack("<Q", seq))
    return out


def main():
    os.makedirs(HERE, exist_ok=True)
    manifest = json.dumps(MANIFEST, indent=1).encode()
    checks = json.dumps(CHECKS, indent=1).encode()
    page = b"".join(b"%011d-" % (i * 7919 % 100000000000) for i in range(200))
    seeds = {
        "manifest_raw": b"\x00" + manifest,
        "manifest_remac": b"\x01" + manifest,
        "manifest_remac_empty": b"\x01" + json.dumps(
            dict(MANIFEST, objects=[], logical_bytes=0, stored_bytes=0)).encode(),
        "checks_raw": b"\x02" + checks,
        "checks_remac": b"\x03" + checks,
        # magic, version, logical size, nonce, a few bytes, tag
        "object": b"\x04" + b"RBAO\x01" + struct.pack("<Q", 100) + bytes(12) + bytes(30)
                  + bytes(16),
        "object_truncated": b"\x04" + b"RBAO\x01" + struct.pack("<Q", 100),
        "behind_tag": b"\x05" + struct.pack("<I", len(page))[:3] + zstd_frame(page),
        "round_trip": b"\x06\x00" + page,
        "segment_key": b"\x07" + b"binlogs/7c9e6679-7425-40de-944b-e07fc1f90ae7/"
                       b"00000000000000000010-00000000000000000025_1800000011-1800000025_15_"
                       b"0-100-11_0-100-25_0-100-10_0-100-25.seg",
        "binlog": b"\x08" + binlog(range(10, 30)),
        "binlog_cut": b"\x08" + binlog(range(10, 13))[:-7],
        "segment_object": b"\x09" + b"RBAO\x01" + struct.pack("<Q", 100) + bytes(12) + bytes(30)
                          + bytes(16),
        "history": b"\x0a" + json.dumps({
            "format": 1, "id": "fuzz", "cluster_id": "c0ffee00", "parent": "c0ffee00",
            "branch_state": "0-100-41", "backup_id": "20261207T061500Z",
            "target": "time 2026-12-07T10:41:59Z", "created_at_ms": 1796624100000,
            "key_id": "0123456789abcdef", "mac": "0" * 64}).encode(),
        "targets": b"\x0b" + b"0-100-41,1-101-7",
        "targets_time": b"\x0b" + b"2026-12-06T11:41:59+01:00",
    }
    for name, data in seeds.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
