"""CopyObject: directives, conditions, keys that need encoding, conflicts."""

import datetime as dt
import os
from urllib.parse import quote

from helpers import MIB, key_path, md5_hex, s3_error


def src(s3, bucket, key="src", body=b"source body", **kw):
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)["ETag"]
    return etag, s3.head_object(Bucket=bucket, Key=key)["LastModified"]


def test_copy_object_same_bucket(s3, bucket):
    etag, _ = src(s3, bucket)
    r = s3.copy_object(Bucket=bucket, Key="dst/copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["CopyObjectResult"]["ETag"] == etag
    assert s3.get_object(Bucket=bucket, Key="dst/copy")["Body"].read() == b"source body"
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"source body"


def test_copy_object_cross_bucket(s3, bucket):
    other = bucket[:50] + "-dst"
    s3.create_bucket(Bucket=other)
    src(s3, bucket)
    s3.copy_object(Bucket=other, Key="c", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object(Bucket=other, Key="c")["Body"].read() == b"source body"


def test_copy_object_metadata_copy(s3, bucket):
    src(s3, bucket, Metadata={"a": "1"}, ContentType="text/x-src", CacheControl="no-store")
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   Metadata={"ignored": "yes"})  # COPY directive: request metadata is ignored
    h = s3.head_object(Bucket=bucket, Key="c")
    assert h["Metadata"] == {"a": "1"}
    assert h["ContentType"] == "text/x-src"
    assert h["CacheControl"] == "no-store"


def test_copy_object_metadata_replace(s3, bucket):
    src(s3, bucket, Metadata={"a": "1"}, ContentType="text/x-src")
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/x-new")
    h = s3.head_object(Bucket=bucket, Key="c")
    assert h["Metadata"] == {"b": "2"}
    assert h["ContentType"] == "text/x-new"


def test_copy_object_onto_itself_without_replace(s3, bucket):
    src(s3, bucket)
    with s3_error(400, "InvalidRequest"):
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})


def test_copy_object_onto_itself_with_replace(s3, bucket):
    src(s3, bucket, Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"a": "2"})
    h = s3.head_object(Bucket=bucket, Key="src")
    assert h["Metadata"] == {"a": "2"}
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"source body"


def test_copy_object_invalid_directive(s3, bucket):
    src(s3, bucket)
    with s3_error(400, "InvalidArgument"):
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                       MetadataDirective="MERGE")


def test_copy_object_missing_source_key(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "absent"})


def test_copy_object_missing_source_bucket(s3, bucket):
    with s3_error(404, "NoSuchBucket"):
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": "absent-" + os.urandom(4).hex(),
                                                           "Key": "k"})


def test_copy_object_missing_destination_bucket(s3, bucket):
    src(s3, bucket)
    with s3_error(404, "NoSuchBucket"):
        s3.copy_object(Bucket="absent-" + os.urandom(4).hex(), Key="c",
                       CopySource={"Bucket": bucket, "Key": "src"})


def test_copy_object_source_if_match(s3, bucket):
    etag, _ = src(s3, bucket)
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   CopySourceIfMatch=etag)
    with s3_error(412, "PreconditionFailed"):
        s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfMatch=f'"{md5_hex(b"nope")}"')
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="c2")


def test_copy_object_source_if_none_match(s3, bucket):
    etag, _ = src(s3, bucket)
    with s3_error(412, "PreconditionFailed"):
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfNoneMatch=etag)
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   CopySourceIfNoneMatch=f'"{md5_hex(b"nope")}"')


def test_copy_object_source_if_modified_since(s3, bucket):
    _, lm = src(s3, bucket)
    with s3_error(412, "PreconditionFailed"):
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfModifiedSince=lm + dt.timedelta(hours=1))
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   CopySourceIfModifiedSince=lm - dt.timedelta(hours=1))


def test_copy_object_source_if_unmodified_since(s3, bucket):
    _, lm = src(s3, bucket)
    with s3_error(412, "PreconditionFailed"):
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfUnmodifiedSince=lm - dt.timedelta(hours=1))
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   CopySourceIfUnmodifiedSince=lm + dt.timedelta(hours=1))


def test_copy_object_encoded_source_keys(s3, bucket):
    for k in ("sp ace/a+b", "ünï/日本%41", "q?x&y=1#z"):
        src(s3, bucket, key=k, body=k.encode())
        s3.copy_object(Bucket=bucket, Key="copy/" + k, CopySource={"Bucket": bucket, "Key": k})
        assert s3.get_object(Bucket=bucket, Key="copy/" + k)["Body"].read() == k.encode()


def test_copy_object_raw_source_header_forms(raw, s3, bucket):
    src(s3, bucket, key="a b+c", body=b"raw")
    # With and without the leading slash; the key URL-encoded.
    for i, header in enumerate([f"/{bucket}/{quote('a b+c')}", f"{bucket}/{quote('a b+c')}"]):
        r = raw.put(key_path(bucket, f"dst{i}"), headers={"x-amz-copy-source": header})
        assert r.status == 200, r
        assert r.xml.tag == "CopyObjectResult"
        assert s3.get_object(Bucket=bucket, Key=f"dst{i}")["Body"].read() == b"raw"


def test_copy_object_tags_copied_and_replaced(s3, bucket):
    src(s3, bucket, Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="c1", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object_tagging(Bucket=bucket, Key="c1")["TagSet"] == [{"Key": "a", "Value": "1"}]
    s3.copy_object(Bucket=bucket, Key="c2", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="b=2")
    assert s3.get_object_tagging(Bucket=bucket, Key="c2")["TagSet"] == [{"Key": "b", "Value": "2"}]


def test_copy_object_overwrites_destination(s3, bucket):
    src(s3, bucket)
    s3.put_object(Bucket=bucket, Key="c", Body=b"old destination", Metadata={"old": "1"})
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"})
    g = s3.get_object(Bucket=bucket, Key="c")
    assert g["Body"].read() == b"source body" and g["Metadata"] == {}


def test_copy_object_destination_parent_is_file(s3, bucket):
    src(s3, bucket)
    s3.put_object(Bucket=bucket, Key="f", Body=b"file")
    with s3_error(409, "ObjectParentIsFile"):
        s3.copy_object(Bucket=bucket, Key="f/child", CopySource={"Bucket": bucket, "Key": "src"})


def test_copy_object_large(s3, bucket):
    body = os.urandom(12 * MIB)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    s3.copy_object(Bucket=bucket, Key="big2", CopySource={"Bucket": bucket, "Key": "big"})
    assert s3.get_object(Bucket=bucket, Key="big2")["Body"].read() == body


def test_copy_object_from_file_on_disk(s3, bucket, bucket_dir):
    (bucket_dir / "disk.txt").write_bytes(b"made on disk")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "disk.txt"})
    g = s3.get_object(Bucket=bucket, Key="copied")
    assert g["Body"].read() == b"made on disk"
    assert g["ETag"] == f'"{md5_hex(b"made on disk")}"'


def test_copy_object_source_unmappable_key(raw, bucket):
    r = raw.put(key_path(bucket, "dst"), headers={"x-amz-copy-source": f"/{bucket}/a/../../etc/passwd"})
    assert r.status in (400, 404), r
    assert r.code in ("InvalidArgument", "NoSuchKey"), r
