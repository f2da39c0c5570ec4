"""Presigned URLs (SigV4 query auth): GET/PUT/HEAD/DELETE, response overrides, expiry, the 7-day
limit, tampering with any signed part."""

import datetime as dt

import pytest
import requests

from conflib import expect_raw, get_body, key_path, now_utc, ops, put, s3_error


def fetch(target, method, url, **kw):
    return requests.request(method, url, timeout=30, verify=target.server.verify or True, **kw)


@ops("GetObject")
def test_presigned_get(target, s3, bucket):
    put(s3, bucket, "dir/a b+c", b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a b+c"}, ExpiresIn=300)
    r = fetch(target, "GET", url)
    assert r.status_code == 200 and r.content == b"presigned"


@ops("PutObject")
def test_presigned_put(target, s3, bucket):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=300)
    r = fetch(target, "PUT", url, data=b"uploaded via url")
    assert r.status_code == 200, r.text
    assert get_body(s3, bucket, "up") == b"uploaded via url"


@ops("HeadObject")
def test_presigned_head(target, s3, bucket):
    put(s3, bucket, "h", b"12345")
    url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "h"}, ExpiresIn=300)
    r = fetch(target, "HEAD", url)
    assert r.status_code == 200 and r.headers["Content-Length"] == "5"


@ops("DeleteObject")
def test_presigned_delete(target, s3, bucket):
    put(s3, bucket, "d")
    url = s3.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": "d"}, ExpiresIn=300)
    assert fetch(target, "DELETE", url).status_code == 204
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="d")


@ops("ListObjectsV2")
def test_presigned_list(target, s3, bucket):
    put(s3, bucket, "listed")
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket}, ExpiresIn=300)
    r = fetch(target, "GET", url)
    assert r.status_code == 200 and b"<Key>listed</Key>" in r.content


@ops("GetObject")
def test_presigned_response_overrides(target, s3, bucket):
    put(s3, bucket, "o", b"x")
    url = s3.generate_presigned_url("get_object", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "o", "ResponseContentType": "text/csv",
        "ResponseContentDisposition": "attachment; filename=o.csv"})
    r = fetch(target, "GET", url)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv"
    assert r.headers["Content-Disposition"] == "attachment; filename=o.csv"


def _tamper(url: str, param: str, value: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    q = [(k, value if k == param else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    if param not in dict(q):
        q.append((param, value))
    return urlunsplit(parts._replace(query=urlencode(q)))


TAMPER = {
    "signature": ("X-Amz-Signature", "0" * 64),
    "expires": ("X-Amz-Expires", "3000"),
    "date": ("X-Amz-Date", "20200101T000000Z"),
    "added-override": ("response-content-type", "text/html"),
    "signed-headers": ("X-Amz-SignedHeaders", "host;x-amz-date"),
}


@ops("GetObject")
@pytest.mark.parametrize("what", TAMPER.keys())
def test_presigned_tampered(target, s3, bucket, what):
    put(s3, bucket, "secret", b"the secret")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300)
    r = fetch(target, "GET", _tamper(url, *TAMPER[what]))
    assert r.status_code == 403, r.text
    assert b"the secret" not in r.content
    assert b"<Code>SignatureDoesNotMatch</Code>" in r.content or b"<Code>AccessDenied</Code>" in r.content


@ops("GetObject")
def test_presigned_other_key(target, s3, bucket):
    put(s3, bucket, "secret", b"the secret")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "public"}, ExpiresIn=300)
    r = fetch(target, "GET", url.replace("/public?", "/secret?"))
    assert r.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.content


@ops("PutObject")
def test_presigned_wrong_method(target, s3, bucket):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    r = fetch(target, "PUT", url, data=b"sneaky")
    assert r.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.content


@ops("GetObject")
def test_presigned_expired(raw, s3, bucket):
    put(s3, bucket, "k", b"stale")
    target = raw.presign("GET", key_path(bucket, "k"), expires=60, when=now_utc() - dt.timedelta(minutes=5))
    r = raw.send("GET", target, {"Host": f"{raw.server.host}:{raw.server.port}"})
    expect_raw(r, 403, "AccessDenied")
    assert b"expired" in r.body.lower()


@ops("GetObject")
def test_presigned_expiry_over_seven_days(raw, s3, bucket):
    put(s3, bucket, "k")
    target = raw.presign("GET", key_path(bucket, "k"), expires=604801)
    r = raw.send("GET", target, {"Host": f"{raw.server.host}:{raw.server.port}"})
    expect_raw(r, 400, "AuthorizationQueryParametersError")


@ops("GetObject")
def test_presigned_expiry_seven_days(raw, s3, bucket):
    put(s3, bucket, "k", b"week")
    target = raw.presign("GET", key_path(bucket, "k"), expires=604800)
    r = raw.send("GET", target, {"Host": f"{raw.server.host}:{raw.server.port}"})
    expect_raw(r, 200)
    assert r.body == b"week"


@ops("GetObject")
def test_presigned_unknown_access_key(target, bucket):
    c = target.client(access_key="AKIAUNKNOWNKEY000000", secret_key="x" * 40)
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    r = fetch(target, "GET", url)
    assert r.status_code == 403 and b"<Code>InvalidAccessKeyId</Code>" in r.content


@ops("GetObject")
def test_presigned_wrong_secret(target, s3, bucket):
    put(s3, bucket, "k", b"x")
    c = target.client(secret_key="wrong-secret-key-0123456789abcdefghijkl")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    r = fetch(target, "GET", url)
    assert r.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.content
