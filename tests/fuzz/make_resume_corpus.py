#!/usr/bin/env python3
"""Writes the seed corpus for resume_fuzz (tests/fuzz/resume_corpus): durable points (the
replboot-resume.json a clone keeps in staging; plain and compressed runs, and a few that must be
refused), journals of names (replboot-resume.files) and resume HELLOs (version 4, with and
without a compression request; a version 3 one that is refused). Each file starts with the
fuzzer's selector byte (see resume_fuzz.cc: 0 state, 1 journal, 2 HELLO). Re-run to
regenerate: tests/fuzz/make_resume_corpus.py"""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resume_corpus")

RESUME_ID = "00112233445566778899aabbccddeeff"
CHAIN = "5a" * 32


def header(compression="off", level=0):
    return json.dumps({
        "protocol": 4, "flavour": "mariadb", "server_version": "10.11.6-MariaDB",
        "tool": "mariabackup", "tool_version": "mariabackup based on MariaDB server 10.11.6",
        "estimated_bytes": 268435456, "cluster_id": "", "run_id": 7, "run_receivers": 1,
        "compression": compression, "compression_level": level, "resume_id": RESUME_ID,
        "checkpoint_bytes": 4194304, "resumed_from": 0}, separators=(",", ":"))


def state(**over):
    s = {"version": 1, "donor": "10.0.0.1:3307", "header": header(), "run_id": 7,
         "resume_id": RESUME_ID, "offset": 8389120, "frame_offset": 8388608, "chain": CHAIN,
         "journal_bytes": 27, "checkpoint_bytes": 4194304,
         "open_files": [{"path": "ibdata1", "next": 6291456, "written": 6291456, "logical": 0},
                        {"path": "app/t.ibd", "next": 65536, "written": 65536, "logical": 98304}]}
    s.update(over)
    return json.dumps(s, separators=(",", ":")) + "\n"


def journal(records):
    out = b""
    for kind, *paths in records:
        out += kind.encode()
        for p in paths:
            out += struct.pack("<H", len(p)) + p.encode()
    return out


def identity(name, ordinal):
    out = bytes([len(name)]) + name.encode()
    return out + (b"\x01" + struct.pack(">I", ordinal) if ordinal is not None else b"\x00")


def hello(version, mode, name="mysql-2", ordinal=2, compress=(0, 0), resume=True):
    out = b"replboot-backup" + struct.pack(">H", version) + bytes([mode]) + identity(name, ordinal)
    if version >= 4:
        out += bytes(compress)
    if resume:
        out += bytes.fromhex(RESUME_ID) + struct.pack(">QQ", 7, 8388608) + bytes.fromhex(CHAIN)
    return out


def main():
    os.makedirs(HERE, exist_ok=True)
    seeds = {
        "state": b"\x00" + state().encode(),
        "state_compressed": b"\x00" + state(header=header("zstd", 1)).encode(),
        "state_auto": b"\x00" + state(header=header("auto", 3), open_files=[]).encode(),
        "state_outside_frame": b"\x00" + state(offset=8388608 + 1048576).encode(),
        "state_other_stream": b"\x00" + state(run_id=8).encode(),
        "state_bad_path": b"\x00" + state(open_files=[
            {"path": "../etc/passwd", "next": 0, "written": 0, "logical": 0}]).encode(),
        "journal": b"\x01" + journal([("C", "ibdata1"), ("C", "app/t.ibd"),
                                      ("R", "app/t.ibd", "app/u.ibd"), ("D", "ibdata1")]),
        "journal_cut": b"\x01" + journal([("C", "ibdata1"), ("C", "app/t.ibd")])[:-3],
        "journal_dotdot": b"\x01" + journal([("C", "../x")]),
        "hello_resume": b"\x02" + hello(4, 2),
        "hello_resume_zstd": b"\x02" + hello(4, 2, compress=(1, 3)),
        "hello_resume_auto_noname": b"\x02" + hello(4, 2, name="", ordinal=None, compress=(2, 0)),
        "hello_resume_v3": b"\x02" + hello(3, 2),
        "hello_backup_v4": b"\x02" + hello(4, 0, compress=(1, 1), resume=False),
    }
    for name, data in seeds.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
