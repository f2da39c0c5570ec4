"""Object CRUD, metadata and headers, ranges, conditional reads and writes, tagging, deletes."""

import datetime as dt
import hashlib
import os
import threading

import pytest

from helpers import MIB, http_date, key_path, md5_b64, md5_hex, now_utc, s3_error

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


# --- CRUD ------------------------------------------------------------------------------------


def test_put_get_roundtrip(s3, bucket, bucket_dir):
    body = os.urandom(1000)
    put = s3.put_object(Bucket=bucket, Key="dir/sub/obj.bin", Body=body)
    assert put["ETag"] == f'"{md5_hex(body)}"'
    got = s3.get_object(Bucket=bucket, Key="dir/sub/obj.bin")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    assert got["ContentLength"] == 1000
    assert got["AcceptRanges"] == "bytes"
    # The object is the file, byte for byte.
    assert (bucket_dir / "dir" / "sub" / "obj.bin").read_bytes() == body


def test_head_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="h", Body=b"12345")
    h = s3.head_object(Bucket=bucket, Key="h")
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert h["ContentLength"] == 5
    assert h["ETag"] == f'"{md5_hex(b"12345")}"'
    assert isinstance(h["LastModified"], dt.datetime)
    assert abs((now_utc() - h["LastModified"]).total_seconds()) < 120


def test_get_missing_key(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="nope")


def test_head_missing_key(s3, bucket):
    with s3_error(404):
        s3.head_object(Bucket=bucket, Key="nope")


def test_get_prefix_of_existing_key_is_not_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b/c", Body=b"x")
    for k in ("a", "a/b", "a/b/", "a/"):
        with s3_error(404, "NoSuchKey"):
            s3.get_object(Bucket=bucket, Key=k)


def test_put_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version, longer")
    e2 = s3.put_object(Bucket=bucket, Key="k", Body=b"second")["ETag"]
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["ETag"] == e2 == f'"{md5_hex(b"second")}"'


def test_put_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == f'"{EMPTY_MD5}"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0 and got["Body"].read() == b""


def test_put_large_object(s3, bucket):
    body = os.urandom(9 * MIB)
    s3.put_object(Bucket=bucket, Key="large", Body=body)
    got = s3.get_object(Bucket=bucket, Key="large")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_put_default_content_type(raw, bucket):
    r = raw.put(key_path(bucket, "noct"), body=b"x")
    assert r.status == 200, r
    h = raw.head(key_path(bucket, "noct"))
    assert h.status == 200
    assert h.header("Content-Type") == "binary/octet-stream"


def test_delete_object(s3, bucket, bucket_dir):
    s3.put_object(Bucket=bucket, Key="d/e/f", Body=b"x")
    resp = s3.delete_object(Bucket=bucket, Key="d/e/f")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="d/e/f")
    assert not (bucket_dir / "d" / "e" / "f").exists()


def test_delete_missing_key(s3, bucket):
    resp = s3.delete_object(Bucket=bucket, Key="never-existed/at/all")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_missing_bucket(s3):
    with s3_error(404, "NoSuchBucket"):
        s3.delete_object(Bucket="no-such-bucket-" + os.urandom(4).hex(), Key="k")


def test_delete_leaves_no_phantom_prefix(s3, bucket):
    s3.put_object(Bucket=bucket, Key="x/y/z", Body=b"1")
    s3.delete_object(Bucket=bucket, Key="x/y/z")
    resp = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert resp.get("CommonPrefixes", []) == []
    assert resp.get("Contents", []) == []


def test_delete_keeps_directory_made_outside(s3, bucket, bucket_dir):
    (bucket_dir / "ext" / "dir").mkdir(parents=True)
    s3.put_object(Bucket=bucket, Key="ext/dir/obj", Body=b"1")
    s3.delete_object(Bucket=bucket, Key="ext/dir/obj")
    assert (bucket_dir / "ext" / "dir").is_dir()


def test_delete_objects(s3, bucket):
    for k in ("a", "b/c", "d"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a"}, {"Key": "b/c"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["a", "b/c", "missing"]
    assert resp.get("Errors", []) == []
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["d"]


def test_delete_objects_quiet(s3, bucket):
    for k in ("q1", "q2"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q1"}, {"Key": "q2"}],
                                                    "Quiet": True})
    assert resp.get("Deleted", []) == []
    assert resp.get("Errors", []) == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_invalid_key_reported(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "ok"}, {"Key": "a/../b"}]})
    deleted = [d["Key"] for d in resp.get("Deleted", [])]
    errors = [e["Key"] for e in resp.get("Errors", [])]
    assert "ok" in deleted
    # An unmappable key names no object: reported deleted (nothing there) or as an error, per key.
    assert "a/../b" in deleted + errors


