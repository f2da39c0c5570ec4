"""STRAIT-SPECIFIC DOCUMENTED CHOICES — not S3 behaviour. Skipped on moto (marker strait_only).

What a POSIX tree forces and ARCHITECTURE.md documents ("Mapping onto the file system"): a key
that is both an object and a prefix, directory markers, files created outside the gateway, keys
a file system cannot hold."""

import os

import pytest

from conflib import get_body, keys_of, ops, prefixes_of, put, s3_error

pytestmark = pytest.mark.strait_only


@ops("PutObject")
def test_key_below_object_is_conflict(s3, bucket):
    put(s3, bucket, "a", b"file")
    with s3_error(409, "ObjectParentIsFile"):
        put(s3, bucket, "a/b")


@ops("PutObject")
def test_object_over_prefix_is_conflict(s3, bucket):
    put(s3, bucket, "a/b")
    with s3_error(409, "ExistingObjectIsDirectory"):
        put(s3, bucket, "a", b"file")


@ops("CopyObject")
def test_copy_into_conflict(s3, bucket):
    put(s3, bucket, "a", b"file")
    put(s3, bucket, "src")
    with s3_error(409, "ObjectParentIsFile"):
        s3.copy_object(Bucket=bucket, Key="a/b", CopySource={"Bucket": bucket, "Key": "src"})


@ops("PutObject", "DeleteObject")
def test_conflict_gone_after_delete(s3, bucket):
    put(s3, bucket, "a", b"file")
    s3.delete_object(Bucket=bucket, Key="a")
    put(s3, bucket, "a/b", b"now a prefix")
    assert get_body(s3, bucket, "a/b") == b"now a prefix"


@ops("PutObject", "HeadObject")
def test_directory_marker_is_directory(s3, bucket, bucket_dir):
    put(s3, bucket, "dir/", b"", Metadata={"m": "1"})
    assert (bucket_dir / "dir").is_dir()
    assert s3.head_object(Bucket=bucket, Key="dir/")["Metadata"] == {"m": "1"}


@ops("PutObject")
def test_directory_marker_must_be_empty(s3, bucket):
    with s3_error(400):
        put(s3, bucket, "dir/", b"not empty")


@ops("DeleteObject", "ListObjectsV2")
def test_directory_marker_delete_keeps_children(s3, bucket):
    put(s3, bucket, "d/", b"")
    put(s3, bucket, "d/child")
    s3.delete_object(Bucket=bucket, Key="d/")
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == ["d/child"]


@ops("GetObject", "ListObjectsV2")
def test_file_created_outside_is_object(s3, bucket, bucket_dir):
    (bucket_dir / "hpc" / "out").mkdir(parents=True)
    (bucket_dir / "hpc" / "out" / "result.dat").write_bytes(b"written by a job")
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == ["hpc/out/result.dat"]
    assert get_body(s3, bucket, "hpc/out/result.dat") == b"written by a job"


@ops("HeadObject")
def test_file_created_outside_has_multipart_shaped_etag(s3, bucket, bucket_dir):
    (bucket_dir / "f").write_bytes(b"outside")
    etag = s3.head_object(Bucket=bucket, Key="f")["ETag"]
    assert etag.endswith('-1"'), etag


@ops("HeadObject")
def test_file_changed_outside_changes_etag(s3, bucket, bucket_dir):
    (bucket_dir / "f").write_bytes(b"v1")
    e1 = s3.head_object(Bucket=bucket, Key="f")["ETag"]
    (bucket_dir / "f").write_bytes(b"v2 longer")
    os.utime(bucket_dir / "f", ns=(1, 2))
    assert s3.head_object(Bucket=bucket, Key="f")["ETag"] != e1


@ops("ListObjectsV2")
def test_empty_directory_outside_is_no_prefix(s3, bucket, bucket_dir):
    (bucket_dir / "empty" / "deeper").mkdir(parents=True)
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert prefixes_of(r) == [] and keys_of(r) == []


@ops("ListBuckets")
def test_directory_created_outside_is_bucket(s3, target):
    name = f"outside-{os.urandom(4).hex()}"
    (target.root / name).mkdir()
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@ops("PutObject")
@pytest.mark.parametrize("key", ["a//b", "/leading", "a/./b", "a/../b"])
def test_unmappable_keys_refused(s3, bucket, key):
    with s3_error(400):
        put(s3, bucket, key)


@ops("PutObject")
def test_component_over_255_bytes_refused(s3, bucket):
    with s3_error(400, "KeyTooLongError"):
        put(s3, bucket, "k" * 256)


@ops("PutObject", "ListObjectsV2")
def test_internal_names_hidden(s3, bucket, bucket_dir):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"x")
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == []
    with s3_error(400):
        put(s3, bucket, ".strait-uploads/x")
