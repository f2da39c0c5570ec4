"""Shared helpers for the end-to-end tests: the server process, raw signed requests, checksums.

Raw requests go through http.client, which sends the request target byte for byte (requests and
urllib3 normalise `..` and `.` path segments), signed with botocore's S3 SigV4 signer.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import http.client
import os
import re
import shutil
import sys
import signal
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

import pytest
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ACCESS_KEY = "STRAITE2EACCESSKEY01"
SECRET_KEY = "strait/e2e+Secret/Key0123456789abcdefWXYZ"
REGION = "us-east-1"
MIB = 1024 * 1024

LISTEN_RE = re.compile(r"strait: listening on (https?)://(\S+?):(\d+)")
ACCESS_RE = re.compile(r"strait: access key: (\S+)")
SECRET_RE = re.compile(r"strait: secret key: (\S+)")
PANIC_RE = re.compile(r"panicked at|stack backtrace:")


# ---------------------------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    """One `strait serve` process and what a client needs to reach it."""

    binary: str
    root: Path
    state_dir: Path | None
    log_path: Path
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca: Path | None = None
    env_creds: bool = True
    extra_args: Sequence[str] = ()
    extra_env: dict | None = None

    proc: subprocess.Popen | None = None
    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = 0
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def verify(self):
        """What to give boto3/requests as `verify`."""
        return str(self.ca) if self.ca else None

    def argv(self) -> list[str]:
        args = [self.binary, "serve", "--root", str(self.root), "--listen", "127.0.0.1:0"]
        if self.state_dir is not None:
            args += ["--state-dir", str(self.state_dir)]
        if self.tls_cert is not None:
            args += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
        return args + list(self.extra_args)

    def start(self, timeout: float = 60.0) -> "Server":
        env = dict(os.environ)
        env.pop("STRAIT_ROOT_ACCESS_KEY", None)
        env.pop("STRAIT_ROOT_SECRET_KEY", None)
        if self.env_creds:
            env["STRAIT_ROOT_ACCESS_KEY"] = self.access_key
            env["STRAIT_ROOT_SECRET_KEY"] = self.secret_key
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env or {})
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        offset = log.tell()
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text(offset)
            m = LISTEN_RE.search(text)
            if m:
                self.scheme, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
                if not self.env_creds:
                    a, s = ACCESS_RE.search(text), SECRET_RE.search(text)
                    if a and s:
                        self.access_key, self.secret_key = a.group(1), s.group(1)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"strait exited with {self.proc.returncode} before listening; "
                    f"argv={self.argv()}\n--- log ---\n{text[-4000:]}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"strait did not print its listening line in {timeout}s\n{text[-4000:]}")
            time.sleep(0.05)

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        return self.proc.returncode

    def panics(self) -> list[str]:
        lines = self.log_text().splitlines()
        return [ln for ln in lines if PANIC_RE.search(ln)]

    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)


def make_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost/::1 signed by it.

    Returns (chain.pem for --tls-cert, key.pem for --tls-key, ca.pem for clients)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strait e2e test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain, key_path, ca_path = directory / "chain.pem", directory / "key.pem", directory / "ca.pem"
    chain.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    return chain, key_path, ca_path


# ---------------------------------------------------------------------------------------------
# boto3
# ---------------------------------------------------------------------------------------------


def boto_client(server: Server, region: str = REGION, access_key: str | None = None,
                secret_key: str | None = None, **config):
    import boto3
    from botocore.config import Config

    cfg = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        signature_version=config.pop("signature_version", "s3v4"),
        connect_timeout=10, read_timeout=60,
        **config,
    )
    return boto3.client(
        "s3", endpoint_url=server.url, region_name=region,
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        verify=server.verify if server.ca else True, config=cfg,
    )


def error_of(call) -> tuple[str | None, int]:
    """The S3 error code and HTTP status of a call that must fail (for comparing several at once;
    `s3_error` asserts one)."""
    try:
        call()
    except ClientError as e:
        return e.response.get("Error", {}).get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the call succeeded")


@contextlib.contextmanager
def s3_error(status: int, code: str | Iterable[str] | None = None):
    """Expect a botocore ClientError with this HTTP status and S3 error code (or one of them)."""
    with pytest.raises(ClientError) as ei:
        yield ei
    resp = ei.value.response
    got_status = resp["ResponseMetadata"]["HTTPStatusCode"]
    got_code = resp.get("Error", {}).get("Code")
    assert got_status == status, f"status {got_status} (code {got_code}), want {status}"
    if code is not None:
        codes = {code} if isinstance(code, str) else set(code)
        assert got_code in codes, f"code {got_code!r}, want one of {sorted(codes)}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: Sequence[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


# ---------------------------------------------------------------------------------------------
# Checksums (pure Python: botocore needs awscrt for CRC32C and CRC64NVME)
# ---------------------------------------------------------------------------------------------


def _reflected_table(poly: int, width: int) -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & ((1 << width) - 1))
    return table


_CRC32C_T = _reflected_table(0x82F63B78, 32)
_CRC64NVME_T = _reflected_table(0x9A6C9329AC4BC9B5, 64)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _CRC32C_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc64nvme(data: bytes) -> int:
    c = 0xFFFFFFFFFFFFFFFF
    t = _CRC64NVME_T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFFFFFFFFF


def checksum_raw(alg: str, data: bytes) -> bytes:
    import zlib

    alg = alg.lower()
    if alg == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if alg == "crc32c":
        return crc32c(data).to_bytes(4, "big")
    if alg == "crc64nvme":
        return crc64nvme(data).to_bytes(8, "big")
    if alg == "sha1":
        return hashlib.sha1(data).digest()
    if alg == "sha256":
        return hashlib.sha256(data).digest()
    raise ValueError(alg)


def checksum_b64(alg: str, data: bytes) -> str:
    return base64.b64encode(checksum_raw(alg, data)).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


ALGORITHMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"]


# ---------------------------------------------------------------------------------------------
# Raw signed requests
# ---------------------------------------------------------------------------------------------


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer with a chosen time and payload hash."""

    def __init__(self, creds, region, when=None, payload_hash=None):
        super().__init__(creds, "s3", region)
        self._when = when
        self._payload_hash = payload_hash
        self.last_signature = ""
        self.timestamp = ""

    def payload(self, request):
        if self._payload_hash is not None:
            return self._payload_hash
        return super().payload(request)

    def add_auth(self, request):
        when = self._when or dt.datetime.now(dt.timezone.utc)
        request.context["timestamp"] = when.strftime(SIGV4_TIMESTAMP)
        self.timestamp = request.context["timestamp"]
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        sig = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, sig)
        self.last_signature = sig


