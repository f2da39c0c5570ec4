"""Object CRUD: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects; keys with special
characters; key length; Content-MD5 and x-amz-content-sha256 integrity."""

import hashlib

import pytest

from conflib import (MIB, send_all_then_read, blob, etag_of, expect_raw, get_body, key_path, keys_of, md5_b64, ops, put,
                     s3_error)

SIZES = {"empty": 0, "one-byte": 1, "1000-bytes": 1000, "1MiB-plus-1": MIB + 1, "8MiB": 8 * MIB}


@ops("PutObject", "GetObject")
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_put_get_roundtrip(s3, bucket, size):
    data = blob(size, seed=size)
    r = put(s3, bucket, "obj", data)
    assert r["ETag"] == etag_of(data)
    g = s3.get_object(Bucket=bucket, Key="obj")
    assert g["ContentLength"] == size
    assert g["ETag"] == etag_of(data)
    assert g["Body"].read() == data


@ops("PutObject", "GetObject")
def test_overwrite_replaces(s3, bucket):
    put(s3, bucket, "k", b"first version, longer")
    put(s3, bucket, "k", b"second")
    assert get_body(s3, bucket, "k") == b"second"
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 6


@ops("GetObject")
def test_get_missing(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="absent")


@ops("HeadObject")
def test_head_missing_has_no_body(raw, bucket):
    r = raw.head(key_path(bucket, "absent"))
    expect_raw(r, 404)
    assert r.body == b""


@ops("HeadObject")
def test_head_fields(raw, s3, bucket):
    data = b"head me" * 10
    put(s3, bucket, "h", data, ContentType="text/plain")
    r = raw.head(key_path(bucket, "h"))
    expect_raw(r, 200)
    assert r.body == b""
    assert r.header("Content-Length") == str(len(data))
    assert r.header("ETag") == etag_of(data)
    assert r.header("Content-Type") == "text/plain"
    assert r.header("Accept-Ranges") == "bytes"
    assert r.header("Last-Modified", ).endswith(" GMT")
    assert r.header("x-amz-request-id")


@ops("GetObject")
def test_get_prefix_of_key_is_missing(s3, bucket):
    put(s3, bucket, "dir/leaf")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="dir")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="di")


@ops("DeleteObject", "GetObject")
def test_delete(s3, bucket):
    put(s3, bucket, "gone")
    r = s3.delete_object(Bucket=bucket, Key="gone")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="gone")


@ops("DeleteObject")
def test_delete_missing_is_204(s3, bucket):
    r = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204


@ops("DeleteObject", "ListObjectsV2")
def test_delete_nested_leaves_no_prefix(s3, bucket):
    put(s3, bucket, "a/b/c/leaf")
    s3.delete_object(Bucket=bucket, Key="a/b/c/leaf")
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert r["KeyCount"] == 0 and "CommonPrefixes" not in r


@ops("DeleteObjects")
def test_delete_objects(s3, bucket):
    for k in ("a", "b", "c/d"):
        put(s3, bucket, k)
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "c/d"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["a", "c/d"]
    assert not r.get("Errors")
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == ["b"]


@ops("DeleteObjects")
def test_delete_objects_missing_keys_reported_deleted(s3, bucket):
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "nope1"}, {"Key": "nope2"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["nope1", "nope2"]
    assert not r.get("Errors")


@ops("DeleteObjects")
def test_delete_objects_quiet(s3, bucket):
    put(s3, bucket, "q")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
    assert not r.get("Deleted") and not r.get("Errors")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


@ops("DeleteObjects")
def test_delete_objects_more_than_1000(s3, bucket):
    with s3_error(400, "MalformedXML"):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})


@ops("DeleteObjects")
def test_delete_objects_requires_integrity_header(raw, bucket):
    body = b'<Delete><Object><Key>k</Key></Object></Delete>'
    r = raw.post(f"/{bucket}", query={"delete": ""}, body=body)
    expect_raw(r, 400, "InvalidRequest")


