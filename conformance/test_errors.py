"""Error responses: for each S3 error a client can provoke, the HTTP status, the S3 code, and the
REST error document — <Error> with Code, Message, Resource and RequestId, served as XML, with
x-amz-request-id matching the body. HEAD errors carry no body."""

import hashlib

import pytest
from botocore.credentials import Credentials

from conflib import expect_raw, key_path, md5_b64, ops, put


def _bad_md5(raw, s3, b):
    return raw.put(key_path(b, "k"), body=b"body", headers={"Content-MD5": md5_b64(b"x")})


def _not_empty(raw, s3, b):
    put(s3, b, "k")
    return raw.delete(f"/{b}")


def _malformed(raw, s3, b):
    body = b"<Delete><Object><Key>k</Key>"
    return raw.post(f"/{b}", query={"delete": ""}, body=body, headers={"Content-MD5": md5_b64(body)})


def _range(raw, s3, b):
    put(s3, b, "k", b"0123456789")
    return raw.get(key_path(b, "k"), headers={"Range": "bytes=50-60"})


def _precondition(raw, s3, b):
    put(s3, b, "k", b"0123456789")
    return raw.get(key_path(b, "k"), headers={"If-Match": '"' + "0" * 32 + '"'})


def _bad_secret(raw, s3, b):
    return raw.get(f"/{b}", creds=Credentials(raw.server.access_key, "not-the-secret-0123456789abcdefgh"))


def _bad_key_id(raw, s3, b):
    return raw.get(f"/{b}", creds=Credentials("AKIAUNKNOWNKEY000000", "x" * 40))


ERRORS = {
    "NoSuchKey": (404, "GetObject", lambda raw, s3, b: raw.get(key_path(b, "absent"))),
    "NoSuchBucket": (404, "ListObjects", lambda raw, s3, b: raw.get(f"/{b}-missing")),
    "NoSuchUpload": (404, "ListParts", lambda raw, s3, b: raw.get(key_path(b, "k"), query={"uploadId": "bm9zdWNo"})),
    "BucketNotEmpty": (409, "DeleteBucket", _not_empty),
    "InvalidBucketName": (400, "CreateBucket", lambda raw, s3, b: raw.put("/bad_bucket_NAME")),
    "InvalidRange": (416, "GetObject", _range),
    "PreconditionFailed": (412, "GetObject", _precondition),
    "BadDigest": (400, "PutObject", _bad_md5),
    "MalformedXML": (400, "DeleteObjects", _malformed),
    "InvalidArgument": (400, "ListObjectsV2",
                        lambda raw, s3, b: raw.get(f"/{b}", query={"list-type": "2", "max-keys": "-1"})),
    "KeyTooLongError": (400, "PutObject", lambda raw, s3, b: raw.put(key_path(b, ("k" * 200 + "/") * 5 + "k" * 21),
                                                                     body=b"x")),
    "AccessDenied": (403, "GetObject", lambda raw, s3, b: raw.get(key_path(b, "k"), sign=False)),
    "SignatureDoesNotMatch": (403, "ListObjects", _bad_secret),
    "InvalidAccessKeyId": (403, "ListObjects", _bad_key_id),
    "XAmzContentSHA256Mismatch": (400, "PutObject", lambda raw, s3, b: raw.put(
        key_path(b, "k"), body=b"body", payload_hash=hashlib.sha256(b"other").hexdigest())),
}

PARAMS = [pytest.param(code, marks=ops(ERRORS[code][1]), id=code) for code in ERRORS]


@pytest.mark.parametrize("code", PARAMS)
def test_status_and_code(raw, s3, bucket, code):
    status, _, call = ERRORS[code]
    r = call(raw, s3, bucket)
    expect_raw(r, status, code)
    root = r.xml
    assert root.tag == "Error"
    assert (root.findtext("Message") or "").strip(), r
    assert (root.findtext("RequestId") or "").strip(), r


@pytest.mark.parametrize("code", PARAMS)
def test_error_is_xml(raw, s3, bucket, code):
    r = ERRORS[code][2](raw, s3, bucket)
    assert r.header("Content-Type") in ("application/xml", "text/xml", "application/xml; charset=utf-8"), r.header("Content-Type")
    assert r.body.lstrip().startswith(b"<?xml") or r.body.lstrip().startswith(b"<Error")


@pytest.mark.parametrize("code", PARAMS)
def test_error_has_resource(raw, s3, bucket, code):
    # REST error responses: "Resource — the bucket or object that is involved in the error".
    r = ERRORS[code][2](raw, s3, bucket)
    assert (r.xml.findtext("Resource") or "").strip(), r


@pytest.mark.parametrize("code", PARAMS)
def test_request_id_header_matches_body(raw, s3, bucket, code):
    r = ERRORS[code][2](raw, s3, bucket)
    assert r.header("x-amz-request-id"), r.headers
    assert r.header("x-amz-request-id") == r.xml.findtext("RequestId")


@ops("GetObject")
def test_no_such_key_names_key(raw, bucket):
    r = expect_raw(raw.get(key_path(bucket, "dir/absent")), 404, "NoSuchKey")
    assert r.xml.findtext("Key") == "dir/absent"


@ops("ListObjects")
def test_no_such_bucket_names_bucket(raw, bucket):
    r = expect_raw(raw.get(f"/{bucket}-missing"), 404, "NoSuchBucket")
    assert r.xml.findtext("BucketName") == f"{bucket}-missing"


@ops("HeadObject")
def test_head_missing_key_no_body(raw, bucket):
    r = expect_raw(raw.head(key_path(bucket, "absent")), 404)
    assert r.body == b"" and r.header("x-amz-request-id")


@ops("HeadBucket")
def test_head_missing_bucket_no_body(raw, bucket):
    r = expect_raw(raw.head(f"/{bucket}-missing"), 404)
    assert r.body == b""


@ops("HeadObject")
def test_head_precondition_failed_no_body(raw, s3, bucket):
    put(s3, bucket, "k")
    r = expect_raw(raw.head(key_path(bucket, "k"), headers={"If-Match": '"' + "0" * 32 + '"'}), 412)
    assert r.body == b""


@ops("GetObject")
def test_error_message_is_not_empty_for_not_found(raw, bucket):
    r = expect_raw(raw.get(key_path(bucket, "absent")), 404, "NoSuchKey")
    assert "not exist" in r.xml.findtext("Message").lower()
