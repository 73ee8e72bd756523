"""A real S3 server for tests: moto_server (Python moto 5.2.1) on loopback, with authentication on.

    from moto_harness import MotoServer
    with MotoServer(workdir) as moto:            # starts moto, creates an IAM user with s3:*
        moto.create_bucket("backups")            # a SigV4-signed request with that user's key
        moto.endpoint                            # "http://127.0.0.1:<port>"
        moto.access_key_id, moto.secret_access_key
        moto.request("GET", "/backups", query={"list-type": "2"})  # any signed S3 request
    # moto's whole process group is gone here, even when the block raised

Why authentication: moto accepts anything unless INITIAL_NO_AUTH_ACTION_COUNT is set; then the
first N actions are unauthenticated and every later one must carry a valid SigV4 signature of a
known access key whose IAM policy allows the action. We start it with N = 3 and spend exactly
those three on CreateUser, CreateAccessKey and PutUserPolicy (s3:* on *). From then on a wrong
secret gets 403 SignatureDoesNotMatch, as from AWS. (moto's IAM checks no signature during the
three: the Authorization header we send then only tells moto's router that the request is for
`iam`; its key and signature are never checked.)

Discovery (the same rule .ci/run states): `moto_server` on PATH, else `python3 -m moto.server`
with a python3 that can import moto. Neither: MotoNotInstalled, never a skip.
Stdlib only.
"""
import ctypes
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

NO_AUTH_ACTIONS = 3
IAM_USER = "replboot-test"
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


class MotoNotInstalled(RuntimeError):
    pass


def moto_command():
    """argv prefix that starts moto's server, or MotoNotInstalled naming what is missing."""
    path = shutil.which("moto_server")
    if path:
        return [path]
    for python in dict.fromkeys([sys.executable, shutil.which("python3") or "python3"]):
        try:
            ok = subprocess.run([python, "-c", "import moto.server"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=60).returncode == 0
        except OSError:
            ok = False
        if ok:
            return [python, "-m", "moto.server"]
    raise MotoNotInstalled(
        "moto_server (Python package moto 5.2.1, `pip install 'moto[server]==5.2.1'`) is missing: "
        "neither `moto_server` is on PATH nor can python3 import moto; the S3 tests need it")


def _die_with_parent():
    """In the child before exec: SIGKILL when the process that started moto ends, however it
    ends (a test killed with SIGKILL included), so moto never outlives its test."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def uri_encode(text, encode_slash=True):
    """SigV4's URI encoding: every byte but A-Z a-z 0-9 - . _ ~ as %XX (and '/' unless a path)."""
    safe = _UNRESERVED + ("" if encode_slash else "/")
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def sigv4_headers(method, host, path, query, body, access_key, secret_key, region, service,
                  extra_headers=None, now=None):
    """The headers (Authorization, x-amz-date, x-amz-content-sha256, host) of a SigV4 request.

    `path` is the decoded path ("/bucket/key"); `query` a dict of decoded names and values.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    for k, v in (extra_headers or {}).items():
        headers[k.lower()] = v.strip()
    canonical_query = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(query.items()))
    signed = sorted(headers)
    canonical_request = "\n".join([
        method, uri_encode(path, encode_slash=False), canonical_query,
        "".join(f"{k}:{headers[k]}\n" for k in signed), ";".join(signed), payload_hash])
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return headers


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def __repr__(self):
        return f"Response({self.status}, {self.body[:300]!r})"


def http_request(endpoint, method, path, query=None, body=b"", headers=None, timeout=30):
    """One plain HTTP request (no retries); any status is returned, not raised."""
    url = endpoint + uri_encode(path, encode_slash=False)
    if query:
        url += "?" + "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in sorted(query.items()))
    req = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


class MotoServer:
    """moto_server on `host`:`port` (a free port when None) with one IAM user allowed s3:*."""

    def __init__(self, workdir, host="127.0.0.1", port=None, region="us-east-1",
                 start_timeout=60):
        self.workdir = workdir
        self.host = host
        self.port = port or free_port(host)
        self.region = region
        self.endpoint = f"http://{host}:{self.port}"
        self.access_key_id = None
        self.secret_access_key = None
        self.proc = None
        os.makedirs(workdir, exist_ok=True)
        self.log_path = os.path.join(workdir, f"moto-{self.port}.log")
        try:
            self._start(start_timeout)
            self.access_key_id, self.secret_access_key = self._create_user()
        except BaseException:
            self.stop()
            raise

    # --- lifecycle -------------------------------------------------------------------------

    def _start(self, timeout):
        env = dict(os.environ)
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_ACTIONS)
        # A test's secrets never reach moto's environment from ours.
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        argv = moto_command() + ["-H", self.host, "-p", str(self.port)]
        log = open(self.log_path, "ab")
        try:
            # Its own process group, so stop() also ends what the pyenv shim or werkzeug forked.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode} before "
                                   f"answering on {self.endpoint}:\n{self.log_tail()}")
            try:
                # The moto API is not an AWS action: it does not spend an unauthenticated one.
                r = http_request(self.endpoint, "GET", "/moto-api/data.json", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"moto_server did not answer on {self.endpoint} within "
                                   f"{timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in its group
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __del__(self):
        self.stop()

    # --- IAM, with the three unauthenticated actions -----------------------------------------

    def _iam(self, action, **params):
        form = {"Action": action, "Version": "2010-05-08", **params}
        body = urllib.parse.urlencode(form).encode()
        host = f"{self.host}:{self.port}"
        headers = sigv4_headers("POST", host, "/", {}, body, "AKIAUNAUTHENTICATED",
                                "unchecked", self.region, "iam",
                                {"content-type": "application/x-www-form-urlencoded"})
        r = http_request(self.endpoint, "POST", "/", body=body, headers=headers)
        if r.status != 200:
            raise RuntimeError(f"moto IAM {action}: HTTP {r.status}: {r.body[:500]!r}")
        return ET.fromstring(r.body)

    def _create_user(self):
        self._iam("CreateUser", UserName=IAM_USER)
        root = self._iam("CreateAccessKey", UserName=IAM_USER)
        ns = {"iam": "https://iam.amazonaws.com/doc/2010-05-08/"}
        key_id = root.find(".//iam:AccessKeyId", ns)
        secret = root.find(".//iam:SecretAccessKey", ns)
        if key_id is None or secret is None:
            raise RuntimeError("moto IAM CreateAccessKey: no AccessKeyId/SecretAccessKey in "
                               "its answer")
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        self._iam("PutUserPolicy", UserName=IAM_USER, PolicyName="s3-all",
                  PolicyDocument=json.dumps(policy))
        return key_id.text, secret.text

    # --- S3 --------------------------------------------------------------------------------

    def request(self, method, path, query=None, body=b"", headers=None, secret=None):
        """A SigV4-signed S3 request with the test user's key (or `secret` instead)."""
        query = query or {}
        signed = sigv4_headers(method, f"{self.host}:{self.port}", path, query, body,
                               self.access_key_id, secret or self.secret_access_key,
                               self.region, "s3", headers)
        return http_request(self.endpoint, method, path, query, body, signed)

    def create_bucket(self, name):
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name):
            raise ValueError(f"not an S3 bucket name: {name!r}")
        r = self.request("PUT", f"/{name}")
        if r.status != 200:
            raise RuntimeError(f"create bucket {name}: HTTP {r.status}: {r.body[:500]!r}")
