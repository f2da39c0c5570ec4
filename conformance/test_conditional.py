"""Conditional requests: If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since on
GetObject and HeadObject (RFC 7232 precedence as S3 documents it), conditional writes on
PutObject and CompleteMultipartUpload, and x-amz-copy-source-if-* on CopyObject/UploadPartCopy."""

import time

import pytest

from conflib import MIB, etag_of, expect_raw, http_date, key_path, now_utc, ops, past, put, s3_error, unique

BODY = b"conditional body"
ETAG = etag_of(BODY)
OTHER = '"00000000000000000000000000000000"'


@pytest.fixture
def cond(s3, bucket):
    put(s3, bucket, "c", BODY)
    return bucket


@pytest.fixture(scope="module")
def ro(s3):
    """A bucket whose object "c" was written over a second ago and is only read (or copied)."""
    name = unique("cond-ro")
    s3.create_bucket(Bucket=name)
    put(s3, name, "c", BODY)
    time.sleep(1.2)
    return name


# name -> (headers, expected status). Dates are relative: "past" is an hour before the write,
# "after" is now, at least a second after the write (and not in the future, which RFC 2616
# called invalid).
CASES = {
    "if-match-equal": ({"If-Match": ETAG}, 200),
    "if-match-star": ({"If-Match": "*"}, 200),
    "if-match-other": ({"If-Match": OTHER}, 412),
    "if-none-match-equal": ({"If-None-Match": ETAG}, 304),
    "if-none-match-star": ({"If-None-Match": "*"}, 304),
    "if-none-match-other": ({"If-None-Match": OTHER}, 200),
    "if-modified-since-past": ({"If-Modified-Since": "past"}, 200),
    "if-modified-since-after": ({"If-Modified-Since": "after"}, 304),
    "if-unmodified-since-past": ({"If-Unmodified-Since": "past"}, 412),
    "if-unmodified-since-after": ({"If-Unmodified-Since": "after"}, 200),
    # If-Match true wins over If-Unmodified-Since false: 200.
    "if-match-true-unmodified-since-false": ({"If-Match": ETAG, "If-Unmodified-Since": "past"}, 200),
    # If-None-Match false wins over If-Modified-Since true: 304.
    "if-none-match-false-modified-since-true": ({"If-None-Match": ETAG, "If-Modified-Since": "past"}, 304),
    "if-match-false-modified-since-true": ({"If-Match": OTHER, "If-Modified-Since": "past"}, 412),
}


def _headers(h: dict) -> dict:
    out = {}
    for k, v in h.items():
        if v == "past":
            v = http_date(past())
        elif v == "after":
            v = http_date(now_utc())
        out[k] = v
    return out


@pytest.mark.parametrize("method", [pytest.param("GET", marks=ops("GetObject")),
                                    pytest.param("HEAD", marks=ops("HeadObject"))])
@pytest.mark.parametrize("case", CASES.keys())
def test_read_conditions(raw, ro, case, method):
    headers, want = CASES[case]
    r = raw.request(method, key_path(ro, "c"), headers=_headers(headers))
    expect_raw(r, want, "PreconditionFailed" if want == 412 and method == "GET" else None)
    if want == 200 and method == "GET":
        assert r.body == BODY
    if want == 304:
        assert r.body == b""


@pytest.mark.parametrize("method", [pytest.param("GET", marks=ops("GetObject")),
                                    pytest.param("HEAD", marks=ops("HeadObject"))])
def test_not_modified_carries_etag(raw, ro, method):
    # RFC 9110 15.4.5: a 304 carries the ETag a 200 would have carried.
    r = raw.request(method, key_path(ro, "c"), headers={"If-None-Match": ETAG})
    expect_raw(r, 304)
    assert r.header("ETag") == ETAG


@ops("GetObject")
def test_if_match_on_missing_key(raw, bucket):
    r = raw.get(key_path(bucket, "absent"), headers={"If-Match": ETAG})
    expect_raw(r, 404, "NoSuchKey")


@ops("GetObject")
def test_conditions_with_range(raw, cond):
    r = raw.get(key_path(cond, "c"), headers={"If-Match": ETAG, "Range": "bytes=0-3"})
    expect_raw(r, 206)
    assert r.body == BODY[:4]
    r = raw.get(key_path(cond, "c"), headers={"If-None-Match": ETAG, "Range": "bytes=0-3"})
    expect_raw(r, 304)


@ops("GetObject")
def test_invalid_date_ignored(raw, cond):
    r = raw.get(key_path(cond, "c"), headers={"If-Modified-Since": "not a date"})
    expect_raw(r, 200)


# --- conditional writes ---------------------------------------------------------------------


@ops("PutObject")
def test_put_if_none_match_star_new(s3, bucket):
    put(s3, bucket, "n", b"new", IfNoneMatch="*")
    assert s3.head_object(Bucket=bucket, Key="n")["ContentLength"] == 3


@ops("PutObject")
def test_put_if_none_match_star_existing(s3, cond):
    with s3_error(412, "PreconditionFailed"):
        put(s3, cond, "c", b"replaced", IfNoneMatch="*")
    assert s3.get_object(Bucket=cond, Key="c")["Body"].read() == BODY