SPECIAL_KEYS = {
    "space": "with space.txt",
    "plus": "a+b+c",
    "percent": "100%/50%25",
    "question": "what?.txt",
    "hash": "issue#42",
    "ampersand": "tom&jerry",
    "equals": "k=v;x=y",
    "colon-at": "user@host:path",
    "dollar-comma": "$1,000",
    "brackets": "[a]{b}(c)",
    "quotes": "it's \"quoted\"",
    "angle": "<tag>",
    "backslash": "back\\slash",
    "caret-pipe": "a^b|c`d",
    "tilde-bang-star": "~!*",
    "unicode": "ünïcödé/日本語.txt",
    "emoji": "emoji 😀.txt",
    "double-slash": "a//b",
    "leading-slash": "/leading",
    "dot-segments-inside": "a.b/.c/d..e",
    "tab": "tab\tchar",
}


@ops("PutObject", "GetObject", "HeadObject", "ListObjectsV2", "DeleteObject")
@pytest.mark.parametrize("key", SPECIAL_KEYS.values(), ids=SPECIAL_KEYS.keys())
def test_special_character_keys(s3, bucket, key):
    data = key.encode()
    put(s3, bucket, key, data)
    assert get_body(s3, bucket, key) == data
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data)
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def _long_key(n: int) -> str:
    parts, left = [], n
    while left > 0:
        take = min(200, left)
        parts.append("k" * take)
        left -= take + 1
    key = "/".join(parts)
    return key[:n]


@ops("PutObject", "GetObject")
def test_key_1024_bytes(s3, bucket):
    key = _long_key(1024)
    assert len(key.encode()) == 1024
    put(s3, bucket, key, b"long")
    assert get_body(s3, bucket, key) == b"long"


@ops("PutObject")
def test_key_1025_bytes(s3, bucket):
    with s3_error(400, "KeyTooLongError"):
        put(s3, bucket, _long_key(1025))


@ops("PutObject")
def test_key_multibyte_over_1024_bytes(s3, bucket):
    key = "/".join(["é" * 100] * 6)  # 600 characters, 1205 bytes
    with s3_error(400, "KeyTooLongError"):
        put(s3, bucket, key)


@ops("PutObject")
def test_content_md5_ok(raw, bucket):
    r = raw.put(key_path(bucket, "md5"), body=b"body", headers={"Content-MD5": md5_b64(b"body")})
    expect_raw(r, 200)
    assert r.header("ETag") == etag_of(b"body")


@ops("PutObject")
def test_content_md5_mismatch(raw, s3, bucket):
    r = raw.put(key_path(bucket, "md5"), body=b"body", headers={"Content-MD5": md5_b64(b"other")})
    expect_raw(r, 400, "BadDigest")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="md5")


@ops("PutObject")
def test_content_md5_invalid(raw, bucket):
    r = raw.put(key_path(bucket, "md5"), body=b"body", headers={"Content-MD5": "not-base64!"})
    expect_raw(r, 400, "InvalidDigest")


@ops("PutObject")
def test_content_sha256_mismatch(raw, s3, bucket):
    r = raw.put(key_path(bucket, "sha"), body=b"body",
                payload_hash=hashlib.sha256(b"other").hexdigest())
    expect_raw(r, 400, "XAmzContentSHA256Mismatch")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="sha")


@ops("PutObject")
def test_unsigned_payload_accepted(raw, s3, bucket):
    r = raw.put(key_path(bucket, "u"), body=b"unsigned", payload_hash="UNSIGNED-PAYLOAD")
    expect_raw(r, 200)
    assert get_body(s3, bucket, "u") == b"unsigned"


@ops("PutObject")
def test_put_without_content_length(raw, s3, bucket):
    # A plain (not aws-chunked) PUT must declare its length: 411 MissingContentLength.
    target, hdrs, _ = raw.sign("PUT", key_path(bucket, "te"), payload_hash="UNSIGNED-PAYLOAD")
    hdrs["Transfer-Encoding"] = "chunked"
    r = send_all_then_read(raw, "PUT", target, hdrs, b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")
    expect_raw(r, 411, "MissingContentLength")
