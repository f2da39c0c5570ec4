"""Authentication: SigV4 failures (bad signature, unknown key, clock skew, tampering, missing or
malformed auth parts), every x-amz-* header must be signed, SigV2 refused, anonymous refused."""

import datetime as dt

import pytest
import requests
from botocore.credentials import Credentials

from conflib import expect_raw, get_body, key_path, now_utc, ops, put, s3_error


@ops("ListObjectsV2")
def test_bad_signature(target, bucket):
    c = target.client(secret_key="wrong-secret-key-0123456789abcdefghijkl")
    with s3_error(403, "SignatureDoesNotMatch"):
        c.list_objects_v2(Bucket=bucket)


@ops("ListObjectsV2")
def test_unknown_access_key(target, bucket):
    c = target.client(access_key="AKIAUNKNOWNKEY000000")
    with s3_error(403, "InvalidAccessKeyId"):
        c.list_objects_v2(Bucket=bucket)


@ops("ListObjects")
@pytest.mark.parametrize("minutes", [-20, 20, -60 * 24])
def test_clock_skew_refused(raw, bucket, minutes):
    r = raw.get(f"/{bucket}", when=now_utc() + dt.timedelta(minutes=minutes))
    expect_raw(r, 403, "RequestTimeTooSkewed")


@ops("ListObjects")
@pytest.mark.parametrize("minutes", [-10, 10])
def test_clock_skew_within_limit(raw, bucket, minutes):
    expect_raw(raw.get(f"/{bucket}", when=now_utc() + dt.timedelta(minutes=minutes)), 200)


@ops("GetObject")
def test_tampered_path(raw, s3, bucket):
    put(s3, bucket, "secret", b"the secret")
    target, hdrs, _ = raw.sign("GET", key_path(bucket, "public"))
    r = raw.send("GET", key_path(bucket, "secret"), hdrs)
    expect_raw(r, 403, "SignatureDoesNotMatch")


@ops("ListObjectsV2")
def test_tampered_query(raw, bucket):
    target, hdrs, _ = raw.sign("GET", f"/{bucket}", query={"list-type": "2"})
    r = raw.send("GET", target + "&prefix=x", hdrs)
    expect_raw(r, 403, "SignatureDoesNotMatch")


@ops("PutObject")
def test_tampered_signed_header(raw, s3, bucket):
    target, hdrs, _ = raw.sign("PUT", key_path(bucket, "k"), headers={"x-amz-meta-role": "user"}, body=b"x")
    hdrs["x-amz-meta-role"] = "admin"
    expect_raw(raw.send("PUT", target, hdrs, b"x"), 403, "SignatureDoesNotMatch")


@ops("PutObject")
def test_tampered_body(raw, s3, bucket):
    target, hdrs, _ = raw.sign("PUT", key_path(bucket, "k"), body=b"signed body")
    r = raw.send("PUT", target, hdrs, b"evil body!!")
    expect_raw(r, 400, "XAmzContentSHA256Mismatch")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="k")


@ops("ListObjects")
def test_missing_content_sha256(raw, bucket):
    target, hdrs, _ = raw.sign("GET", f"/{bucket}")
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "x-amz-content-sha256"}
    expect_raw(raw.send("GET", target, hdrs), 400, "InvalidRequest")


@ops("ListObjects")
def test_invalid_content_sha256_value(raw, bucket):
    expect_raw(raw.get(f"/{bucket}", payload_hash="not-a-hash"), 400, "InvalidArgument")


@ops("ListObjects")
def test_missing_date(raw, bucket):
    target, hdrs, _ = raw.sign("GET", f"/{bucket}")
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "x-amz-date"}
    expect_raw(raw.send("GET", target, hdrs), 403, "AccessDenied")


@ops("ListObjects")
def test_malformed_authorization(raw, bucket):
    target, hdrs, _ = raw.sign("GET", f"/{bucket}")
    hdrs["Authorization"] = "AWS4-HMAC-SHA256 Credential=garbage"
    expect_raw(raw.send("GET", target, hdrs), 400, "AuthorizationHeaderMalformed")