def test_delete_objects_too_many(s3, bucket):
    with s3_error(400, "MalformedXML"):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})


def test_put_concurrent_same_key_atomic(s3, bucket):
    size = 256 * 1024
    stop = threading.Event()
    bad: list[str] = []

    def writer(byte: int):
        for _ in range(4):
            s3.put_object(Bucket=bucket, Key="race", Body=bytes([byte]) * size)

    def reader():
        while not stop.is_set():
            try:
                got = s3.get_object(Bucket=bucket, Key="race")
            except s3.exceptions.NoSuchKey:
                continue
            body = got["Body"].read()
            if len(body) != size or len(set(body)) != 1 or got["ETag"] != f'"{md5_hex(body)}"':
                bad.append(f"torn read: len={len(body)} distinct={len(set(body))} etag={got['ETag']}")

    s3.put_object(Bucket=bucket, Key="race", Body=b"\0" * size)
    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(b,)) for b in (1, 2, 3, 4)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not bad, bad[:3]
    final = s3.get_object(Bucket=bucket, Key="race")["Body"].read()
    assert len(final) == size and len(set(final)) == 1 and final[0] in (1, 2, 3, 4)


# --- keys ------------------------------------------------------------------------------------


def test_put_key_max_length(s3, bucket):
    key = "/".join(["k" * 200] * 5) + "/" + "k" * 19
    assert len(key.encode()) == 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"long")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long"


def test_put_key_too_long(s3, bucket):
    key = "/".join(["k" * 100] * 11)[:1025]
    assert len(key) == 1025
    with s3_error(400, "KeyTooLongError"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")


def test_put_key_component_too_long(s3, bucket):
    with s3_error(400, "KeyTooLongError"):
        s3.put_object(Bucket=bucket, Key="d/" + "c" * 256, Body=b"x")


def test_put_unicode_and_special_keys(s3, bucket):
    keys = ["sp ace", "plus+sign", "pct%20lit", "q?x=1&y", "hash#frag", "uni/ünï/日本語",
            "emoji😀", "semi;colon,comma", "tilde~", "quote\"apos'", "lt<gt>", "back\\slash",
            "*star", "tab\tx", ".hidden", "...", "a.b/c..d"]
    for i, k in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=k, Body=str(i).encode())
    for i, k in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == str(i).encode(), k
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert sorted(listed, key=lambda s: s.encode()) == listed
    assert set(listed) == set(keys)


# --- metadata and headers --------------------------------------------------------------------


def test_user_metadata_roundtrip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"Color": "Blue", "x-y": "z z"})
    h = s3.head_object(Bucket=bucket, Key="m")
    assert h["Metadata"] == {"color": "Blue", "x-y": "z z"}
    g = s3.get_object(Bucket=bucket, Key="m")
    assert g["Metadata"] == {"color": "Blue", "x-y": "z z"}


def test_user_metadata_too_large(s3, bucket):
    with s3_error(400, "MetadataTooLarge"):
        s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata={"big": "v" * 2100})
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="big")


def test_user_metadata_many_small_entries_too_large(s3, bucket):
    meta = {f"key{i:03d}": "v" * 40 for i in range(60)}  # ~2.8 KB in total
    with s3_error(400, "MetadataTooLarge"):
        s3.put_object(Bucket=bucket, Key="big2", Body=b"x", Metadata=meta)


def test_user_metadata_just_under_limit(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x", Metadata={"k": "v" * 1900})
    assert s3.head_object(Bucket=bucket, Key="ok")["Metadata"]["k"] == "v" * 1900


def test_overwrite_replaces_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"1", Metadata={"a": "1"}, ContentType="text/plain")
    s3.put_object(Bucket=bucket, Key="m", Body=b"2")
    h = s3.head_object(Bucket=bucket, Key="m")
    assert h["Metadata"] == {}
    assert h["ContentType"] != "text/plain"


