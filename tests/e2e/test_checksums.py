"""Flexible checksums: every algorithm as header and as aws-chunked trailer; mismatches leave the
previous object intact; stored checksums come back with x-amz-checksum-mode: ENABLED."""

import hashlib
import os

import pytest

from helpers import ALGORITHMS, checksum_b64, key_path, md5_b64

MODE = {"x-amz-checksum-mode": "ENABLED"}
DATA = os.urandom(200 * 1024 + 17)


def seed_old(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=b"previous object")


def assert_old(s3, bucket, key):
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"previous object"


# --- header ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_checksum_header(raw, bucket, alg):
    value = checksum_b64(alg, DATA)
    path = key_path(bucket, f"h-{alg}")
    r = raw.put(path, body=DATA, headers={f"x-amz-checksum-{alg}": value})
    assert r.status == 200, r
    assert r.header(f"x-amz-checksum-{alg}") == value
    for method in ("HEAD", "GET"):
        g = raw.request(method, path, headers=MODE)
        assert g.status == 200, g
        assert g.header(f"x-amz-checksum-{alg}") == value, method
    assert raw.get(path).body == DATA


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_checksum_header_mismatch(raw, s3, bucket, alg):
    key = f"hm-{alg}"
    seed_old(s3, bucket, key)
    wrong = checksum_b64(alg, DATA + b"!")
    r = raw.put(key_path(bucket, key), body=DATA, headers={f"x-amz-checksum-{alg}": wrong})
    assert r.status == 400, r
    assert r.code == "BadDigest", r
    assert_old(s3, bucket, key)


def test_checksum_header_invalid_value(raw, s3, bucket):
    seed_old(s3, bucket, "inv")
    r = raw.put(key_path(bucket, "inv"), body=b"data", headers={"x-amz-checksum-sha256": "dG9vc2hvcnQ="})
    assert r.status == 400, r
    assert r.code == "InvalidRequest", r
    assert_old(s3, bucket, "inv")


def test_checksum_header_multiple_algorithms(raw, bucket):
    r = raw.put(key_path(bucket, "multi"), body=b"data", headers={
        "x-amz-checksum-crc32": checksum_b64("crc32", b"data"),
        "x-amz-checksum-sha256": checksum_b64("sha256", b"data")})
    assert r.status == 400, r
    assert r.code == "InvalidRequest", r


def test_checksum_header_and_content_md5(raw, bucket):
    r = raw.put(key_path(bucket, "both"), body=b"data", headers={
        "Content-MD5": md5_b64(b"data"), "x-amz-checksum-crc32c": checksum_b64("crc32c", b"data")})
    assert r.status == 200, r


def test_checksum_not_returned_without_mode(raw, bucket):
    path = key_path(bucket, "nomode")
    raw.put(path, body=b"data", headers={"x-amz-checksum-sha1": checksum_b64("sha1", b"data")})
    h = raw.head(path)
    assert h.status == 200
    assert not [k for k in h.headers.keys() if k.lower().startswith("x-amz-checksum-")], dict(h.headers)


def test_checksum_not_returned_for_range(raw, bucket):
    path = key_path(bucket, "ranged")
    raw.put(path, body=DATA, headers={"x-amz-checksum-crc32": checksum_b64("crc32", DATA)})
    g = raw.get(path, headers={**MODE, "Range": "bytes=0-99"})
    assert g.status == 206, g
    # A whole-object checksum on a partial body would fail every validating client.
    assert g.header("x-amz-checksum-crc32") is None


def test_checksum_stale_after_disk_change(raw, server, bucket):
    path = key_path(bucket, "stale")
    raw.put(path, body=b"data", headers={"x-amz-checksum-sha256": checksum_b64("sha256", b"data")})
    (server.root / bucket / "stale").write_bytes(b"rewritten outside")
    h = raw.head(path, headers=MODE)
    assert h.status == 200
    assert h.header("x-amz-checksum-sha256") in (None, checksum_b64("sha256", b"rewritten outside"))


# --- trailer (aws-chunked, STREAMING-UNSIGNED-PAYLOAD-TRAILER) over TLS -------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_checksum_trailer(raw_tls, tls_bucket, alg):
    path = key_path(tls_bucket, f"t-{alg}")
    r = raw_tls.put_trailer(path, DATA, alg)
    assert r.status == 200, r
    g = raw_tls.get(path, headers=MODE)
    assert g.status == 200, g
    assert g.body == DATA
    assert g.header(f"x-amz-checksum-{alg}") == checksum_b64(alg, DATA)
    assert g.header("Content-Encoding") in (None, "")  # aws-chunked is not stored


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_checksum_trailer_mismatch(raw_tls, s3_tls, tls_bucket, alg):
    key = f"tm-{alg}"
    seed_old(s3_tls, tls_bucket, key)
    r = raw_tls.put_trailer(key_path(tls_bucket, key), DATA, alg, value=checksum_b64(alg, b"other"))
    assert r.status == 400, r
    assert r.code in ("BadDigest", "InvalidRequest"), r
    assert_old(s3_tls, tls_bucket, key)


