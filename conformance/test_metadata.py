"""User metadata (x-amz-meta-*) and system headers: what PutObject stores and GetObject/HeadObject
return, defaults, limits, response-* overrides, storage class."""

import datetime as dt
import hashlib

import pytest

from conflib import expect_raw, get_body, key_path, ops, put, s3_error

pytestmark = ops("PutObject", "GetObject", "HeadObject")


def test_user_metadata_roundtrip(s3, bucket):
    meta = {"color": "blue", "with-dash": "a b c", "under_score": "1", "num": "42"}
    put(s3, bucket, "m", Metadata=meta)
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == meta
    assert s3.get_object(Bucket=bucket, Key="m")["Metadata"] == meta


def test_user_metadata_names_lowercased(raw, s3, bucket):
    r = raw.put(key_path(bucket, "m"), body=b"x", headers={"X-Amz-Meta-MixedCase": "Value"})
    expect_raw(r, 200)
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == {"mixedcase": "Value"}


def test_user_metadata_value_case_and_spaces_kept(s3, bucket):
    put(s3, bucket, "m", Metadata={"k": "Mixed Case  value"})
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == {"k": "Mixed Case  value"}


def test_user_metadata_many_entries(s3, bucket):
    meta = {f"key{i:02d}": f"value-{i}" for i in range(40)}
    put(s3, bucket, "m", Metadata=meta)
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == meta


def test_user_metadata_on_empty_object(s3, bucket):
    put(s3, bucket, "empty", b"", Metadata={"a": "1"})
    h = s3.head_object(Bucket=bucket, Key="empty")
    assert h["ContentLength"] == 0 and h["Metadata"] == {"a": "1"}


def test_user_metadata_too_large(s3, bucket):
    # The user-defined metadata (names and values) is limited to 2 KB.
    with s3_error(400, "MetadataTooLarge"):
        put(s3, bucket, "m", Metadata={"big": "v" * 2100})


def test_user_metadata_just_under_limit(s3, bucket):
    put(s3, bucket, "m", Metadata={"big": "v" * 1900})
    assert len(s3.head_object(Bucket=bucket, Key="m")["Metadata"]["big"]) == 1900


def test_overwrite_replaces_metadata(s3, bucket):
    put(s3, bucket, "m", Metadata={"old": "1"}, ContentType="text/plain")
    put(s3, bucket, "m", Metadata={"new": "2"})
    h = s3.head_object(Bucket=bucket, Key="m")
    assert h["Metadata"] == {"new": "2"}
    assert h["ContentType"] == "binary/octet-stream"


def test_user_metadata_headers_on_wire(raw, s3, bucket):
    put(s3, bucket, "m", Metadata={"alpha": "one"})
    r = raw.get(key_path(bucket, "m"))
    assert r.header("x-amz-meta-alpha") == "one"


SYSTEM = {
    "ContentType": ("Content-Type", "text/x-conformance; charset=utf-8"),
    "ContentEncoding": ("Content-Encoding", "gzip"),
    "ContentDisposition": ("Content-Disposition", 'attachment; filename="report.txt"'),
    "ContentLanguage": ("Content-Language", "de-CH"),
    "CacheControl": ("Cache-Control", "max-age=3600, must-revalidate"),
    "Expires": ("Expires", "Wed, 21 Oct 2037 07:28:00 GMT"),
}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("param", SYSTEM.keys())
def test_system_header_roundtrip(raw, bucket, param, method):
    header, value = SYSTEM[param]
    r = raw.put(key_path(bucket, "s"), body=b"payload", headers={header: value})
    expect_raw(r, 200)
    g = raw.request(method, key_path(bucket, "s"))
    expect_raw(g, 200)
    assert g.header(header) == value


def test_default_content_type(raw, s3, bucket):
    r = raw.put(key_path(bucket, "d"), body=b"no type")
    expect_raw(r, 200)
    assert s3.head_object(Bucket=bucket, Key="d")["ContentType"] == "binary/octet-stream"


OVERRIDES = {
    "ResponseContentType": ("Content-Type", "application/x-override"),
    "ResponseContentLanguage": ("Content-Language", "fr"),
    "ResponseContentDisposition": ("Content-Disposition", "inline"),
    "ResponseContentEncoding": ("Content-Encoding", "identity"),
    "ResponseCacheControl": ("Cache-Control", "no-store"),
    "ResponseExpires": ("Expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
}


@pytest.mark.parametrize("param", OVERRIDES.keys())
def test_response_header_override(s3, bucket, param):
    header, value = OVERRIDES[param]
    put(s3, bucket, "o", b"body", ContentType="text/plain", CacheControl="max-age=1")
    kw = {param: value}
    if param == "ResponseExpires":
        kw = {param: dt.datetime(2037, 1, 1, tzinfo=dt.timezone.utc)}
    g = s3.get_object(Bucket=bucket, Key="o", **kw)
    assert g["ResponseMetadata"]["HTTPHeaders"][header.lower()] == value
    assert g["Body"].read() == b"body"
    # The override is per response; the stored header is unchanged.
    h = s3.head_object(Bucket=bucket, Key="o")
    assert h["ContentType"] == "text/plain" and h["CacheControl"] == "max-age=1"


def test_response_override_on_head(raw, s3, bucket):
    put(s3, bucket, "o", b"body", ContentType="text/plain")
    r = raw.head(key_path(bucket, "o"), query={"response-content-type": "image/png"})
    expect_raw(r, 200)
    assert r.header("Content-Type") == "image/png"


def test_storage_class_standard_accepted(s3, bucket):
    put(s3, bucket, "sc", StorageClass="STANDARD")
    # HeadObject omits x-amz-storage-class for STANDARD objects.
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="sc")
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert listed["StorageClass"] == "STANDARD"


def test_storage_class_invalid(raw, bucket):
    r = raw.put(key_path(bucket, "sc"), body=b"x", headers={"x-amz-storage-class": "PLATINUM"})
    expect_raw(r, 400, "InvalidStorageClass")


def test_last_modified_consistent(s3, bucket):
    put(s3, bucket, "t", b"time")
    h = s3.head_object(Bucket=bucket, Key="t")["LastModified"]
    g = s3.get_object(Bucket=bucket, Key="t")["LastModified"]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"][0]["LastModified"]
    assert h == g
    assert abs((listed.replace(microsecond=0) - h).total_seconds()) < 1
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - h).total_seconds()) < 120


def test_etag_is_quoted_md5(raw, s3, bucket):
    put(s3, bucket, "e", b"etag body")
    r = raw.head(key_path(bucket, "e"))
    assert r.header("ETag") == f'"{hashlib.md5(b"etag body").hexdigest()}"'


def test_metadata_with_get_body_unchanged(s3, bucket):
    put(s3, bucket, "b", b"bytes", Metadata={"x": "y"}, ContentType="application/json")
    assert get_body(s3, bucket, "b") == b"bytes"
