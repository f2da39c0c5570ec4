"""Buckets: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation, and the
NoSuchBucket answer of every bucket-scoped operation."""

import pytest

from conflib import expect_raw, ops, put, s3_error, unique


@ops("CreateBucket", "HeadBucket")
def test_create_then_head(s3, bucket_name):
    r = s3.create_bucket(Bucket=bucket_name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["Location"] == f"/{bucket_name}"
    assert s3.head_bucket(Bucket=bucket_name)["ResponseMetadata"]["HTTPStatusCode"] == 200


@ops("CreateBucket")
def test_create_existing_owned_us_east_1(s3, bucket):
    # us-east-1 (the legacy global region) answers an owner's re-create with 200 OK; other
    # regions answer 409 BucketAlreadyOwnedByYou.
    r = s3.create_bucket(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


@ops("CreateBucket")
def test_create_existing_owned_other_region(target):
    c = target.client(region="eu-west-1")
    name = unique("dup")
    c.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with s3_error(409, "BucketAlreadyOwnedByYou"):
        c.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


@ops("CreateBucket")
def test_create_existing_keeps_objects(s3, bucket):
    put(s3, bucket, "k", b"kept")
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        pass  # the answer is the case above; here only the contents matter
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"


INVALID_NAMES = {
    "too-short": "ab",
    "too-long": "a" * 64,
    "uppercase": "MyBucket-conf",
    "underscore": "my_bucket_conf",
    "ip-address": "192.168.5.4",
    "leading-hyphen": "-bucket-conf",
    "trailing-hyphen": "bucket-conf-",
    "double-dot": "bucket..conf",
    "xn-prefix": "xn--bucket-conf",
    "sthree-prefix": "sthree-bucket-conf",
    "s3alias-suffix": "bucket-conf-s3alias",
    "ol-s3-suffix": "bucket-conf--ol-s3",
}


@ops("CreateBucket")
@pytest.mark.parametrize("name", INVALID_NAMES.values(), ids=INVALID_NAMES.keys())
def test_create_invalid_name(raw, s3, name):
    r = raw.put(f"/{name}")
    expect_raw(r, 400, "InvalidBucketName")


VALID_NAMES = {
    "three-chars": lambda: unique("a")[:3],
    "sixty-three-chars": lambda: (unique("b") + "x" * 63)[:63],
    "dots": lambda: f"conf.{unique('d')}.x",
    "leading-digit": lambda: "1" + unique("n"),
}


@ops("CreateBucket", "DeleteBucket")
@pytest.mark.parametrize("make", VALID_NAMES.values(), ids=VALID_NAMES.keys())
def test_create_valid_name(s3, make):
    name = make()
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)


@ops("DeleteBucket", "HeadBucket")
def test_delete_empty(s3, bucket):
    r = s3.delete_bucket(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error(404):
        s3.head_bucket(Bucket=bucket)


@ops("DeleteBucket")
def test_delete_missing(s3, bucket_name):
    with s3_error(404, "NoSuchBucket"):
        s3.delete_bucket(Bucket=bucket_name)


@ops("DeleteBucket")
def test_delete_not_empty(s3, bucket):
    put(s3, bucket, "dir/k")
    with s3_error(409, "BucketNotEmpty"):
        s3.delete_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)


@ops("DeleteBucket", "DeleteObject")
def test_delete_after_emptying(s3, bucket):
    put(s3, bucket, "a/b/c")
    s3.delete_object(Bucket=bucket, Key="a/b/c")
    s3.delete_bucket(Bucket=bucket)
    with s3_error(404, "NoSuchBucket"):
        s3.list_objects_v2(Bucket=bucket)


@ops("HeadBucket")
def test_head_missing(raw, bucket_name):
    r = raw.head(f"/{bucket_name}")
    expect_raw(r, 404)
    assert r.body == b""


@ops("ListBuckets")
def test_list_contains_created(s3, bucket):
    r = s3.list_buckets()
    names = [b["Name"] for b in r["Buckets"]]
    assert bucket in names
    b = next(b for b in r["Buckets"] if b["Name"] == bucket)
    assert b["CreationDate"].year >= 2024
    assert "ID" in r["Owner"]


@ops("ListBuckets")
def test_list_sorted_by_name(s3):
    base = unique("sort")
    made = [f"{base}-{c}" for c in ("c", "a", "b")]
    for n in made:
        s3.create_bucket(Bucket=n)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == sorted(names)


@ops("ListBuckets", "DeleteBucket")
def test_list_omits_deleted(s3, bucket):
    s3.delete_bucket(Bucket=bucket)
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@ops("ListBuckets")
def test_list_prefix(s3):
    base = unique("lbp")
    for n in ("x1", "x2"):
        s3.create_bucket(Bucket=f"{base}-{n}")
    r = s3.list_buckets(Prefix=base)
    assert [b["Name"] for b in r["Buckets"]] == [f"{base}-x1", f"{base}-x2"]
    assert r.get("Prefix") == base


@ops("ListBuckets")
def test_list_max_buckets_paging(s3):
    base = unique("lbm")
    for n in ("x1", "x2", "x3"):
        s3.create_bucket(Bucket=f"{base}-{n}")
    r = s3.list_buckets(Prefix=base, MaxBuckets=2)
    assert [b["Name"] for b in r["Buckets"]] == [f"{base}-x1", f"{base}-x2"]
    assert r.get("ContinuationToken")
    r2 = s3.list_buckets(Prefix=base, MaxBuckets=2, ContinuationToken=r["ContinuationToken"])
    assert [b["Name"] for b in r2["Buckets"]] == [f"{base}-x3"]
    assert not r2.get("ContinuationToken")


@ops("GetBucketLocation")
def test_location_us_east_1_is_empty(s3, bucket):
    assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None


@ops("GetBucketLocation")
def test_location_missing(s3, bucket_name):
    with s3_error(404, "NoSuchBucket"):
        s3.get_bucket_location(Bucket=bucket_name)


MISSING_BUCKET_CALLS = {
    "ListObjects": lambda s3, b: s3.list_objects(Bucket=b),
    "ListObjectsV2": lambda s3, b: s3.list_objects_v2(Bucket=b),
    "PutObject": lambda s3, b: s3.put_object(Bucket=b, Key="k", Body=b"x"),
    "GetObject": lambda s3, b: s3.get_object(Bucket=b, Key="k"),
    "DeleteObject": lambda s3, b: s3.delete_object(Bucket=b, Key="k"),
    "DeleteObjects": lambda s3, b: s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k"}]}),
    "CopyObject": lambda s3, b: s3.copy_object(Bucket=b, Key="k", CopySource=f"{b}/src"),
    "CreateMultipartUpload": lambda s3, b: s3.create_multipart_upload(Bucket=b, Key="k"),
    "ListMultipartUploads": lambda s3, b: s3.list_multipart_uploads(Bucket=b),
    "PutObjectTagging": lambda s3, b: s3.put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": []}),
}


@pytest.mark.parametrize("op", [pytest.param(k, marks=ops(k)) for k in MISSING_BUCKET_CALLS])
def test_missing_bucket_is_no_such_bucket(s3, bucket_name, op):
    with s3_error(404, "NoSuchBucket"):
        MISSING_BUCKET_CALLS[op](s3, bucket_name)
