"""Multipart uploads: Create/UploadPart/Complete/Abort, part-size and part-order rules,
NoSuchUpload, ListParts and ListMultipartUploads paging, UploadPartCopy, GetObject partNumber."""

import pytest

from conflib import MIB, blob, etag_of, expect_raw, get_body, key_path, keys_of, multipart_etag, ops, put, s3_error

CREATE, PART, COMPLETE, ABORT = "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"
LIST_PARTS, LIST_UPLOADS, PART_COPY = "ListParts", "ListMultipartUploads", "UploadPartCopy"


@pytest.fixture(scope="module")
def blobs():
    return [blob(5 * MIB, seed=11), blob(5 * MIB, seed=12), blob(1234, seed=13)]


def upload(s3, bucket, key, parts, **create_kw):
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **create_kw)["UploadId"]
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data)
        assert r["ETag"] == etag_of(data)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    return uid, done


def complete(s3, bucket, key, uid, parts, **kw):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                        MultipartUpload={"Parts": parts}, **kw)


@ops(CREATE, PART, COMPLETE, "GetObject")
def test_roundtrip_three_parts(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "mp/obj", blobs)
    r = complete(s3, bucket, "mp/obj", uid, parts)
    assert r["ETag"] == multipart_etag(blobs)
    assert r["Key"] == "mp/obj" and r["Bucket"] == bucket
    assert get_body(s3, bucket, "mp/obj") == b"".join(blobs)
    h = s3.head_object(Bucket=bucket, Key="mp/obj")
    assert h["ETag"] == multipart_etag(blobs) and h["ContentLength"] == sum(map(len, blobs))


@ops(CREATE, PART, COMPLETE)
def test_single_small_part(s3, bucket):
    uid, parts = upload(s3, bucket, "one", [b"tiny"])
    assert complete(s3, bucket, "one", uid, parts)["ETag"] == multipart_etag([b"tiny"])
    assert get_body(s3, bucket, "one") == b"tiny"


@ops(CREATE, PART, "GetObject", "ListObjectsV2")
def test_invisible_until_complete(s3, bucket, blobs):
    upload(s3, bucket, "pending", blobs[:1])
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="pending")
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == []


@ops(CREATE, PART, COMPLETE)
def test_metadata_and_content_type_from_create(s3, bucket):
    uid, parts = upload(s3, bucket, "meta", [b"x"], Metadata={"m": "1"}, ContentType="text/csv",
                        CacheControl="no-cache")
    complete(s3, bucket, "meta", uid, parts)
    h = s3.head_object(Bucket=bucket, Key="meta")
    assert h["Metadata"] == {"m": "1"} and h["ContentType"] == "text/csv" and h["CacheControl"] == "no-cache"


@ops(CREATE, PART, COMPLETE)
def test_entity_too_small(s3, bucket):
    uid, parts = upload(s3, bucket, "small", [b"a" * 1024, b"b" * 1024])
    with s3_error(400, "EntityTooSmall"):
        complete(s3, bucket, "small", uid, parts)


