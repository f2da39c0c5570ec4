"""Object tagging (Get/Put/DeleteObjectTagging, x-amz-tagging on PutObject and multipart) and
its limits; bucket tagging."""

import pytest

from conflib import expect_raw, key_path, ops, put, s3_error

GET, PUT_T, DEL = "GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"


def tagset(d: dict) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def tags_of(s3, bucket, key) -> dict:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


@ops(PUT_T, GET)
def test_put_get(s3, bucket):
    put(s3, bucket, "k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"env": "prod", "team": "hpc"}))
    assert tags_of(s3, bucket, "k") == {"env": "prod", "team": "hpc"}


@ops(GET)
def test_untagged_object_has_empty_set(s3, bucket):
    put(s3, bucket, "k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


@ops(PUT_T, GET)
def test_put_replaces_whole_set(s3, bucket):
    put(s3, bucket, "k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"a": "1", "b": "2"}))
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"c": "3"}))
    assert tags_of(s3, bucket, "k") == {"c": "3"}


@ops(PUT_T, GET)
def test_put_empty_set_clears(s3, bucket):
    put(s3, bucket, "k", Tagging="a=1")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": []})
    assert tags_of(s3, bucket, "k") == {}


@ops(DEL, GET)
def test_delete(s3, bucket):
    put(s3, bucket, "k", b"keep me", Tagging="a=1")
    r = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "k") == {}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep me"


@ops("PutObject", GET)
def test_tagging_header_on_put(s3, bucket):
    put(s3, bucket, "k", Tagging="project=strait&cost%20center=42%2B1")
    assert tags_of(s3, bucket, "k") == {"project": "strait", "cost center": "42+1"}


@ops("GetObject")
def test_tag_count_header_on_get(s3, bucket):
    put(s3, bucket, "k", Tagging="a=1&b=2")
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2


@ops("GetObject")
def test_no_tag_count_header_when_untagged(s3, bucket):
    put(s3, bucket, "k")
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")


@ops("PutObject", GET)
def test_overwrite_clears_tags(s3, bucket):
    put(s3, bucket, "k", Tagging="a=1")
    put(s3, bucket, "k", b"new")
    assert tags_of(s3, bucket, "k") == {}


@ops("CreateMultipartUpload", "CompleteMultipartUpload", GET)
def test_multipart_create_with_tagging(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="m=1")["UploadId"]
    p = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"x")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert tags_of(s3, bucket, "mp") == {"m": "1"}


@ops(PUT_T, GET)
def test_special_characters_in_tags(s3, bucket):
    put(s3, bucket, "k")
    t = {"a b": "c+d", "ü": "ö/=:@", "x-_.": ""}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(t))
    assert tags_of(s3, bucket, "k") == t


MISSING = {
    GET: lambda s3, b: s3.get_object_tagging(Bucket=b, Key="absent"),
    PUT_T: lambda s3, b: s3.put_object_tagging(Bucket=b, Key="absent", Tagging=tagset({"a": "1"})),
    DEL: lambda s3, b: s3.delete_object_tagging(Bucket=b, Key="absent"),
}


@pytest.mark.parametrize("op", [pytest.param(k, marks=ops(k)) for k in MISSING])
def test_missing_key(s3, bucket, op):
    with s3_error(404, "NoSuchKey"):
        MISSING[op](s3, bucket)


@ops(PUT_T)
def test_eleven_tags_refused(s3, bucket):
    put(s3, bucket, "k")
    with s3_error(400, "BadRequest"):
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({f"k{i}": "v" for i in range(11)}))


@ops(PUT_T, GET)
def test_ten_tags_accepted(s3, bucket):
    put(s3, bucket, "k")
    t = {f"k{i}": "v" for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(t))
    assert tags_of(s3, bucket, "k") == t


@ops(PUT_T)
def test_duplicate_tag_key_refused(raw, s3, bucket):
    put(s3, bucket, "k")
    body = (b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag>"
            b"<Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>")
    from conflib import md5_b64
    r = raw.put(key_path(bucket, "k"), query={"tagging": ""}, body=body, headers={"Content-MD5": md5_b64(body)})
    expect_raw(r, 400, "InvalidTag")


@ops(PUT_T)
@pytest.mark.parametrize("what", ["key-129", "value-257"])
def test_tag_too_long_refused(s3, bucket, what):
    put(s3, bucket, "k")
    t = {"k" * 129: "v"} if what == "key-129" else {"k": "v" * 257}
    with s3_error(400, "InvalidTag"):
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(t))


@ops(PUT_T, GET)
def test_tag_max_lengths_accepted(s3, bucket):
    put(s3, bucket, "k")
    t = {"k" * 128: "v" * 256}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(t))
    assert tags_of(s3, bucket, "k") == t


@ops("PutObject")
def test_tagging_header_too_many(s3, bucket):
    with s3_error(400, "BadRequest"):
        put(s3, bucket, "k", Tagging="&".join(f"k{i}=v" for i in range(11)))


# --- bucket tagging ---------------------------------------------------------------------------


@ops("PutBucketTagging", "GetBucketTagging")
def test_bucket_tagging_roundtrip(s3, bucket):
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({"owner": "lab"}))
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "owner", "Value": "lab"}]


@ops("GetBucketTagging")
def test_bucket_tagging_none(s3, bucket):
    with s3_error(404, "NoSuchTagSet"):
        s3.get_bucket_tagging(Bucket=bucket)


@ops("DeleteBucketTagging")
def test_bucket_tagging_delete(s3, bucket):
    r = s3.delete_bucket_tagging(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
