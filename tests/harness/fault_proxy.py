"""An HTTP/1.1 proxy on loopback in front of an S3 server, with failure knobs for tests.

    from fault_proxy import FaultProxy
    with FaultProxy(("127.0.0.1", moto.port), sigv4=(key_id, secret, "us-east-1")) as proxy:
        proxy.address                      # "http://127.0.0.1:<port>": point the client here
        proxy.fail_next(2, 500, "InternalError")   # the next 2 requests get that answer
        proxy.cut_after_body_bytes(4096)   # the next upload is cut after 4 KiB of its body
        proxy.cut_after_body_bytes(4096, 3, min_body=1 << 20)   # ... of the next 3 uploads of 1 MiB+
        proxy.fail_next(1, 403, "AccessDenied", method="PUT", min_body=1 << 20)  # only those
        proxy.cut_all()                    # every connection closed, new ones refused ...
        proxy.restore()                    # ... until this
        proxy.set_delay(1.5)               # each request waits that long before it is served
        proxy.set_serialize(True)          # one request at a time reaches the server
        proxy.requests                     # requests received (each one a complete head)
        proxy.reset()                      # every knob off, the counter kept

Requests are read whole by the proxy (Content-Length bodies; `Expect: 100-continue` is
answered by the proxy itself) and sent to the server on a connection of their own; the answer
is read whole and relayed with a Content-Length, on the client's kept-alive connection.

With `sigv4=(access_key_id, secret, region)` the proxy also checks each request's SigV4
signature the way AWS does, strictly (the path and the sorted query must already be in
SigV4's encoding, the signed headers present, x-amz-content-sha256 equal to the SHA-256 of
the body actually received), answering 403 SignatureDoesNotMatch / 400
XAmzContentSHA256Mismatch itself, and then signs the request again for moto. Why: moto
5.2.1 checks signatures against its *decoded* query (prefix=a/ where AWS, and the spec, sign
prefix=a%2F), so a client that signs correctly is refused by moto for any '/' in a query
value, and moto never compares the payload hash with the body. The proxy is stricter than
moto and AWS-faithful; moto still checks the re-signed request (key, policy).

Stdlib only; every thread is a daemon and stop() closes every socket.
"""
import hashlib
import hmac
import socket
import threading
import time
import urllib.parse

from moto_harness import uri_encode

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024


class _Closed(Exception):
    pass


def _recv_until(sock, buf, marker, limit):
    while marker not in buf:
        if len(buf) > limit:
            raise _Closed("head too long")
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed("eof")
        buf += chunk
    return buf


def _recv_exact(sock, buf, n):
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)) if n - len(buf) > 0 else 65536)
        if not chunk:
            raise _Closed("eof")
        buf += chunk
    return buf


def _parse_head(raw):
    lines = raw.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


