"""Range reads: GetObject/HeadObject with Range, 206/416, suffix and open ranges, ignored
malformed ranges, partNumber on a single-part object."""

import pytest

from conflib import blob, expect_raw, key_path, ops, put, s3_error

BODY = bytes(range(256)) * 4  # 1024 bytes
N = len(BODY)


@pytest.fixture
def ranged(s3, bucket):
    put(s3, bucket, "r", BODY)
    return bucket


RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=0-9", 0, 9),
    ("bytes=100-199", 100, 199),
    ("bytes=1023-1023", 1023, 1023),
    ("bytes=1000-", 1000, 1023),
    ("bytes=0-", 0, 1023),
    ("bytes=-1", 1023, 1023),
    ("bytes=-24", 1000, 1023),
    ("bytes=-5000", 0, 1023),
    ("bytes=1000-99999", 1000, 1023),
]


@ops("GetObject")
@pytest.mark.parametrize("rng,start,end", RANGES, ids=[r[0] for r in RANGES])
def test_get_range(s3, ranged, rng, start, end):
    g = s3.get_object(Bucket=ranged, Key="r", Range=rng)
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert g["ContentRange"] == f"bytes {start}-{end}/{N}"
    assert g["ContentLength"] == end - start + 1
    assert g["Body"].read() == BODY[start:end + 1]


@ops("HeadObject")
@pytest.mark.parametrize("rng,start,end", RANGES[:4], ids=[r[0] for r in RANGES[:4]])
def test_head_range(raw, ranged, rng, start, end):
    r = raw.head(key_path(ranged, "r"), headers={"Range": rng})
    expect_raw(r, 206)
    assert r.header("Content-Range") == f"bytes {start}-{end}/{N}"
    assert r.header("Content-Length") == str(end - start + 1)


@ops("GetObject")
@pytest.mark.parametrize("rng", ["bytes=1024-", "bytes=1024-2000", "bytes=5000-6000"])
def test_range_not_satisfiable(raw, ranged, rng):
    r = raw.get(key_path(ranged, "r"), headers={"Range": rng})
    expect_raw(r, 416, "InvalidRange")


@ops("GetObject")
def test_range_on_empty_object(s3, bucket):
    put(s3, bucket, "empty", b"")
    with s3_error(416, "InvalidRange"):
        s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-0")


@ops("GetObject")
@pytest.mark.parametrize("rng", ["bytes=abc", "bytes=9-5", "items=0-5", "bytes="])
def test_malformed_range_ignored(raw, ranged, rng):
    # A Range header that cannot be parsed (or is syntactically invalid) is ignored: the whole
    # object, 200, as RFC 9110 and S3 do.
    r = raw.get(key_path(ranged, "r"), headers={"Range": rng})
    expect_raw(r, 200)
    assert r.body == BODY


@ops("GetObject")
def test_range_in_large_object(s3, bucket):
    data = blob(6 * 1024 * 1024, seed=7)
    put(s3, bucket, "big", data)
    start, end = 5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10
    g = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{end}")
    assert g["Body"].read() == data[start:end + 1]


@ops("GetObject")
def test_range_response_keeps_etag_and_type(s3, ranged):
    full = s3.head_object(Bucket=ranged, Key="r")
    g = s3.get_object(Bucket=ranged, Key="r", Range="bytes=0-1")
    assert g["ETag"] == full["ETag"]
    assert g["ContentType"] == full["ContentType"]
    assert g["AcceptRanges"] == "bytes"


@ops("GetObject")
def test_part_number_1_of_single_part_object(raw, ranged):
    r = raw.get(key_path(ranged, "r"), query={"partNumber": "1"})
    expect_raw(r, 206)
    assert r.header("Content-Range") == f"bytes 0-{N - 1}/{N}"
    assert r.body == BODY


@ops("GetObject")
def test_part_number_2_of_single_part_object(s3, ranged):
    with s3_error(416, "InvalidPartNumber"):
        s3.get_object(Bucket=ranged, Key="r", PartNumber=2)


@ops("GetObject")
def test_part_number_with_range_refused(raw, ranged):
    r = raw.get(key_path(ranged, "r"), query={"partNumber": "1"}, headers={"Range": "bytes=0-1"})
    expect_raw(r, 400, "InvalidRequest")