@ops(CREATE, PART, COMPLETE)
def test_invalid_part_wrong_etag(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", [blobs[2]])
    with s3_error(400, "InvalidPart"):
        complete(s3, bucket, "k", uid, [{"PartNumber": 1, "ETag": etag_of(b"other")}])


@ops(CREATE, PART, COMPLETE)
def test_invalid_part_missing_number(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", [blobs[0]])
    with s3_error(400, "InvalidPart"):
        complete(s3, bucket, "k", uid, parts + [{"PartNumber": 2, "ETag": parts[0]["ETag"]}])


@ops(CREATE, PART, COMPLETE)
def test_invalid_part_order(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", blobs[:2])
    with s3_error(400, "InvalidPartOrder"):
        complete(s3, bucket, "k", uid, [parts[1], parts[0]])


@ops(CREATE, PART, COMPLETE)
def test_complete_subset_of_parts(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", blobs)
    r = complete(s3, bucket, "k", uid, [parts[0], parts[2]])
    assert r["ETag"] == multipart_etag([blobs[0], blobs[2]])
    assert get_body(s3, bucket, "k") == blobs[0] + blobs[2]


@ops(CREATE, PART, COMPLETE)
def test_part_reupload_replaces(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", [b"first"])
    r = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"second")
    with s3_error(400, "InvalidPart"):
        complete(s3, bucket, "k", uid, parts)
    complete(s3, bucket, "k", uid, [{"PartNumber": 1, "ETag": r["ETag"]}])
    assert get_body(s3, bucket, "k") == b"second"


@ops(CREATE, PART, COMPLETE)
def test_part_numbers_may_have_gaps(s3, bucket, blobs):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="gaps")["UploadId"]
    p3 = s3.upload_part(Bucket=bucket, Key="gaps", UploadId=uid, PartNumber=3, Body=blobs[0])
    p9 = s3.upload_part(Bucket=bucket, Key="gaps", UploadId=uid, PartNumber=9, Body=b"end")
    complete(s3, bucket, "gaps", uid, [{"PartNumber": 3, "ETag": p3["ETag"]}, {"PartNumber": 9, "ETag": p9["ETag"]}])
    assert get_body(s3, bucket, "gaps") == blobs[0] + b"end"


@ops(CREATE, PART, COMPLETE)
def test_overwrites_existing_object(s3, bucket):
    put(s3, bucket, "k", b"old", Metadata={"old": "1"})
    uid, parts = upload(s3, bucket, "k", [b"new"])
    complete(s3, bucket, "k", uid, parts)
    assert get_body(s3, bucket, "k") == b"new"
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {}


NO_SUCH_UPLOAD = {
    PART: lambda s3, b, u: s3.upload_part(Bucket=b, Key="k", UploadId=u, PartNumber=1, Body=b"x"),
    LIST_PARTS: lambda s3, b, u: s3.list_parts(Bucket=b, Key="k", UploadId=u),
    COMPLETE: lambda s3, b, u: complete(s3, b, "k", u, [{"PartNumber": 1, "ETag": etag_of(b"x")}]),
    ABORT: lambda s3, b, u: s3.abort_multipart_upload(Bucket=b, Key="k", UploadId=u),
    PART_COPY: lambda s3, b, u: s3.upload_part_copy(Bucket=b, Key="k", UploadId=u, PartNumber=1,
                                                    CopySource={"Bucket": b, "Key": "src"}),
}


@pytest.mark.parametrize("op", [pytest.param(k, marks=ops(k)) for k in NO_SUCH_UPLOAD])
def test_no_such_upload(s3, bucket, op):
    put(s3, bucket, "src")
    with s3_error(404, "NoSuchUpload"):
        NO_SUCH_UPLOAD[op](s3, bucket, "bm9zdWNodXBsb2Fk" * 3)


@ops(CREATE, PART)
def test_upload_id_bound_to_key(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="right")["UploadId"]
    with s3_error(404, "NoSuchUpload"):
        s3.upload_part(Bucket=bucket, Key="wrong", UploadId=uid, PartNumber=1, Body=b"x")


@ops(CREATE, ABORT, LIST_PARTS)
def test_abort(s3, bucket):
    uid, parts = upload(s3, bucket, "k", [b"x"])
    r = s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error(404, "NoSuchUpload"):
        s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    with s3_error(404, "NoSuchUpload"):
        complete(s3, bucket, "k", uid, parts)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@ops(PART)
@pytest.mark.parametrize("number", [0, 10001, -1])
def test_part_number_out_of_range(raw, s3, bucket, number):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    r = raw.put(key_path(bucket, "k"), body=b"x", query={"partNumber": str(number), "uploadId": uid})
    expect_raw(r, 400, "InvalidArgument")


@ops(PART)
def test_part_number_10000_accepted(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=10000, Body=b"x")


@ops(COMPLETE)
def test_complete_empty_part_list(raw, s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    r = raw.post(key_path(bucket, "k"), query={"uploadId": uid},
                 body=b"<CompleteMultipartUpload></CompleteMultipartUpload>")
    expect_raw(r, 400, "MalformedXML")


@ops(COMPLETE)
def test_complete_malformed_xml(raw, s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    r = raw.post(key_path(bucket, "k"), query={"uploadId": uid}, body=b"<CompleteMultipartUpload><Part>")
    expect_raw(r, 400, "MalformedXML")


@ops(PART)
def test_part_content_md5_mismatch(raw, s3, bucket):
    from conflib import md5_b64
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    r = raw.put(key_path(bucket, "k"), body=b"part", query={"partNumber": "1", "uploadId": uid},
                headers={"Content-MD5": md5_b64(b"other")})
    expect_raw(r, 400, "BadDigest")


# --- ListParts --------------------------------------------------------------------------------


@ops(LIST_PARTS)
def test_list_parts(s3, bucket):
    data = [b"a" * 10, b"bb" * 10, b"c"]
    uid, parts = upload(s3, bucket, "k", data)
    r = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in r["Parts"]] == [
        (1, etag_of(data[0]), 10), (2, etag_of(data[1]), 20), (3, etag_of(data[2]), 1)]
    assert r["IsTruncated"] is False
    assert r["UploadId"] == uid and r["Key"] == "k" and r["Bucket"] == bucket
    assert all(p["LastModified"] for p in r["Parts"])


@ops(LIST_PARTS)
def test_list_parts_empty(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    r = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert r.get("Parts", []) == [] and r["IsTruncated"] is False


@ops(LIST_PARTS)
def test_list_parts_paging(s3, bucket):
    uid, _ = upload(s3, bucket, "k", [b"%d" % i for i in range(5)])
    r = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in r["Parts"]] == [1, 2]
    assert r["IsTruncated"] is True and r["NextPartNumberMarker"] == 2 and r["MaxParts"] == 2
    r = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, MaxParts=2, PartNumberMarker=2)
    assert [p["PartNumber"] for p in r["Parts"]] == [3, 4] and r["PartNumberMarker"] == 2
    r = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, MaxParts=2, PartNumberMarker=4)
    assert [p["PartNumber"] for p in r["Parts"]] == [5] and r["IsTruncated"] is False


@ops(LIST_PARTS)
def test_list_parts_paginator(s3, bucket):
    uid, _ = upload(s3, bucket, "k", [b"%d" % i for i in range(7)])
    pages = list(s3.get_paginator("list_parts").paginate(Bucket=bucket, Key="k", UploadId=uid,
                                                         PaginationConfig={"PageSize": 3}))
    assert [p["PartNumber"] for page in pages for p in page["Parts"]] == list(range(1, 8))
    assert len(pages) == 3


# --- ListMultipartUploads ---------------------------------------------------------------------


@ops(LIST_UPLOADS)
def test_list_uploads(s3, bucket):
    u1 = s3.create_multipart_upload(Bucket=bucket, Key="b/one")["UploadId"]
    u2 = s3.create_multipart_upload(Bucket=bucket, Key="a/two")["UploadId"]
    r = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == [("a/two", u2), ("b/one", u1)]
    assert r["IsTruncated"] is False and r["Bucket"] == bucket
    assert all(u["Initiated"] for u in r["Uploads"])


@ops(LIST_UPLOADS)
def test_list_uploads_same_key_in_initiation_order(s3, bucket):
    ids = [s3.create_multipart_upload(Bucket=bucket, Key="same")["UploadId"] for _ in range(3)]
    r = s3.list_multipart_uploads(Bucket=bucket)
    assert [u["UploadId"] for u in r["Uploads"]] == ids


@ops(LIST_UPLOADS)
def test_list_uploads_excludes_completed_and_aborted(s3, bucket):
    uid, parts = upload(s3, bucket, "done", [b"x"])
    complete(s3, bucket, "done", uid, parts)
    aid = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=aid)
    live = s3.create_multipart_upload(Bucket=bucket, Key="live")["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [live]


@ops(LIST_UPLOADS)
def test_list_uploads_paging(s3, bucket):
    made = [(k, s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]) for k in ("k1", "k2", "k3")]
    r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2)
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == made[:2]
    assert r["IsTruncated"] is True and r["NextKeyMarker"] == "k2" and r["NextUploadIdMarker"] == made[1][1]
    r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, KeyMarker=r["NextKeyMarker"],
                                  UploadIdMarker=r["NextUploadIdMarker"])
    assert [(u["Key"], u["UploadId"]) for u in r["Uploads"]] == made[2:]
    assert r["IsTruncated"] is False