class _QuerySigner(S3SigV4QueryAuth):
    def __init__(self, creds, region, expires, when=None):
        super().__init__(creds, "s3", region, expires=expires)
        self._when = when

    def add_auth(self, request):
        when = self._when or dt.datetime.now(dt.timezone.utc)
        request.context["timestamp"] = when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        sig = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, sig)


def encode_query(query) -> str:
    """Query items as SigV4 wants them on the wire: each name and value percent-encoded."""
    if query is None:
        return ""
    if isinstance(query, str):
        return query
    items = query.items() if isinstance(query, Mapping) else query
    out = []
    for k, v in items:
        k = quote(str(k), safe="-_.~")
        out.append(k + "=" if v is None else f"{k}={quote(str(v), safe='-_.~')}")
    return "&".join(out)


def key_path(bucket: str, key: str) -> str:
    """The request path of an object, each key byte percent-encoded except unreserved and '/'."""
    return "/" + quote(bucket, safe="") + "/" + quote(key, safe="/-_.~")


def _strip_ns(elem: ET.Element) -> ET.Element:
    for e in elem.iter():
        if isinstance(e.tag, str) and "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    return elem


@dataclasses.dataclass
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def xml(self) -> ET.Element:
        return _strip_ns(ET.fromstring(self.body))

    @property
    def code(self) -> str | None:
        if not self.body:
            return None
        try:
            root = self.xml
        except ET.ParseError:
            return None
        if root.tag != "Error":
            return None
        return root.findtext("Code")

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.code} {self.body[:300]!r}>"