def test_standard_headers_roundtrip(raw, s3, bucket):
    expires = "Wed, 21 Oct 2037 07:28:00 GMT"
    s3.put_object(Bucket=bucket, Key="hdr", Body=b"<p>hi</p>", ContentType="text/html; charset=utf-8",
                  ContentEncoding="identity", ContentDisposition='attachment; filename="x.html"',
                  ContentLanguage="de-CH", CacheControl="max-age=60, public",
                  Expires=dt.datetime(2037, 10, 21, 7, 28, 0, tzinfo=dt.timezone.utc))
    for method in ("HEAD", "GET"):
        r = raw.request(method, key_path(bucket, "hdr"))
        assert r.status == 200, r
        assert r.header("Content-Type") == "text/html; charset=utf-8"
        assert r.header("Content-Encoding") == "identity"
        assert r.header("Content-Disposition") == 'attachment; filename="x.html"'
        assert r.header("Content-Language") == "de-CH"
        assert r.header("Cache-Control") == "max-age=60, public"
        assert r.header("Expires") == expires


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    g = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="application/json",
                      ResponseContentDisposition="inline", ResponseCacheControl="no-cache",
                      ResponseContentLanguage="fr", ResponseContentEncoding="identity",
                      ResponseExpires=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    hdrs = g["ResponseMetadata"]["HTTPHeaders"]
    assert hdrs["content-type"] == "application/json"
    assert hdrs["content-disposition"] == "inline"
    assert hdrs["cache-control"] == "no-cache"
    assert hdrs["content-language"] == "fr"
    assert hdrs["content-encoding"] == "identity"
    assert hdrs["expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    # Overrides are per request: the stored type is unchanged.
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"


# --- ranges ----------------------------------------------------------------------------------

BODY = bytes(range(10)) * 10  # 100 bytes


@pytest.fixture
def ranged(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=BODY)
    return bucket


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-9", 0, 9),
    ("bytes=10-10", 10, 10),
    ("bytes=90-", 90, 99),
    ("bytes=-7", 93, 99),
    ("bytes=95-1000", 95, 99),      # end past EOF is clamped
    ("bytes=-1000", 0, 99),         # suffix longer than the object is the whole object
    ("bytes=0-", 0, 99),            # a valid range covering everything is still 206
])
def test_get_range(s3, ranged, rng, start, end):
    g = s3.get_object(Bucket=ranged, Key="r", Range=rng)
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert g["ContentRange"] == f"bytes {start}-{end}/100"
    assert g["ContentLength"] == end - start + 1
    assert g["Body"].read() == BODY[start:end + 1]


def test_get_range_not_satisfiable(s3, ranged):
    with s3_error(416, "InvalidRange"):
        s3.get_object(Bucket=ranged, Key="r", Range="bytes=100-200")


def test_get_range_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    with s3_error(416, "InvalidRange"):
        s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-0")


def test_get_range_malformed_unsigned_ignored(raw, ranged):
    # An unparseable Range header is ignored (RFC 9110, and AWS): the whole object, 200.
    r = raw.get(key_path(ranged, "r"), unsigned_headers={"Range": "bytes=abc"})
    assert r.status == 200, r
    assert r.body == BODY


@pytest.mark.xfail(strict=True, reason="Strait deviation: s3s 0.14 parses Range before Strait sees it, "
                   "and a signed Range header cannot be dropped without breaking the signature; "
                   "answered 400 InvalidArgument instead of AWS's 200")
def test_get_range_malformed_signed_ignored(raw, ranged):
    r = raw.get(key_path(ranged, "r"), headers={"Range": "bytes=abc"})
    assert r.status == 200, r
    assert r.body == BODY


def test_head_range(raw, ranged):
    r = raw.head(key_path(ranged, "r"), headers={"Range": "bytes=0-4"})
    assert r.status == 206, r
    assert r.header("Content-Length") == "5"
    assert r.header("Content-Range") == "bytes 0-4/100"


def test_get_part_number_single_part_object(raw, ranged):
    # partNumber=1 of an object not uploaded in parts is the whole object, as a 206 range.
    r = raw.get(key_path(ranged, "r"), query={"partNumber": "1"})
    assert r.status == 206, r
    assert r.header("Content-Range") == "bytes 0-99/100"
    assert r.body == BODY


def test_get_part_number_out_of_range_single_part(s3, ranged):
    with s3_error(416, "InvalidPartNumber"):
        s3.get_object(Bucket=ranged, Key="r", PartNumber=2)


# --- conditional reads -----------------------------------------------------------------------


