"""Multipart uploads: the AWS rules for parts, completion, listing, aborts and part reads."""

import base64
import hashlib
import os

import pytest

from helpers import MIB, checksum_raw, key_path, multipart_etag, s3_error

PART = 5 * MIB


def start(s3, bucket, key="mp", **kw):
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]


def upload(s3, bucket, key, upload_id, parts: dict[int, bytes]):
    out = []
    for n, data in sorted(parts.items()):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)["ETag"]
        out.append({"PartNumber": n, "ETag": etag})
    return out


def complete(s3, bucket, key, upload_id, parts):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})


@pytest.fixture(scope="module")
def blobs():
    return [os.urandom(PART), os.urandom(PART), os.urandom(1234)]


def test_multipart_roundtrip(s3, bucket, blobs):
    uid = start(s3, bucket, ContentType="application/x-test", Metadata={"m": "1"})
    parts = upload(s3, bucket, "mp", uid, dict(enumerate(blobs, 1)))
    done = complete(s3, bucket, "mp", uid, parts)
    assert done["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert done["ETag"] == multipart_etag(blobs)
    assert done["Key"] == "mp" and done["Bucket"] == bucket
    g = s3.get_object(Bucket=bucket, Key="mp")
    assert g["Body"].read() == b"".join(blobs)
    assert g["ETag"] == multipart_etag(blobs)
    assert g["ContentType"] == "application/x-test"
    assert g["Metadata"] == {"m": "1"}


def test_multipart_single_small_part(s3, bucket):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: b"tiny"})
    done = complete(s3, bucket, "mp", uid, parts)
    assert done["ETag"] == multipart_etag([b"tiny"])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"tiny"


def test_multipart_object_invisible_until_complete(s3, bucket, blobs):
    uid = start(s3, bucket)
    upload(s3, bucket, "mp", uid, {1: blobs[2]})
    with s3_error(404):
        s3.head_object(Bucket=bucket, Key="mp")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_multipart_entity_too_small(s3, bucket):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: b"a" * 1024, 2: b"b" * 1024})
    with s3_error(400, "EntityTooSmall"):
        complete(s3, bucket, "mp", uid, parts)
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="mp")


def test_multipart_invalid_part_etag(s3, bucket, blobs):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: blobs[0], 2: blobs[2]})
    parts[1]["ETag"] = '"00000000000000000000000000000000"'
    with s3_error(400, "InvalidPart"):
        complete(s3, bucket, "mp", uid, parts)


def test_multipart_invalid_part_missing_number(s3, bucket, blobs):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: blobs[0]})
    parts.append({"PartNumber": 7, "ETag": parts[0]["ETag"]})
    with s3_error(400, "InvalidPart"):
        complete(s3, bucket, "mp", uid, parts)


def test_multipart_invalid_part_order(s3, bucket, blobs):
    uid = start(s3, bucket)
    # Both parts are >= 5 MiB so that no size rule can fire first.
    parts = upload(s3, bucket, "mp", uid, {1: blobs[0], 2: blobs[1]})
    with s3_error(400, "InvalidPartOrder"):
        complete(s3, bucket, "mp", uid, list(reversed(parts)))


def test_multipart_complete_subset_of_parts(s3, bucket, blobs):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: blobs[0], 2: blobs[1], 3: blobs[2]})
    done = complete(s3, bucket, "mp", uid, [parts[0], parts[2]])  # skip part 2: allowed
    assert done["ETag"] == multipart_etag([blobs[0], blobs[2]])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == blobs[0] + blobs[2]


def test_multipart_part_reupload_replaces(s3, bucket, blobs):
    uid = start(s3, bucket)
    upload(s3, bucket, "mp", uid, {1: b"first"})
    parts = upload(s3, bucket, "mp", uid, {1: b"second"})
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [(1, 6, parts[0]["ETag"])]
    complete(s3, bucket, "mp", uid, parts)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"second"


def test_multipart_no_such_upload(s3, bucket):
    bogus = "bogus-upload-id-0123456789"
    with s3_error(404, "NoSuchUpload"):
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=bogus, PartNumber=1, Body=b"x")
    with s3_error(404, "NoSuchUpload"):
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=bogus)
    with s3_error(404, "NoSuchUpload"):
        complete(s3, bucket, "mp", bogus, [{"PartNumber": 1, "ETag": '"x"'}])
    with s3_error(404, "NoSuchUpload"):
        s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=bogus)


def test_multipart_upload_id_bound_to_key(s3, bucket):
    uid = start(s3, bucket, key="one")
    with s3_error(404, "NoSuchUpload"):
        s3.upload_part(Bucket=bucket, Key="other", UploadId=uid, PartNumber=1, Body=b"x")


