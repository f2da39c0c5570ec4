"""Authentication: SigV4 only, every x-amz-* header signed, presigned URL limits, clock skew,
generated root credentials."""

import datetime as dt
import urllib.request

import pytest
import requests
from botocore.credentials import Credentials

from helpers import ACCESS_KEY, Raw, boto_client, key_path, now_utc, s3_error


def put_secret(s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"the secret")


# --- wrong or missing credentials ------------------------------------------------------------


def test_bad_signature(server, bucket):
    c = boto_client(server, secret_key="wrong-secret-key-0123456789")
    with s3_error(403, "SignatureDoesNotMatch"):
        c.list_objects_v2(Bucket=bucket)


def test_unknown_access_key(server, bucket):
    c = boto_client(server, access_key="AKIAUNKNOWNUNKNOWN00")
    with s3_error(403, "InvalidAccessKeyId"):
        c.list_objects_v2(Bucket=bucket)


def test_anonymous_get_refused(raw, s3, bucket):
    put_secret(s3, bucket)
    r = raw.get(key_path(bucket, "secret"), sign=False)
    assert r.status == 403, r
    assert r.code == "AccessDenied", r
    assert b"the secret" not in r.body


def test_anonymous_list_refused(raw, bucket):
    r = raw.get(f"/{bucket}", sign=False)
    assert r.status == 403, r
    assert r.code == "AccessDenied", r


def test_anonymous_list_buckets_refused(raw):
    r = raw.get("/", sign=False)
    assert r.status == 403, r
    assert r.code == "AccessDenied", r


def test_anonymous_put_refused(raw, s3, bucket):
    r = raw.put(key_path(bucket, "anon"), body=b"x", sign=False)
    assert r.status == 403, r
    assert r.code == "AccessDenied", r
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="anon")


def test_tampered_body_refused(raw, s3, bucket):
    target, hdrs, _ = raw.sign("PUT", key_path(bucket, "tamper"), body=b"signed body")
    r = raw.send("PUT", target, hdrs, b"evil body!!")
    assert r.status in (400, 403), r
    assert r.code in ("XAmzContentSHA256Mismatch", "SignatureDoesNotMatch"), r
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="tamper")


def test_tampered_path_refused(raw, s3, bucket):
    put_secret(s3, bucket)
    target, hdrs, _ = raw.sign("GET", key_path(bucket, "public"))
    r = raw.send("GET", key_path(bucket, "secret"), hdrs)
    assert r.status == 403, r
    assert r.code == "SignatureDoesNotMatch", r


def test_missing_content_sha256_header(raw, bucket):
    target, hdrs, _ = raw.sign("GET", f"/{bucket}")
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "x-amz-content-sha256"}
    r = raw.send("GET", target, hdrs)
    assert r.status in (400, 403), r
    assert r.code in ("InvalidRequest", "SignatureDoesNotMatch", "AccessDenied"), r


# --- unsigned x-amz-* headers ----------------------------------------------------------------


def test_unsigned_copy_source_header_refused(raw, s3, bucket):
    put_secret(s3, bucket)
    r = raw.put(key_path(bucket, "target"), body=b"",
                unsigned_headers={"x-amz-copy-source": f"/{bucket}/secret"})
    assert r.status in (400, 403), r
    assert r.code in ("AccessDenied", "SignatureDoesNotMatch", "InvalidRequest"), r
    # Above all, it was not turned into a copy.
    try:
        body = s3.get_object(Bucket=bucket, Key="target")["Body"].read()
    except s3.exceptions.NoSuchKey:
        body = None
    assert body != b"the secret"


def test_unsigned_meta_header_refused(raw, s3, bucket):
    r = raw.put(key_path(bucket, "m"), body=b"x", unsigned_headers={"x-amz-meta-injected": "1"})
    assert r.status in (400, 403), r
    assert r.code in ("AccessDenied", "SignatureDoesNotMatch", "InvalidRequest"), r
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="m")


def test_unsigned_metadata_directive_refused(raw, s3, bucket):
    put_secret(s3, bucket)
    r = raw.put(key_path(bucket, "c"), headers={"x-amz-copy-source": f"/{bucket}/secret"},
                unsigned_headers={"x-amz-metadata-directive": "REPLACE", "x-amz-meta-x": "y"})
    assert r.status in (400, 403), r


# --- SigV2 -----------------------------------------------------------------------------------


def test_sigv2_refused(server, bucket):
    c = boto_client(server, signature_version="s3")
    with pytest.raises(c.exceptions.ClientError) as ei:
        c.list_objects(Bucket=bucket)
    resp = ei.value.response
    # AWS, where SigV2 is off: 400 InvalidRequest "Please use AWS4-HMAC-SHA256"; 403 AccessDenied
    # is the other refusal seen in S3-compatible servers.
    assert (resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"]) in {
        (400, "InvalidRequest"), (403, "AccessDenied")}


def test_sigv2_presigned_refused(server, s3, bucket):
    put_secret(s3, bucket)
    c = boto_client(server, signature_version="s3")
    url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url and "Signature=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code in (400, 403), r.text
    assert b"the secret" not in r.content


