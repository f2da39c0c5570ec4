"""CopyObject: same and cross bucket, metadata and tagging directives, copy onto itself,
source key encoding, errors."""

import pytest

from conflib import MIB, blob, etag_of, expect_raw, get_body, key_path, ops, put, s3_error

pytestmark = ops("CopyObject")


def test_same_bucket(s3, bucket):
    put(s3, bucket, "src", b"copy me")
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == etag_of(b"copy me")
    assert r["CopyObjectResult"]["LastModified"]
    assert get_body(s3, bucket, "dst") == b"copy me"
    assert get_body(s3, bucket, "src") == b"copy me"


def test_cross_bucket(s3, bucket, bucket2):
    put(s3, bucket, "src", b"across")
    s3.copy_object(Bucket=bucket2, Key="nested/dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert get_body(s3, bucket2, "nested/dst") == b"across"


def test_metadata_copied_by_default(s3, bucket):
    put(s3, bucket, "src", b"m", Metadata={"a": "1"}, ContentType="text/plain",
        ContentDisposition="inline", CacheControl="no-cache")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   Metadata={"ignored": "x"})
    h = s3.head_object(Bucket=bucket, Key="dst")
    assert h["Metadata"] == {"a": "1"}
    assert h["ContentType"] == "text/plain"
    assert h["ContentDisposition"] == "inline" and h["CacheControl"] == "no-cache"


def test_metadata_replace(s3, bucket):
    put(s3, bucket, "src", b"m", Metadata={"a": "1"}, ContentType="text/plain")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="application/json")
    h = s3.head_object(Bucket=bucket, Key="dst")
    assert h["Metadata"] == {"b": "2"} and h["ContentType"] == "application/json"
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"a": "1"}


def test_replace_without_content_type_defaults(s3, bucket):
    put(s3, bucket, "src", b"m", ContentType="text/plain")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE")
    assert s3.head_object(Bucket=bucket, Key="dst")["ContentType"] == "binary/octet-stream"


def test_onto_itself_without_replace(s3, bucket):
    put(s3, bucket, "self", b"s")
    with s3_error(400, "InvalidRequest"):
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})


def test_onto_itself_with_replace(s3, bucket):
    put(s3, bucket, "self", b"s", Metadata={"v": "1"})
    s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"},
                   MetadataDirective="REPLACE", Metadata={"v": "2"})
    h = s3.head_object(Bucket=bucket, Key="self")
    assert h["Metadata"] == {"v": "2"}
    assert get_body(s3, bucket, "self") == b"s"


def test_invalid_metadata_directive(raw, s3, bucket):
    put(s3, bucket, "src", b"s")
    r = raw.put(key_path(bucket, "dst"), headers={"x-amz-copy-source": f"/{bucket}/src",
                                                  "x-amz-metadata-directive": "MERGE"})
    expect_raw(r, 400, "InvalidArgument")


def test_missing_source_key(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "absent"})


def test_missing_source_bucket(s3, bucket, bucket_name):
    with s3_error(404, "NoSuchBucket"):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket_name + "-x", "Key": "k"})


def test_missing_destination_bucket(s3, bucket, bucket_name):
    put(s3, bucket, "src")
    with s3_error(404, "NoSuchBucket"):
        s3.copy_object(Bucket=bucket_name + "-x", Key="dst", CopySource={"Bucket": bucket, "Key": "src"})


SOURCE_KEYS = {"space": "a b.txt", "plus": "a+b", "percent": "50%", "unicode": "ü/日本.txt",
               "question-hash": "q?#x", "ampersand": "a&b=c"}


@pytest.mark.parametrize("key", SOURCE_KEYS.values(), ids=SOURCE_KEYS.keys())
def test_encoded_source_keys(s3, bucket, key):
    put(s3, bucket, key, key.encode())
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": key})
    assert get_body(s3, bucket, "dst") == key.encode()


@pytest.mark.parametrize("form", ["leading-slash", "no-leading-slash"])
def test_copy_source_header_forms(raw, s3, bucket, form):
    put(s3, bucket, "dir/a b", b"form")
    src = f"{bucket}/dir/a%20b"
    if form == "leading-slash":
        src = "/" + src
    r = raw.put(key_path(bucket, "dst"), headers={"x-amz-copy-source": src})
    expect_raw(r, 200)
    assert b"<CopyObjectResult" in r.body and b"<ETag>" in r.body
    assert get_body(s3, bucket, "dst") == b"form"


@ops("GetObjectTagging")
def test_tags_copied_by_default(s3, bucket):
    put(s3, bucket, "src", Tagging="a=1&b=2")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    tags = s3.get_object_tagging(Bucket=bucket, Key="dst")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("a", "1"), ("b", "2")]


@ops("GetObjectTagging")
def test_tags_replaced(s3, bucket):
    put(s3, bucket, "src", Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="z=9")
    tags = s3.get_object_tagging(Bucket=bucket, Key="dst")["TagSet"]
    assert [(t["Key"], t["Value"]) for t in tags] == [("z", "9")]


def test_overwrites_destination(s3, bucket):
    put(s3, bucket, "src", b"new")
    put(s3, bucket, "dst", b"old and longer", Metadata={"old": "1"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert get_body(s3, bucket, "dst") == b"new"
    assert s3.head_object(Bucket=bucket, Key="dst")["Metadata"] == {}


def test_large_object(s3, bucket):
    data = blob(7 * MIB, seed=3)
    put(s3, bucket, "big", data)
    r = s3.copy_object(Bucket=bucket, Key="big2", CopySource={"Bucket": bucket, "Key": "big"})
    assert r["CopyObjectResult"]["ETag"] == etag_of(data)
    assert get_body(s3, bucket, "big2") == data


def test_empty_object(s3, bucket):
    put(s3, bucket, "e", b"")
    s3.copy_object(Bucket=bucket, Key="e2", CopySource={"Bucket": bucket, "Key": "e"})
    assert s3.head_object(Bucket=bucket, Key="e2")["ContentLength"] == 0


def test_copy_does_not_alter_source_last_modified(s3, bucket):
    put(s3, bucket, "src", b"x")
    before = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.head_object(Bucket=bucket, Key="src")["LastModified"] == before
