"""A moto S3 server and a fault proxy in front of it, driven over stdin/stdout, for tests
written in another language (store/tests/s3_store_integration_test.cc).

    python3 s3_fixture.py WORKDIR

prints one JSON line, {"endpoint": moto, "proxy": the proxy, "access_key_id", "secret_access_key",
"region"}, then answers each JSON command line on stdin with one JSON line ({"ok": true, ...}
or {"ok": false, "error": ...}):

    {"cmd": "create_bucket", "name": "b"}
    {"cmd": "fail", "count": 2, "status": 500, "code": "InternalError"}
    {"cmd": "cut_after", "bytes": 4096, "count": 1}
    {"cmd": "cut_all"}    {"cmd": "restore"}
    {"cmd": "delay", "seconds": 1.5}
    {"cmd": "serialize", "on": true}
    {"cmd": "reset"}      (every knob off)
    {"cmd": "requests"}   -> {"ok": true, "requests": N} (requests the proxy received)

It stops the proxy and moto (the whole process group) at EOF on stdin, on SIGTERM, and,
through PR_SET_PDEATHSIG, when its parent dies.
"""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fault_proxy import FaultProxy  # noqa: E402
from moto_harness import MotoServer  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: s3_fixture.py WORKDIR")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with MotoServer(sys.argv[1]) as moto, FaultProxy(
            (moto.host, moto.port), sigv4=(moto.access_key_id, moto.secret_access_key,
                                           moto.region)) as proxy:
        print(json.dumps({"endpoint": moto.endpoint, "proxy": proxy.address,
                          "access_key_id": moto.access_key_id,
                          "secret_access_key": moto.secret_access_key,
                          "region": moto.region}), flush=True)
        for line in sys.stdin:
            try:
                cmd = json.loads(line)
                reply = {"ok": True}
                c = cmd["cmd"]
                if c == "create_bucket":
                    moto.create_bucket(cmd["name"])
                elif c == "fail":
                    proxy.fail_next(cmd["count"], cmd["status"], cmd["code"])
                elif c == "cut_after":
                    proxy.cut_after_body_bytes(cmd["bytes"], cmd.get("count", 1))
                elif c == "cut_all":
                    proxy.cut_all()
                elif c == "restore":
                    proxy.restore()
                elif c == "delay":
                    proxy.set_delay(cmd["seconds"])
                elif c == "serialize":
                    proxy.set_serialize(cmd["on"])
                elif c == "reset":
                    proxy.reset()
                elif c == "requests":
                    reply["requests"] = proxy.requests
                else:
                    reply = {"ok": False, "error": f"unknown command {c!r}"}
            except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