# --- presigned URLs --------------------------------------------------------------------------


def test_presigned_get(s3, bucket):
    put_secret(s3, bucket)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300)
    r = requests.get(url, timeout=30)
    assert r.status_code == 200
    assert r.content == b"the secret"


def test_presigned_get_urllib(s3, bucket):
    put_secret(s3, bucket)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300)
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200 and resp.read() == b"the secret"


def test_presigned_get_tls(s3_tls, tls_server, tls_bucket):
    s3_tls.put_object(Bucket=tls_bucket, Key="k", Body=b"over tls")
    url = s3_tls.generate_presigned_url("get_object", Params={"Bucket": tls_bucket, "Key": "k"}, ExpiresIn=60)
    r = requests.get(url, timeout=30, verify=tls_server.verify)
    assert r.status_code == 200 and r.content == b"over tls"


def test_presigned_put(s3, bucket):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=300)
    r = requests.put(url, data=b"uploaded by url", timeout=30)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded by url"


def test_presigned_response_overrides(s3, bucket):
    put_secret(s3, bucket)
    url = s3.generate_presigned_url("get_object", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "secret", "ResponseContentDisposition": "attachment; filename=s.txt"})
    r = requests.get(url, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == "attachment; filename=s.txt"


def test_presigned_bad_signature(s3, bucket):
    put_secret(s3, bucket)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret"}, ExpiresIn=300)
    sig = url.split("X-Amz-Signature=")[1][:64]
    bad = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    r = requests.get(bad, timeout=30)
    assert r.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text


def test_presigned_other_key_refused(s3, bucket):
    put_secret(s3, bucket)
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "other"}, ExpiresIn=300)
    r = requests.get(url.replace("/other?", "/secret?"), timeout=30)
    assert r.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text


def test_presigned_expiry_too_long(raw, s3, bucket):
    put_secret(s3, bucket)
    r = raw.send("GET", raw.presign("GET", key_path(bucket, "secret"), expires=604801),
                 {"Host": f"{raw.server.host}:{raw.server.port}"})
    assert r.status == 400, r
    assert r.code == "AuthorizationQueryParametersError", r


def test_presigned_expiry_seven_days_ok(raw, s3, bucket):
    put_secret(s3, bucket)
    r = raw.send("GET", raw.presign("GET", key_path(bucket, "secret"), expires=604800),
                 {"Host": f"{raw.server.host}:{raw.server.port}"})
    assert r.status == 200, r
    assert r.body == b"the secret"


def test_presigned_expired(raw, s3, bucket):
    put_secret(s3, bucket)
    when = now_utc() - dt.timedelta(hours=2)
    r = raw.send("GET", raw.presign("GET", key_path(bucket, "secret"), expires=3600, when=when),
                 {"Host": f"{raw.server.host}:{raw.server.port}"})
    assert r.status == 403, r
    assert r.code == "AccessDenied", r


def test_presigned_unknown_key(raw, s3, bucket):
    put_secret(s3, bucket)
    target = raw.presign("GET", key_path(bucket, "secret"), expires=300,
                         creds=Credentials("AKIAUNKNOWNUNKNOWN00", "whatever"))
    r = raw.send("GET", target, {"Host": f"{raw.server.host}:{raw.server.port}"})
    assert r.status == 403, r
    assert r.code == "InvalidAccessKeyId", r


# --- clock skew ------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [-20, 20])
def test_clock_skew_refused(raw, bucket, minutes):
    r = raw.get(f"/{bucket}", when=now_utc() + dt.timedelta(minutes=minutes))
    assert r.status == 403, r
    assert r.code == "RequestTimeTooSkewed", r


@pytest.mark.parametrize("minutes", [-10, 10])
def test_clock_skew_within_limit(raw, bucket, minutes):
    r = raw.get(f"/{bucket}", when=now_utc() + dt.timedelta(minutes=minutes))
    assert r.status == 200, r


# --- generated root credentials --------------------------------------------------------------


def test_generated_credentials(spawn_server, tmp_path):
    s = spawn_server(env_creds=False)
    assert s.access_key != ACCESS_KEY, "server did not print generated credentials"
    c = boto_client(s)
    c.create_bucket(Bucket="gen-creds")
    c.put_object(Bucket="gen-creds", Key="k", Body=b"v")
    with s3_error(403):
        boto_client(s, access_key=s.access_key, secret_key="wrong" * 8).list_buckets()
    keys = (s.access_key, s.secret_key)
    s.stop()
    # Stored in the state dir: the same pair works after a restart.
    s2 = spawn_server(env_creds=False, root=s.root, state_dir=s.state_dir)
    s2.access_key, s2.secret_key = keys
    assert boto_client(s2).get_object(Bucket="gen-creds", Key="k")["Body"].read() == b"v"
    assert not list(s.root.glob("**/*secret*")), "credentials leaked into the served tree"


def test_env_credentials_override(spawn_server):
    s = spawn_server()
    assert boto_client(s).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    raw = Raw(s)
    r = raw.get("/", creds=Credentials("STRAITOTHERKEY000000", "nope"))
    assert r.status == 403 and r.code == "InvalidAccessKeyId", r