@ops("PutObject")
def test_put_if_match_equal(s3, cond):
    put(s3, cond, "c", b"replaced", IfMatch=ETAG)
    assert s3.get_object(Bucket=cond, Key="c")["Body"].read() == b"replaced"


@ops("PutObject")
def test_put_if_match_other(s3, cond):
    with s3_error(412, "PreconditionFailed"):
        put(s3, cond, "c", b"replaced", IfMatch=OTHER)
    assert s3.get_object(Bucket=cond, Key="c")["Body"].read() == BODY


@ops("PutObject")
def test_put_if_match_missing_key(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        put(s3, bucket, "absent", b"x", IfMatch=ETAG)


@ops("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
def test_complete_if_none_match_star_existing(s3, cond):
    uid = s3.create_multipart_upload(Bucket=cond, Key="c")["UploadId"]
    p = s3.upload_part(Bucket=cond, Key="c", UploadId=uid, PartNumber=1, Body=b"part")
    with s3_error(412, "PreconditionFailed"):
        s3.complete_multipart_upload(Bucket=cond, Key="c", UploadId=uid, IfNoneMatch="*",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert s3.get_object(Bucket=cond, Key="c")["Body"].read() == BODY


@ops("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
def test_complete_if_none_match_star_new(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="n")["UploadId"]
    p = s3.upload_part(Bucket=bucket, Key="n", UploadId=uid, PartNumber=1, Body=b"part")
    s3.complete_multipart_upload(Bucket=bucket, Key="n", UploadId=uid, IfNoneMatch="*",
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="n")["Body"].read() == b"part"


# --- copy-source conditions -----------------------------------------------------------------

COPY_CASES = {
    "if-match-equal": ({"CopySourceIfMatch": ETAG}, 200),
    "if-match-other": ({"CopySourceIfMatch": OTHER}, 412),
    "if-none-match-equal": ({"CopySourceIfNoneMatch": ETAG}, 412),
    "if-none-match-other": ({"CopySourceIfNoneMatch": OTHER}, 200),
    "if-modified-since-past": ({"CopySourceIfModifiedSince": "past"}, 200),
    "if-modified-since-after": ({"CopySourceIfModifiedSince": "after"}, 412),
    "if-unmodified-since-past": ({"CopySourceIfUnmodifiedSince": "past"}, 412),
    "if-unmodified-since-after": ({"CopySourceIfUnmodifiedSince": "after"}, 200),
    # If-Match true and If-Unmodified-Since false: the copy happens.
    "if-match-true-unmodified-false": ({"CopySourceIfMatch": ETAG, "CopySourceIfUnmodifiedSince": "past"}, 200),
    # If-None-Match false and If-Modified-Since true: 412.
    "if-none-match-false-modified-true": ({"CopySourceIfNoneMatch": ETAG, "CopySourceIfModifiedSince": "past"}, 412),
}


def _copy_kw(kw: dict) -> dict:
    out = {}
    for k, v in kw.items():
        if v == "past":
            v = past()
        elif v == "after":
            v = now_utc()
        out[k] = v
    return out


@ops("CopyObject")
@pytest.mark.parametrize("case", COPY_CASES.keys())
def test_copy_source_conditions(s3, ro, case):
    kw, want = COPY_CASES[case]
    dst = f"dst-{case}"
    if want == 200:
        s3.copy_object(Bucket=ro, Key=dst, CopySource={"Bucket": ro, "Key": "c"}, **_copy_kw(kw))
        assert s3.get_object(Bucket=ro, Key=dst)["Body"].read() == BODY
    else:
        with s3_error(412, "PreconditionFailed"):
            s3.copy_object(Bucket=ro, Key=dst, CopySource={"Bucket": ro, "Key": "c"}, **_copy_kw(kw))
        with s3_error(404, "NoSuchKey"):
            s3.get_object(Bucket=ro, Key=dst)


@ops("UploadPartCopy")
@pytest.mark.parametrize("case", ["if-match-equal", "if-match-other", "if-none-match-equal"])
def test_upload_part_copy_source_conditions(s3, ro, case):
    kw, want = COPY_CASES[case]
    cond = ro
    uid = s3.create_multipart_upload(Bucket=cond, Key=f"mp-{case}")["UploadId"]
    call = lambda: s3.upload_part_copy(Bucket=cond, Key=f"mp-{case}", UploadId=uid, PartNumber=1,  # noqa: E731
                                       CopySource={"Bucket": cond, "Key": "c"}, **_copy_kw(kw))
    if want == 200:
        assert call()["CopyPartResult"]["ETag"] == ETAG
    else:
        with s3_error(412, "PreconditionFailed"):
            call()
    s3.abort_multipart_upload(Bucket=cond, Key=f"mp-{case}", UploadId=uid)


@ops("PutObject")
def test_put_if_none_match_star_then_get(s3, bucket):
    data = b"m" * MIB
    put(s3, bucket, "once", data, IfNoneMatch="*")
    with s3_error(412, "PreconditionFailed"):
        put(s3, bucket, "once", b"again", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == data