@ops(LIST_UPLOADS)
def test_list_uploads_key_marker_alone_skips_key(s3, bucket):
    for k in ("k1", "k2", "k3"):
        s3.create_multipart_upload(Bucket=bucket, Key=k)
    r = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="k2")
    assert [u["Key"] for u in r["Uploads"]] == ["k3"]


@ops(LIST_UPLOADS)
def test_list_uploads_prefix(s3, bucket):
    for k in ("logs/a", "logs/b", "data/c"):
        s3.create_multipart_upload(Bucket=bucket, Key=k)
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix="logs/")
    assert [u["Key"] for u in r["Uploads"]] == ["logs/a", "logs/b"]


@ops(LIST_UPLOADS)
def test_list_uploads_delimiter(s3, bucket):
    for k in ("logs/a", "logs/b", "top"):
        s3.create_multipart_upload(Bucket=bucket, Key=k)
    r = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in r["Uploads"]] == ["top"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["logs/"]


# --- GetObject?partNumber -----------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3])
@ops("GetObject")
def test_get_part_number(s3, bucket, blobs, number):
    uid, parts = upload(s3, bucket, "k", blobs)
    complete(s3, bucket, "k", uid, parts)
    g = s3.get_object(Bucket=bucket, Key="k", PartNumber=number)
    start = sum(len(b) for b in blobs[:number - 1])
    data = blobs[number - 1]
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert g["PartsCount"] == 3
    assert g["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{sum(map(len, blobs))}"
    assert g["Body"].read() == data


@ops("HeadObject")
def test_head_part_number(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", blobs[1:])
    complete(s3, bucket, "k", uid, parts)
    h = s3.head_object(Bucket=bucket, Key="k", PartNumber=2)
    assert h["ContentLength"] == len(blobs[2]) and h["PartsCount"] == 2


@ops("GetObject")
def test_get_part_number_beyond_count(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "k", [b"only"])
    complete(s3, bucket, "k", uid, parts)
    with s3_error(416, "InvalidPartNumber"):
        s3.get_object(Bucket=bucket, Key="k", PartNumber=2)


# --- UploadPartCopy ---------------------------------------------------------------------------


@ops(PART_COPY, COMPLETE)
def test_upload_part_copy_ranges(s3, bucket, blobs):
    src = blobs[0] + blobs[1]
    put(s3, bucket, "src", src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    r1 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    r2 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes={5 * MIB}-{5 * MIB + 99}")
    assert r1["CopyPartResult"]["ETag"] == etag_of(src[:5 * MIB])
    assert r1["CopyPartResult"]["LastModified"]
    complete(s3, bucket, "dst", uid, [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                                      {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}])
    assert get_body(s3, bucket, "dst") == src[:5 * MIB + 100]


@ops(PART_COPY, COMPLETE)
def test_upload_part_copy_whole_object_cross_bucket(s3, bucket, bucket2):
    put(s3, bucket, "src", b"whole source")
    uid = s3.create_multipart_upload(Bucket=bucket2, Key="dst")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket2, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"})
    complete(s3, bucket2, "dst", uid, [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}])
    assert get_body(s3, bucket2, "dst") == b"whole source"


@ops(PART_COPY, COMPLETE)
def test_upload_part_copy_from_multipart_object(s3, bucket, blobs):
    uid, parts = upload(s3, bucket, "src", [blobs[0], b"tail"])
    complete(s3, bucket, "src", uid, parts)
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid2, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"})
    complete(s3, bucket, "dst", uid2, [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}])
    assert get_body(s3, bucket, "dst") == blobs[0] + b"tail"


@ops(PART_COPY)
def test_upload_part_copy_missing_source(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with s3_error(404, "NoSuchKey"):
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "absent"})


@ops(PART_COPY)
@pytest.mark.parametrize("rng", ["bytes=5-200", "bytes=100-120"])
def test_upload_part_copy_range_outside_source(s3, bucket, rng):
    # AWS: 400 InvalidArgument "Range specified is not valid for source object of size: 100".
    put(s3, bucket, "src", b"x" * 100)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with s3_error(400, "InvalidArgument"):
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=rng)


@ops(PART_COPY)
def test_upload_part_copy_invalid_range_syntax(s3, bucket):
    put(s3, bucket, "src", b"x" * 100)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with s3_error(400, "InvalidArgument"):
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=10-")