def test_multipart_abort(s3, bucket):
    uid = start(s3, bucket)
    upload(s3, bucket, "mp", uid, {1: b"x"})
    resp = s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error(404, "NoSuchUpload"):
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=b"x")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_complete_after_abort(s3, bucket):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: b"x"})
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid)
    with s3_error(404, "NoSuchUpload"):
        complete(s3, bucket, "mp", uid, parts)


def test_multipart_complete_twice(s3, bucket):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: b"x"})
    complete(s3, bucket, "mp", uid, parts)
    # AWS may answer a repeated Complete of a just-completed upload with 200; after that NoSuchUpload.
    try:
        complete(s3, bucket, "mp", uid, parts)
    except s3.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert e.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"x"


@pytest.mark.parametrize("number", [0, 10001])
def test_multipart_part_number_out_of_range(raw, s3, bucket, number):
    uid = start(s3, bucket)
    r = raw.put(key_path(bucket, "mp"), body=b"x", query={"partNumber": str(number), "uploadId": uid})
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r


def test_multipart_complete_empty_part_list(raw, s3, bucket):
    uid = start(s3, bucket)
    body = b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></CompleteMultipartUpload>'
    r = raw.post(key_path(bucket, "mp"), body=body, query={"uploadId": uid})
    assert r.status == 400, r
    assert r.code == "MalformedXML", r


def test_multipart_list_parts_paging(s3, bucket):
    uid = start(s3, bucket)
    upload(s3, bucket, "mp", uid, {n: f"part{n}".encode() for n in range(1, 8)})
    r = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid, MaxParts=3)
    assert [p["PartNumber"] for p in r["Parts"]] == [1, 2, 3]
    assert r["IsTruncated"] is True
    assert r["NextPartNumberMarker"] == 3
    r = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid, PartNumberMarker=3)
    assert [p["PartNumber"] for p in r["Parts"]] == [4, 5, 6, 7]
    assert r["IsTruncated"] is False
    p = r["Parts"][0]
    assert p["Size"] == 5 and p["ETag"] == f'"{hashlib.md5(b"part4").hexdigest()}"'


def test_multipart_list_uploads(s3, bucket):
    u1 = start(s3, bucket, key="dir/a")
    u2 = start(s3, bucket, key="dir/b")
    u3 = start(s3, bucket, key="other")
    r = s3.list_multipart_uploads(Bucket=bucket)
    got = sorted((u["Key"], u["UploadId"]) for u in r["Uploads"])
    assert got == sorted([("dir/a", u1), ("dir/b", u2), ("other", u3)])
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix="dir/")
    assert sorted(u["Key"] for u in r["Uploads"]) == ["dir/a", "dir/b"]
    r = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["dir/"]
    assert [u["Key"] for u in r["Uploads"]] == ["other"]


def test_multipart_list_uploads_excludes_completed(s3, bucket):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: b"x"})
    complete(s3, bucket, "mp", uid, parts)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_two_uploads_same_key(s3, bucket):
    u1, u2 = start(s3, bucket), start(s3, bucket)
    assert u1 != u2
    p1 = upload(s3, bucket, "mp", u1, {1: b"one"})
    p2 = upload(s3, bucket, "mp", u2, {1: b"two"})
    complete(s3, bucket, "mp", u2, p2)
    complete(s3, bucket, "mp", u1, p1)  # completed last: wins
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"one"


def test_multipart_overwrites_existing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="mp", Body=b"old", Metadata={"old": "1"})
    uid = start(s3, bucket)
    complete(s3, bucket, "mp", uid, upload(s3, bucket, "mp", uid, {1: b"new"}))
    g = s3.get_object(Bucket=bucket, Key="mp")
    assert g["Body"].read() == b"new" and g["Metadata"] == {}


def test_multipart_get_part_number(s3, bucket, blobs):
    uid = start(s3, bucket)
    complete(s3, bucket, "mp", uid, upload(s3, bucket, "mp", uid, dict(enumerate(blobs, 1))))
    g = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert g["PartsCount"] == 3
    assert g["ContentRange"] == f"bytes {PART}-{2 * PART - 1}/{2 * PART + 1234}"
    assert g["Body"].read() == blobs[1]
    h = s3.head_object(Bucket=bucket, Key="mp", PartNumber=3)
    assert h["ContentLength"] == 1234 and h["PartsCount"] == 3
    with s3_error(416, "InvalidPartNumber"):
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)