def test_checksum_trailer_http_chunked(raw_tls, tls_bucket):
    # What botocore sends: Transfer-Encoding: chunked around the aws-chunked body, no Content-Length.
    path = key_path(tls_bucket, "te")
    r = raw_tls.put_trailer(path, DATA, "crc32", http_chunked=True)
    assert r.status == 200, r
    assert raw_tls.get(path).body == DATA


def test_checksum_trailer_single_chunk_empty_body(raw_tls, tls_bucket):
    path = key_path(tls_bucket, "empty")
    r = raw_tls.put_trailer(path, b"", "sha256")
    assert r.status == 200, r
    h = raw_tls.head(path, headers=MODE)
    assert h.header("Content-Length") == "0"
    assert h.header("x-amz-checksum-sha256") == checksum_b64("sha256", b"")


def test_checksum_trailer_declared_but_absent(raw_tls, s3_tls, tls_bucket):
    seed_old(s3_tls, tls_bucket, "absent")
    data = b"abc"
    body = b"3\r\nabc\r\n0\r\n\r\n"
    target, hdrs, _ = raw_tls.sign("PUT", key_path(tls_bucket, "absent"), None, {
        "Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)), "Content-Length": str(len(body))},
        payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    r = raw_tls.send("PUT", target, hdrs, body)
    assert r.status == 400, r
    assert r.code in ("InvalidRequest", "BadDigest", "MalformedTrailerError", "IncompleteBody"), r
    assert_old(s3_tls, tls_bucket, "absent")


# --- signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) ---------------------------------------


def test_signed_chunked_upload(raw, bucket):
    path = key_path(bucket, "signed")
    r = raw.put_signed_chunks(path, DATA)
    assert r.status == 200, r
    assert raw.get(path).body == DATA


def test_signed_chunked_upload_bad_chunk_signature(raw, s3, bucket):
    seed_old(s3, bucket, "signed")
    r = raw.put_signed_chunks(key_path(bucket, "signed"), DATA, corrupt_chunk=1)
    assert r.status == 403, r
    assert r.code == "SignatureDoesNotMatch", r
    assert_old(s3, bucket, "signed")


# --- through boto3 ---------------------------------------------------------------------------


def _capture(client, op):
    seen = {}

    def hook(request, **_):
        seen.update({k.lower(): v.decode() if isinstance(v, bytes) else v
                     for k, v in request.headers.items()})

    client.meta.events.register(f"before-send.s3.{op}", hook)
    return seen, lambda: client.meta.events.unregister(f"before-send.s3.{op}", hook)


@pytest.mark.parametrize("alg", ["CRC32", "SHA1", "SHA256"])
def test_boto3_trailer_checksum_over_tls(s3_tls, tls_bucket, alg):
    seen, done = _capture(s3_tls, "PutObject")
    try:
        s3_tls.put_object(Bucket=tls_bucket, Key=f"b-{alg}", Body=DATA, ChecksumAlgorithm=alg)
    finally:
        done()
    assert "aws-chunked" in seen.get("content-encoding", ""), seen  # really a trailer
    h = s3_tls.head_object(Bucket=tls_bucket, Key=f"b-{alg}", ChecksumMode="ENABLED")
    assert h[f"Checksum{alg}"] == checksum_b64(alg.lower(), DATA)
    g = s3_tls.get_object(Bucket=tls_bucket, Key=f"b-{alg}", ChecksumMode="ENABLED")
    assert g["Body"].read() == DATA  # botocore validates the returned checksum while reading


def test_boto3_default_checksum_plain_http(s3, bucket):
    seen, done = _capture(s3, "PutObject")
    try:
        s3.put_object(Bucket=bucket, Key="default", Body=DATA)
    finally:
        done()
    assert "x-amz-checksum-crc32" in seen, seen
    h = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert h["ChecksumCRC32"] == checksum_b64("crc32", DATA)


def test_boto3_ranged_get_validates(s3_tls, tls_bucket):
    s3_tls.put_object(Bucket=tls_bucket, Key="r", Body=DATA, ChecksumAlgorithm="SHA256")
    g = s3_tls.get_object(Bucket=tls_bucket, Key="r", Range="bytes=10-20", ChecksumMode="ENABLED")
    assert g["Body"].read() == DATA[10:21]


def test_boto3_trailer_mismatch_rejected(s3_tls, tls_bucket):
    # A wrong checksum supplied by the caller goes in the header: BadDigest, old object kept.
    seed_old(s3_tls, tls_bucket, "bad")
    from helpers import s3_error

    with s3_error(400, "BadDigest"):
        s3_tls.put_object(Bucket=tls_bucket, Key="bad", Body=DATA,
                          ChecksumSHA256=checksum_b64("sha256", b"not the data"))
    assert_old(s3_tls, tls_bucket, "bad")


def test_content_sha256_signed_payload_over_tls(raw_tls, tls_bucket):
    path = key_path(tls_bucket, "signedpayload")
    r = raw_tls.put(path, body=DATA)  # x-amz-content-sha256 = hex sha256 of the body
    assert r.status == 200, r
    r = raw_tls.put(path, body=DATA, payload_hash="UNSIGNED-PAYLOAD")
    assert r.status == 200, r
    assert hashlib.sha256(raw_tls.get(path).body).digest() == hashlib.sha256(DATA).digest()