@ops("ListObjects")
def test_header_and_query_auth_both(raw, bucket):
    presigned = raw.presign("GET", f"/{bucket}", expires=300)
    _, hdrs, _ = raw.sign("GET", f"/{bucket}")
    expect_raw(raw.send("GET", presigned, hdrs), 400, "InvalidArgument")


UNSIGNED = {
    "x-amz-meta-injected": ("PutObject", {"x-amz-meta-injected": "1"}, {}),
    "x-amz-tagging": ("PutObject", {"x-amz-tagging": "a=1"}, {}),
    "x-amz-storage-class": ("PutObject", {"x-amz-storage-class": "STANDARD"}, {}),
    "x-amz-copy-source": ("CopyObject", {"x-amz-copy-source": "/{bucket}/secret"}, {}),
    "x-amz-metadata-directive": ("CopyObject", {"x-amz-metadata-directive": "REPLACE", "x-amz-meta-x": "y"},
                                 {"x-amz-copy-source": "/{bucket}/secret"}),
    "x-amz-checksum-crc32": ("PutObject", {"x-amz-checksum-crc32": "AAAAAA=="}, {}),
}


@pytest.mark.parametrize("header", [pytest.param(h, marks=ops(UNSIGNED[h][0])) for h in UNSIGNED])
def test_unsigned_amz_header_refused(raw, s3, bucket, header):
    # "There were headers present in the request which were not signed": 403 AccessDenied.
    put(s3, bucket, "secret", b"the secret")
    _, unsigned, signed = UNSIGNED[header]
    fmt = lambda d: {k: v.format(bucket=bucket) for k, v in d.items()}  # noqa: E731
    body = b"" if "x-amz-copy-source" in {**unsigned, **signed} else b"x"
    r = raw.put(key_path(bucket, "target"), body=body, headers=fmt(signed), unsigned_headers=fmt(unsigned))
    expect_raw(r, 403, "AccessDenied")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="target")


@ops("ListObjects")
def test_sigv2_header_refused(target, bucket):
    c = target.client(signature_version="s3")
    with s3_error(400, "InvalidRequest"):
        c.list_objects(Bucket=bucket)


@ops("GetObject")
def test_sigv2_presigned_refused(target, s3, bucket):
    put(s3, bucket, "secret", b"the secret")
    c = target.client(signature_version="s3")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300)
    assert "Signature=" in url and "AWSAccessKeyId=" in url
    r = requests.get(url, timeout=30, verify=target.server.verify or True)
    assert r.status_code == 400 and b"<Code>InvalidRequest</Code>" in r.content, r.text
    assert b"the secret" not in r.content


# --- anonymous --------------------------------------------------------------------------------

ANON = {
    "GetObject": ("GET", "{key}", {}),
    "HeadObject": ("HEAD", "{key}", {}),
    "PutObject": ("PUT", "{bucket}/anon", {}),
    "DeleteObject": ("DELETE", "{key}", {}),
    "ListObjects": ("GET", "{bucket}", {}),
    "ListObjectsV2": ("GET", "{bucket}", {"list-type": "2"}),
    "ListBuckets": ("GET", "", {}),
    "CreateBucket": ("PUT", "{bucket}-anon", {}),
    "DeleteBucket": ("DELETE", "{bucket}", {}),
    "CreateMultipartUpload": ("POST", "{bucket}/anon", {"uploads": ""}),
    "GetObjectTagging": ("GET", "{key}", {"tagging": ""}),
}


@pytest.mark.parametrize("op", [pytest.param(o, marks=ops(o)) for o in ANON])
def test_anonymous_refused(raw, s3, bucket, op):
    put(s3, bucket, "secret", b"the secret")
    method, path, query = ANON[op]
    path = "/" + path.format(bucket=bucket, key=f"{bucket}/secret")
    r = raw.request(method, path, query=query or None, sign=False, body=b"x" if method == "PUT" else b"")
    expect_raw(r, 403, None if method == "HEAD" else "AccessDenied")
    assert b"the secret" not in r.body
    # Nothing changed.
    assert get_body(s3, bucket, "secret") == b"the secret"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with s3_error(404):
        s3.head_bucket(Bucket=f"{bucket}-anon")