class Raw:
    """Hand-crafted requests to one server."""

    def __init__(self, server: Server):
        self.server = server

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        s = self.server
        if s.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(s.ca))
            return http.client.HTTPSConnection(s.host, s.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(s.host, s.port, timeout=timeout)

    def sign(self, method: str, path: str, query=None, headers=None, body: bytes = b"",
             creds: Credentials | None = None, region: str = REGION, when=None,
             payload_hash: str | None = None) -> tuple[str, dict, _Signer]:
        qs = encode_query(query)
        target = path + ("?" + qs if qs else "")
        s = self.server
        hdrs = {"Host": f"{s.host}:{s.port}"}
        hdrs.update(headers or {})
        req = AWSRequest(method=method, url=f"{s.url}{target}", headers=hdrs, data=body)
        signer = _Signer(creds or s.credentials(), region, when=when, payload_hash=payload_hash)
        signer.add_auth(req)
        return target, dict(req.headers.items()), signer

    def request(self, method: str, path: str, query=None, headers=None, body=b"", sign: bool = True,
                creds: Credentials | None = None, region: str = REGION, when=None,
                payload_hash: str | None = None, unsigned_headers: Mapping[str, str] | None = None,
                encode_chunked: bool = False) -> RawResponse:
        if sign:
            target, hdrs, _ = self.sign(method, path, query, headers,
                                        body if isinstance(body, bytes) else b"",
                                        creds, region, when, payload_hash)
        else:
            qs = encode_query(query)
            target = path + ("?" + qs if qs else "")
            hdrs = {"Host": f"{self.server.host}:{self.server.port}"}
            hdrs.update(headers or {})
        hdrs.update(unsigned_headers or {})
        return self.send(method, target, hdrs, body, encode_chunked=encode_chunked)

    def send(self, method: str, target: str, headers: Mapping[str, str], body=b"",
             encode_chunked: bool = False) -> RawResponse:
        conn = self.connection()
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            if encode_chunked:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for piece in body:
                    if piece:
                        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            else:
                if not any(k.lower() == "content-length" for k in headers) and (
                        body or method in ("PUT", "POST")):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            return RawResponse(resp.status, resp.headers, data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=b"", **kw):
        return self.request("PUT", path, body=body, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def post(self, path, body=b"", **kw):
        return self.request("POST", path, body=body, **kw)

    # -- presigned URLs ------------------------------------------------------------------------

    def presign(self, method: str, path: str, expires: int, when=None, query=None,
                creds: Credentials | None = None, region: str = REGION) -> str:
        """A presigned request target (path?query) valid `expires` seconds from `when`."""
        qs = encode_query(query)
        s = self.server
        url = f"{s.url}{path}" + ("?" + qs if qs else "")
        req = AWSRequest(method=method, url=url, headers={"Host": f"{s.host}:{s.port}"})
        _QuerySigner(creds or s.credentials(), region, expires, when=when).add_auth(req)
        return req.url[len(s.url):]

    # -- aws-chunked bodies --------------------------------------------------------------------

    def put_trailer(self, path: str, data: bytes, alg: str, value: str | None = None,
                    chunk: int = 64 * 1024, extra_headers=None, http_chunked: bool = False) -> RawResponse:
        """PUT with STREAMING-UNSIGNED-PAYLOAD-TRAILER and an x-amz-checksum-<alg> trailer."""
        value = checksum_b64(alg, data) if value is None else value
        name = f"x-amz-checksum-{alg}"
        pieces = [b"%x\r\n%s\r\n" % (len(data[i:i + chunk]), data[i:i + chunk])
                  for i in range(0, len(data), chunk)]
        pieces.append(b"0\r\n%s:%s\r\n\r\n" % (name.encode(), value.encode()))
        body = b"".join(pieces)
        headers = {
            "Content-Encoding": "aws-chunked",
            "X-Amz-Trailer": name,
            "X-Amz-Decoded-Content-Length": str(len(data)),
        }
        if not http_chunked:
            headers["Content-Length"] = str(len(body))
        headers.update(extra_headers or {})
        target, hdrs, _ = self.sign("PUT", path, None, headers, b"",
                                    payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        if http_chunked:
            return self.send("PUT", target, hdrs, pieces, encode_chunked=True)
        return self.send("PUT", target, hdrs, body)

    def put_signed_chunks(self, path: str, data: bytes, chunk: int = 64 * 1024,
                          corrupt_chunk: int | None = None, extra_headers=None) -> RawResponse:
        """PUT with STREAMING-AWS4-HMAC-SHA256-PAYLOAD (each chunk signed, chained)."""
        chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
        enc_len = sum(len(b"%x;chunk-signature=%s\r\n" % (len(c), b"0" * 64)) + len(c) + 2 for c in chunks)
        headers = {
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
            "Content-Length": str(enc_len),
        }
        headers.update(extra_headers or {})
        target, hdrs, signer = self.sign("PUT", path, None, headers, b"",
                                         payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        ts = signer.timestamp
        scope = f"{ts[:8]}/{REGION}/s3/aws4_request"
        secret = self.server.secret_key

        def hm(k, m):
            return hmac.new(k, m.encode() if isinstance(m, str) else m, hashlib.sha256).digest()

        kdate = hm(("AWS4" + secret).encode(), ts[:8])
        ksign = hm(hm(hm(kdate, REGION), "s3"), "aws4_request")
        prev = signer.last_signature
        empty = hashlib.sha256(b"").hexdigest()
        out = []
        for i, c in enumerate(chunks):
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", ts, scope, prev, empty,
                             hashlib.sha256(c).hexdigest()])
            sig = hmac.new(ksign, sts.encode(), hashlib.sha256).hexdigest()
            prev = sig
            sent = c
            if corrupt_chunk == i and c:
                sent = bytes([c[0] ^ 0xFF]) + c[1:]
            out.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), sig.encode(), sent))
        body = b"".join(out)
        assert len(body) == enc_len
        return self.send("PUT", target, hdrs, body)


def error_code(resp: RawResponse) -> str | None:
    return resp.code


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(5).hex()}"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def http_date(t: dt.datetime) -> str:
    from email.utils import format_datetime

    return format_datetime(t.astimezone(dt.timezone.utc), usegmt=True)


def require_tool(name: str) -> str:
    """The path of a client binary; a missing one fails the test (never skips)."""
    venv_bin = Path(sys.executable).parent / name
    if venv_bin.exists():
        return str(venv_bin)
    path = shutil.which(name)
    if not path:
        pytest.fail(f"required client {name!r} is not installed (see tests/requirements.txt)", pytrace=False)
    return path