def _get(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def s3_error_xml(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()


class FaultProxy:
    def __init__(self, upstream, host="127.0.0.1", port=0, sigv4=None):
        self.upstream = upstream
        self.host = host
        self.sigv4 = sigv4
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._conns = set()
        self._stopped = False
        self.requests = 0
        self.reset()
        self._listener = None
        self._open_listener(port)
        self.port = self._listener.getsockname()[1]
        self.address = f"http://{host}:{self.port}"

    # --- knobs -------------------------------------------------------------------------

    def reset(self):
        with self._lock:
            self._fail = []          # [(status, code, message)] for the next requests
            self._cut_after = []     # [n bytes] for the next uploads
            self._delay = 0.0
            self._serialize = False

    def fail_next(self, count, status, code, message="injected by the fault proxy", method=None, min_body=0):
        """The next `count` requests (of `method`, with a Content-Length of at least `min_body`:
        e.g. only a backup's objects, not its small claim or the other nodes' polls) get that
        answer."""
        with self._lock:
            self._fail.extend([(status, code, message, method, min_body)] * count)

    def cut_after_body_bytes(self, nbytes, count=1, min_body=0):
        with self._lock:
            self._cut_after.extend([(nbytes, min_body)] * count)

    def set_delay(self, seconds):
        with self._lock:
            self._delay = seconds

    def set_serialize(self, on):
        with self._lock:
            self._serialize = bool(on)

    def cut_all(self):
        """Closes the listener (new connections are refused) and every open connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns = list(self._conns)
        if listener is not None:
            listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def restore(self):
        with self._lock:
            if self._listener is not None or self._stopped:
                return
        self._open_listener(self.port)

    # --- lifecycle -----------------------------------------------------------------------

    def _open_listener(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(64)
        with self._lock:
            self._listener = s
        threading.Thread(target=self._accept_loop, args=(s,), daemon=True).start()

    def _accept_loop(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:
                    conn.close()
                    return
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def stop(self):
        with self._lock:
            self._stopped = True
        self.cut_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- one client connection -----------------------------------------------------------

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                buf = _recv_until(conn, buf, b"\r\n\r\n", MAX_HEAD)
                head, _, buf = buf.partition(b"\r\n\r\n")
                first, headers = _parse_head(head)
                method, target, _version = first.split(" ", 2)
                declared = int(_get(headers, "Content-Length") or "0")
                with self._lock:
                    self.requests += 1
                    fail = None
                    if self._fail:
                        status, code, message, only, min_body = self._fail[0]
                        if (only is None or only == method) and declared >= min_body:
                            fail = (status, code, message)
                            self._fail.pop(0)
                    cut = None
                    if self._cut_after and method == "PUT" and declared >= self._cut_after[0][1]:
                        cut = self._cut_after.pop(0)[0]
                    delay = self._delay
                    serialize = self._serialize
                if _get(headers, "Transfer-Encoding"):
                    self._answer(conn, 501, s3_error_xml("NotImplemented", "chunked requests"))
                    return
                length = int(_get(headers, "Content-Length") or "0")
                if length < 0 or length > MAX_BODY:
                    raise _Closed("bad length")
                if (_get(headers, "Expect") or "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                if cut is not None:
                    _recv_exact(conn, buf, min(cut, length))
                    raise _Closed("cut mid-upload")  # the server never sees this request
                buf = _recv_exact(conn, buf, length)
                body, buf = buf[:length], buf[length:]
                if delay:
                    time.sleep(delay)
                if fail is not None:
                    status, code, message = fail
                    self._answer(conn, status, s3_error_xml(code, message))
                    continue
                if self.sigv4:
                    verdict = self._check_and_resign(method, target, headers, body)
                    if isinstance(verdict, tuple):
                        self._answer(conn, verdict[0], s3_error_xml(verdict[1], verdict[2]))
                        continue
                    headers = verdict
                if serialize:
                    with self._serial:
                        status_line, rheaders, rbody = self._forward(method, target, headers, body)
                else:
                    status_line, rheaders, rbody = self._forward(method, target, headers, body)
                self._relay(conn, status_line, rheaders, rbody, method)
        except (_Closed, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _answer(self, conn, status, body):
        conn.sendall((f"HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)

    def _relay(self, conn, status_line, headers, body, method):
        hop = {"connection", "keep-alive", "transfer-encoding", "content-length"}
        out = [status_line] + [f"{k}: {v}" for k, v in headers if k.lower() not in hop]
        if method != "HEAD":
            out.append(f"Content-Length: {len(body)}")
        conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)

    def _forward(self, method, target, headers, body):
        up = socket.create_connection(self.upstream, timeout=60)
        try:
            fwd = [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive")]
            fwd.append(("Connection", "close"))
            head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fwd)
            up.sendall(head.encode("latin-1") + b"\r\n" + body)
            buf = b""
            while True:  # skip interim (1xx) answers
                buf = _recv_until(up, buf, b"\r\n\r\n", MAX_HEAD)
                rhead, _, buf = buf.partition(b"\r\n\r\n")
                status_line, rheaders = _parse_head(rhead)
                if not status_line.split(" ")[1].startswith("1"):
                    break
            if method == "HEAD":
                return status_line, rheaders, b""
            if _get(rheaders, "Content-Length") is not None:
                n = int(_get(rheaders, "Content-Length"))
                buf = _recv_exact(up, buf, n)
                return status_line, rheaders, buf[:n]
            if (_get(rheaders, "Transfer-Encoding") or "").lower() == "chunked":
                out = b""
                while True:
                    buf = _recv_until(up, buf, b"\r\n", MAX_HEAD)
                    size_line, _, buf = buf.partition(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    buf = _recv_exact(up, buf, size + 2)
                    out += buf[:size]
                    buf = buf[size + 2:]
                    if size == 0:
                        return status_line, rheaders, out
            while True:  # until the server closes
                chunk = up.recv(65536)
                if not chunk:
                    return status_line, rheaders, buf
                buf += chunk
        finally:
            up.close()

    # --- SigV4, the way AWS checks it ----------------------------------------------------

    def _check_and_resign(self, method, target, headers, body):
        key_id, secret, region = self.sigv4
        auth = _get(headers, "Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return 403, "AccessDenied", "no SigV4 Authorization header"
        fields = {}
        for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        try:
            cred_key, date, cred_region, service, terminator = fields["Credential"].split("/")
            signed_names = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            return 400, "AuthorizationHeaderMalformed", "cannot parse the Authorization header"
        if cred_key != key_id:
            return 403, "InvalidAccessKeyId", "unknown access key"
        if cred_region != region or service != "s3" or terminator != "aws4_request":
            return 400, "AuthorizationHeaderMalformed", "wrong credential scope"
        path, _, query = target.partition("?")
        if uri_encode(urllib.parse.unquote(path), encode_slash=False) != path:
            return 400, "NonCanonicalRequest", f"path {path!r} is not in SigV4's encoding"
        pairs = []
        for item in query.split("&") if query else []:
            k, _, v = item.partition("=")
            if (uri_encode(urllib.parse.unquote(k)) != k or
                    uri_encode(urllib.parse.unquote(v)) != v):
                return 400, "NonCanonicalRequest", f"query {item!r} is not in SigV4's encoding"
            pairs.append((k, v))
        if pairs != sorted(pairs):
            return 400, "NonCanonicalRequest", "the query is not sorted by name"
        payload_hash = _get(headers, "x-amz-content-sha256")
        if payload_hash != hashlib.sha256(body).hexdigest():
            return 400, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 is not the body's"
        if signed_names != sorted(signed_names) or "host" not in signed_names:
            return 403, "SignatureDoesNotMatch", "signed headers not sorted or no host"
        values = {}
        for name in signed_names:
            v = _get(headers, name)
            if v is None:
                return 403, "SignatureDoesNotMatch", f"signed header {name} was not sent"
            values[name] = " ".join(v.split())
        amz_date = values.get("x-amz-date") or ""

        def sign(canonical_path, canonical_query):
            canonical = "\n".join([
                method, canonical_path, canonical_query,
                "".join(f"{n}:{values[n]}\n" for n in signed_names), ";".join(signed_names),
                payload_hash])
            scope = f"{date}/{region}/s3/aws4_request"
            to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                 hashlib.sha256(canonical.encode()).hexdigest()])
            k = ("AWS4" + secret).encode()
            for p in (date, region, "s3", "aws4_request"):
                k = hmac.new(k, p.encode(), hashlib.sha256).digest()
            return hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()

        if not hmac.compare_digest(sign(path, query), signature):
            return 403, "SignatureDoesNotMatch", "the signature does not match (checked by the proxy)"
        # Signed again the way moto 5.2.1 checks: its query values decoded.
        moto_query = "&".join(f"{urllib.parse.unquote(k)}={urllib.parse.unquote(v)}"
                              for k, v in pairs)
        new_auth = (f"AWS4-HMAC-SHA256 Credential={fields['Credential']}, "
                    f"SignedHeaders={fields['SignedHeaders']}, "
                    f"Signature={sign(path, moto_query)}")
        return [(k, new_auth if k.lower() == "authorization" else v) for k, v in headers]