def test_multipart_key_parent_is_file(s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=b"file")
    try:
        uid = start(s3, bucket, key="f/child")
    except s3.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert e.response["Error"]["Code"] == "ObjectParentIsFile"
        return
    parts = upload(s3, bucket, "f/child", uid, {1: b"x"})
    with s3_error(409, "ObjectParentIsFile"):
        complete(s3, bucket, "f/child", uid, parts)
    assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"file"


def test_multipart_upload_part_copy(s3, bucket, blobs):
    src = blobs[0] + blobs[2]
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = start(s3, bucket, key="dst")
    r1 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes=0-{PART - 1}")
    r2 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes={PART}-{PART + 1233}")
    parts = [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
             {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]
    assert parts[0]["ETag"] == f'"{hashlib.md5(blobs[0]).hexdigest()}"'
    done = complete(s3, bucket, "dst", uid, parts)
    assert done["ETag"] == multipart_etag([blobs[0], blobs[2]])
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == src


def test_multipart_upload_part_copy_whole_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"whole source")
    uid = start(s3, bucket, key="dst")
    r = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"})
    complete(s3, bucket, "dst", uid, [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"whole source"


def test_multipart_upload_part_copy_missing_source(s3, bucket):
    uid = start(s3, bucket, key="dst")
    with s3_error(404, "NoSuchKey"):
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "absent"})


def test_multipart_upload_part_copy_range_outside_source(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    uid = start(s3, bucket, key="dst")
    # AWS: "The x-amz-copy-source-range value must be of the form bytes=first-last where first
    # and last are the zero-based offsets of the first and last bytes to copy" -> InvalidArgument;
    # a range past the end is InvalidRange (416) on some services. Either is a client error.
    with pytest.raises(s3.exceptions.ClientError) as ei:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=5-50")
    status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert (status, ei.value.response["Error"]["Code"]) in {(400, "InvalidArgument"), (416, "InvalidRange")}


def test_multipart_sha256_composite_checksum(s3, bucket, blobs):
    uid = start(s3, bucket, ChecksumAlgorithm="SHA256")
    parts = []
    for n, data in enumerate(blobs, 1):
        cs = base64.b64encode(hashlib.sha256(data).digest()).decode()
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=data,
                           ChecksumAlgorithm="SHA256", ChecksumSHA256=cs)
        assert r["ChecksumSHA256"] == cs
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": cs})
    done = complete(s3, bucket, "mp", uid, parts)
    composite = base64.b64encode(hashlib.sha256(
        b"".join(checksum_raw("sha256", d) for d in blobs)).digest()).decode() + f"-{len(blobs)}"
    assert done["ChecksumSHA256"] == composite
    h = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert h["ChecksumSHA256"] == composite


def test_multipart_part_checksum_mismatch(s3, bucket):
    uid = start(s3, bucket, ChecksumAlgorithm="SHA256")
    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with s3_error(400, {"BadDigest", "InvalidRequest"}):
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"data",
                       ChecksumAlgorithm="SHA256", ChecksumSHA256=bad)
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid).get("Parts", []) == []


def test_multipart_upload_part_content_md5_mismatch(raw, s3, bucket):
    uid = start(s3, bucket)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    r = raw.put(key_path(bucket, "mp"), body=b"data", query={"partNumber": "1", "uploadId": uid},
                headers={"Content-MD5": bad})
    assert r.status == 400, r
    assert r.code == "BadDigest", r


def test_multipart_internal_files_hidden(s3, bucket, bucket_dir):
    uid = start(s3, bucket, key="d/pending")
    upload(s3, bucket, "d/pending", uid, {1: b"x"})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == []
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert r.get("CommonPrefixes", []) == []


def test_object_attributes_of_a_multipart_object(s3, bucket, blobs):
    uid = start(s3, bucket)
    parts = upload(s3, bucket, "mp", uid, {1: blobs[0], 2: blobs[1], 3: b"tail"})
    complete(s3, bucket, "mp", uid, parts)
    r = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts", "ObjectSize"], MaxParts=2)
    assert r["ObjectSize"] == len(blobs[0]) + len(blobs[1]) + 4
    op = r["ObjectParts"]
    assert (op["TotalPartsCount"], op["IsTruncated"], op["NextPartNumberMarker"]) == (3, True, 2)
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [(1, len(blobs[0])), (2, len(blobs[1]))]
    r = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], PartNumberMarker=2)
    assert [(p["PartNumber"], p["Size"]) for p in r["ObjectParts"]["Parts"]] == [(3, 4)]
    with s3_error(404, "NoSuchKey"):
        s3.get_object_attributes(Bucket=bucket, Key="absent", ObjectAttributes=["ETag"])