@pytest.fixture
def cond(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")["ETag"]
    lm = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    return bucket, etag, lm


def test_get_if_match(s3, cond):
    bucket, etag, _ = cond
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"


def test_get_if_match_mismatch(s3, cond):
    bucket, _, _ = cond
    with s3_error(412, "PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')


def test_get_if_match_star(s3, cond):
    bucket, _, _ = cond
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch="*")["Body"].read() == b"conditional"


def test_get_if_none_match_not_modified(s3, cond):
    bucket, etag, _ = cond
    with s3_error(304):
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)


def test_head_if_none_match_not_modified(s3, cond):
    bucket, etag, _ = cond
    with s3_error(304):
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag)


def test_get_if_none_match_other_etag(s3, cond):
    bucket, _, _ = cond
    g = s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_get_if_modified_since(s3, cond):
    bucket, _, lm = cond
    with s3_error(304):
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=lm + dt.timedelta(hours=1))
    g = s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=lm - dt.timedelta(hours=1))
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_get_if_unmodified_since(s3, cond):
    bucket, _, lm = cond
    with s3_error(412, "PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=lm - dt.timedelta(hours=1))
    g = s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=lm + dt.timedelta(hours=1))
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_get_if_match_true_overrides_unmodified_since_false(s3, cond):
    # RFC 7232 / S3: If-Match true and If-Unmodified-Since false -> 200.
    bucket, etag, lm = cond
    g = s3.get_object(Bucket=bucket, Key="c", IfMatch=etag,
                      IfUnmodifiedSince=lm - dt.timedelta(hours=1))
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_get_if_none_match_false_overrides_modified_since_true(s3, cond):
    # If-None-Match false (matches) and If-Modified-Since true -> 304.
    bucket, etag, lm = cond
    with s3_error(304):
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag,
                      IfModifiedSince=lm - dt.timedelta(hours=1))


def test_get_if_modified_since_raw_http_date(raw, cond):
    bucket, _, lm = cond
    r = raw.get(key_path(bucket, "c"), headers={"If-Modified-Since": http_date(lm)})
    assert r.status == 304, r
    assert r.body == b""


# --- conditional writes and Content-MD5 ------------------------------------------------------


def test_put_if_none_match_star_new_key(s3, bucket):
    resp = s3.put_object(Bucket=bucket, Key="once", Body=b"1", IfNoneMatch="*")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_put_if_none_match_star_existing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"1")
    with s3_error(412, "PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"1"


def test_put_if_match(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="cas", Body=b"1")["ETag"]
    s3.put_object(Bucket=bucket, Key="cas", Body=b"2", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"2"


def test_put_if_match_mismatch(s3, bucket):
    s3.put_object(Bucket=bucket, Key="cas", Body=b"1")
    with s3_error(412, "PreconditionFailed"):
        s3.put_object(Bucket=bucket, Key="cas", Body=b"2", IfMatch=f'"{md5_hex(b"other")}"')
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"1"


def test_put_if_match_missing_key(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"2", IfMatch=f'"{md5_hex(b"x")}"')


def test_put_if_none_match_star_concurrent(s3, bucket):
    results = []

    def attempt(i):
        try:
            s3.put_object(Bucket=bucket, Key="lock", Body=str(i).encode(), IfNoneMatch="*")
            results.append(("ok", i))
        except s3.exceptions.ClientError as e:
            results.append((e.response["ResponseMetadata"]["HTTPStatusCode"], i))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for r, i in results if r == "ok"]
    assert len(winners) == 1, results
    # Losers get 412, or 409 ConditionalRequestConflict as AWS may answer for a race.
    assert all(r in (412, 409) for r, _ in results if r != "ok"), results
    assert s3.get_object(Bucket=bucket, Key="lock")["Body"].read() == str(winners[0]).encode()


def test_put_content_md5_ok(raw, bucket):
    r = raw.put(key_path(bucket, "md5"), body=b"hello", headers={"Content-MD5": md5_b64(b"hello")})
    assert r.status == 200, r
    assert r.header("ETag") == f'"{md5_hex(b"hello")}"'


def test_put_content_md5_mismatch(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="md5", Body=b"old")
    r = raw.put(key_path(bucket, "md5"), body=b"hello", headers={"Content-MD5": md5_b64(b"other")})
    assert r.status == 400, r
    assert r.code == "BadDigest", r
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == b"old"


def test_put_content_md5_invalid(raw, bucket):
    r = raw.put(key_path(bucket, "md5"), body=b"hello", headers={"Content-MD5": "not-base64!!"})
    assert r.status == 400, r
    assert r.code == "InvalidDigest", r


def test_put_content_sha256_mismatch(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="sha", Body=b"old")
    r = raw.put(key_path(bucket, "sha"), body=b"hello",
                payload_hash=hashlib.sha256(b"other").hexdigest())
    assert r.status == 400, r
    assert r.code == "XAmzContentSHA256Mismatch", r
    assert s3.get_object(Bucket=bucket, Key="sha")["Body"].read() == b"old"


# --- tagging ---------------------------------------------------------------------------------


def test_object_tagging_roundtrip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [
        {"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a b"}]})
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "prod"), ("team", "a b")]
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2


