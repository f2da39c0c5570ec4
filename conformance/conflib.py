"""Small helpers shared by the conformance cases (the rest comes from tests/e2e/helpers.py)."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from helpers import (ALGORITHMS, MIB, RawResponse, checksum_b64, checksum_raw, http_date,  # noqa: F401
                     key_path, md5_b64, md5_hex, multipart_etag, now_utc, s3_error, unique)

ops = pytest.mark.ops


def expect_raw(r: RawResponse, status: int, code: str | None = None) -> RawResponse:
    """Assert a raw response's status (and S3 error code)."""
    assert r.status == status, f"status {r.status} (code {r.code}), want {status} {code or ''}: {r!r}"
    if code is not None:
        assert r.code == code, f"code {r.code!r}, want {code!r}: {r!r}"
    return r


def status_of(exc) -> tuple[int, str]:
    resp = exc.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp.get("Error", {}).get("Code")


def etag_of(data: bytes) -> str:
    return f'"{md5_hex(data)}"'


def put(s3, bucket: str, key: str, body: bytes = b"x", **kw) -> dict:
    return s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)


def get_body(s3, bucket: str, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def keys_of(listing: dict) -> list[str]:
    return [o["Key"] for o in listing.get("Contents", [])]


def prefixes_of(listing: dict) -> list[str]:
    return [p["Prefix"] for p in listing.get("CommonPrefixes", [])]


def s3_order(keys) -> list[str]:
    """S3 lists keys in ascending order of their UTF-8 bytes."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (fast for MiBs)."""
    import random

    return random.Random(seed).randbytes(n)


def past(seconds: int = 3600) -> dt.datetime:
    return now_utc() - dt.timedelta(seconds=seconds)


def future(seconds: int = 3600) -> dt.datetime:
    return now_utc() + dt.timedelta(seconds=seconds)


def rand(n: int = 5) -> str:
    return os.urandom(n).hex()


def send_all_then_read(raw, method: str, target: str, headers: dict, body: bytes) -> RawResponse:
    """Send a request in one write (headers and a pre-framed body) and read the answer, even if
    the server answers before reading the body and closes its side."""
    conn = raw.connection()
    try:
        conn.connect()
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        try:
            conn.sock.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        import http.client
        resp = http.client.HTTPResponse(conn.sock, method=method)
        resp.begin()
        return RawResponse(resp.status, resp.headers, resp.read())
    finally:
        conn.close()
