#!/usr/bin/env python3
"""Writes the seed corpus for xbstream_fuzz: small valid streams of each chunk type and
damaged variants (truncated, bit-flipped, '../' path, bad lengths). Each file starts
with the fuzzer's control byte. Re-run to regenerate: tests/fuzz/make_corpus.py"""
import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def hdr(t, path, flags=0):
    p = path.encode()
    return b"XBSTCK01" + bytes([flags, ord(t)]) + struct.pack("<I", len(p)) + p


def P(path, data, off, flags=0):
    return hdr("P", path, flags) + struct.pack("<QQI", len(data), off, zlib.crc32(data)) + data


def E(path):
    return hdr("E", path)


def S_sparse(path, off, runs, data):
    m = b"".join(struct.pack("<II", s, l) for s, l in runs)
    crc = zlib.crc32(data, zlib.crc32(m))
    return hdr("S", path) + struct.pack("<IQQI", len(runs), len(data), off, crc) + m + data


def S_seek(path, off):
    return hdr("S", path) + struct.pack("<Q", off)


def R(a, b):
    return hdr("R", a) + struct.pack("<I", len(b)) + b.encode()


def D(path):
    return hdr("D", path)


seeds = {
    "valid_simple": P("ibdata1", b"hello world" * 5, 0) + E("ibdata1"),
    "valid_interleaved": P("ibdata1", b"A" * 40, 0) + P("db/t.ibd", b"B" * 30, 0) +
    P("ibdata1", b"C" * 20, 40) + E("db/t.ibd") + E("ibdata1") + E("mysql/slow_log.CSV"),
    "valid_mariadb_ops": P("f", b"AAAAAAAAAA", 0) + S_seek("f", 2) + P("f", b"bb", 2) + E("f") +
    R("f", "g/h") + P("x", b"1", 0) + E("x") + D("x") + P("f2", b"new", 0, flags=2) + E("f2"),
    "valid_percona_sparse": S_sparse("t.ibd", 0, [(0, 3), (5, 2), (10, 0)], b"abcde") +
    P("t.ibd", b"Z", 20) + E("t.ibd"),
}
bad = {
    "truncated": seeds["valid_interleaved"][:77],
    "bitflip": bytearray(seeds["valid_simple"]),
    "dotdot": P("../evil", b"x", 0) + E("../evil"),
    "abs": P("/etc/x", b"x", 0),
    "huge_len": hdr("P", "f") + struct.pack("<QQI", 2**63, 0, 0),
    "long_path": b"XBSTCK01\x00P" + struct.pack("<I", 512) + b"a" * 512,
    "unknown_type": P("a", b"x", 0) + hdr("Q", "a", 1) + struct.pack("<QQI", 3, 1, 0) + b"ZZZ",
    "sparse_many": hdr("S", "t") + struct.pack("<IQQI", 0xFFFFFFFF, 0, 0, 0),
    "gap": P("a", b"12345", 0) + P("a", b"6789", 9) + E("a"),
}
bad["bitflip"][60] ^= 4
bad["bitflip"] = bytes(bad["bitflip"])

os.makedirs(HERE, exist_ok=True)
for i, (name, data) in enumerate(list(seeds.items()) + list(bad.items())):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([i * 37 % 256]) + data)
print(f"wrote {len(seeds) + len(bad)} seeds to {HERE}")