def test_put_object_with_tagging_header(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=two")
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("a", "1"), ("b", "two")]


def test_delete_object_tagging_keeps_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"keep me", Tagging="a=1")
    resp = s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == b"keep me"


def test_object_tagging_missing_key(s3, bucket):
    with s3_error(404, "NoSuchKey"):
        s3.get_object_tagging(Bucket=bucket, Key="absent")
    with s3_error(404, "NoSuchKey"):
        s3.put_object_tagging(Bucket=bucket, Key="absent", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})


def test_object_tagging_too_many(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    # AWS: 400 BadRequest "Object tags cannot be greater than 10".
    with s3_error(400, "BadRequest"):
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [
            {"Key": f"k{i}", "Value": "v"} for i in range(11)]})


def test_object_tagging_duplicate_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    with s3_error(400, "InvalidTag"):
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [
            {"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]})


def test_overwrite_clears_tags(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"1", Tagging="a=1")
    s3.put_object(Bucket=bucket, Key="t", Body=b"2")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []


# --- files written outside the gateway -------------------------------------------------------


def test_file_created_on_disk_is_object(s3, bucket, bucket_dir):
    (bucket_dir / "direct").mkdir()
    (bucket_dir / "direct" / "file.txt").write_bytes(b"from disk")
    g = s3.get_object(Bucket=bucket, Key="direct/file.txt")
    assert g["Body"].read() == b"from disk"
    assert g["ContentLength"] == 9
    import re
    assert re.fullmatch(r'"[0-9a-f]{32}-\d+"', g["ETag"]), g["ETag"]


def test_file_rewritten_via_s3_gets_md5_etag(s3, bucket, bucket_dir):
    (bucket_dir / "f").write_bytes(b"disk")
    s3.put_object(Bucket=bucket, Key="f", Body=b"s3 body")
    assert s3.head_object(Bucket=bucket, Key="f")["ETag"] == f'"{md5_hex(b"s3 body")}"'


def test_file_changed_on_disk_changes_etag(s3, bucket, bucket_dir):
    etag = s3.put_object(Bucket=bucket, Key="f", Body=b"via s3")["ETag"]
    (bucket_dir / "f").write_bytes(b"changed on disk, longer")
    h = s3.head_object(Bucket=bucket, Key="f")
    assert h["ETag"] != etag
    assert h["ContentLength"] == len(b"changed on disk, longer")
    g = s3.get_object(Bucket=bucket, Key="f")
    assert g["Body"].read() == b"changed on disk, longer"
    # A stale ETag must not satisfy If-Match any more.
    with s3_error(412, "PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key="f", IfMatch=etag)


def test_max_metadata_and_max_tags_fit(s3, bucket):
    # 2 KB of user metadata plus 10 maximal tags is legal S3 and larger than ext4's 4 KiB xattr
    # space: the record goes to the metadata side table and must round-trip exactly.
    meta = {"big": "m" * (2048 - len("big"))}
    tags = "&".join(f"{i}{'k' * 127}={'v' * 256}" for i in range(10))
    s3.put_object(Bucket=bucket, Key="maxed", Body=b"payload", Metadata=meta, Tagging=tags)
    head = s3.head_object(Bucket=bucket, Key="maxed")
    assert head["Metadata"] == meta
    got = s3.get_object_tagging(Bucket=bucket, Key="maxed")["TagSet"]
    assert len(got) == 10 and all(len(t["Key"]) == 128 and len(t["Value"]) == 256 for t in got)
    assert s3.get_object(Bucket=bucket, Key="maxed")["Body"].read() == b"payload"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="maxed")["Contents"]
    assert [o["Key"] for o in listed] == ["maxed"]
    s3.delete_object(Bucket=bucket, Key="maxed")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="maxed")
