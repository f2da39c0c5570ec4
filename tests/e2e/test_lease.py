"""POST /?strait-lease (the MPI shim's collective open) at the protocol level: what a lease holds,
that it follows the bucket policy's GetObject decision, and that bad requests get S3 errors."""

from __future__ import annotations

import hashlib
import json
import os

from helpers import Raw, boto_client


def lease(raw: Raw, objects, **kw):
    body = json.dumps({"objects": [{"bucket": b, "key": k} for b, k in objects]}).encode()
    return raw.post("/", query="strait-lease", body=body, headers={"Content-Type": "application/json"}, **kw)


def test_a_lease_describes_the_published_file(server, raw, s3, bucket):
    data = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="a/b.bin", Body=data)
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    r = lease(raw, [(bucket, "a/b.bin"), (bucket, "missing"), ("no-such-bucket-xyz", "k"), (bucket, "dir/"),
                    (bucket, "../escape")])
    assert r.status == 200, r
    assert r.header("content-type") == "application/json"
    ans = json.loads(r.body)
    assert ans["direct"] is True and ans["expires_unix"] > 0
    ok, missing, nobucket, marker, bad = ans["leases"]
    path = server.root / bucket / "a" / "b.bin"
    st = os.stat(path)
    assert ok["status"] == 200 and ok["path"] == str(path.resolve())
    assert (ok["size"], ok["ino"], ok["dev"], ok["mtime_ns"]) == (len(data), st.st_ino, st.st_dev, st.st_mtime_ns)
    assert ok["etag"] == s3.head_object(Bucket=bucket, Key="a/b.bin")["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert ok["fs_type"] in ("posix", "lustre", "gpfs") and ok["stripe_size"] >= 4096 and ok["stripe_count"] >= 1
    assert (missing["status"], missing["code"]) == (404, "NoSuchKey")
    assert (nobucket["status"], nobucket["code"]) == (404, "NoSuchBucket")
    assert marker["status"] == 200 and "path" not in marker and marker["size"] == 0  # no file to read
    assert bad["status"] == 400 and bad["code"] == "InvalidArgument" and "path" not in bad


def test_leases_follow_the_bucket_policy(spawn_server):
    s = spawn_server()
    s3, raw = boto_client(s), Raw(s)
    s3.create_bucket(Bucket="lease-policy")
    s3.put_object(Bucket="lease-policy", Key="open/x", Body=b"1")
    s3.put_object(Bucket="lease-policy", Key="closed/y", Body=b"2")
    s3.put_bucket_policy(Bucket="lease-policy", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lease-policy/closed/*"}]}))
    a, b = json.loads(lease(raw, [("lease-policy", "open/x"), ("lease-policy", "closed/y")]).body)["leases"]
    assert a["status"] == 200 and a["path"].endswith("/lease-policy/open/x")
    assert (b["status"], b["code"]) == (403, "AccessDenied") and "path" not in b and "etag" not in b


def test_bad_lease_requests(raw, bucket, s3):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert lease(raw, [(bucket, "k")], sign=False).code == "AccessDenied"  # anonymous
    r = raw.post("/", query="strait-lease", body=b"{not json")
    assert (r.status, r.code) == (400, "MalformedPOSTRequest")
    r = raw.post("/", query="strait-lease", body=b'{"objects": []}')
    assert (r.status, r.code) == (400, "InvalidArgument")
    many = json.dumps({"objects": [{"bucket": bucket, "key": "k"}] * 10_001}).encode()
    assert raw.post("/", query="strait-lease", body=many).code == "InvalidArgument"
    # A body that is not the one signed.
    body = json.dumps({"objects": [{"bucket": bucket, "key": "k"}]}).encode()
    r = raw.post("/", query="strait-lease", body=body, payload_hash=hashlib.sha256(b"other").hexdigest())
    assert r.status == 400 and r.code in ("XAmzContentSHA256Mismatch", "BadDigest"), r
    # Unsigned x-amz-* headers are refused as on every S3 operation.
    r = lease(raw, [(bucket, "k")], unsigned_headers={"x-amz-meta-x": "1"})
    assert (r.status, r.code) == (403, "AccessDenied")


def test_no_paths_when_direct_is_off(spawn_server, tmp_path):
    cfg = tmp_path / "strait.toml"
    cfg.write_text("[lease]\ndirect = false\nttl_secs = 60\n")
    s = spawn_server(extra_args=["--config", str(cfg)])
    s3, raw = boto_client(s), Raw(s)
    s3.create_bucket(Bucket="lease-nodirect")
    s3.put_object(Bucket="lease-nodirect", Key="k", Body=b"abc")
    ans = json.loads(lease(raw, [("lease-nodirect", "k")]).body)
    assert ans["direct"] is False
    (one,) = ans["leases"]
    assert one["status"] == 200 and one["size"] == 3 and "path" not in one and one["ino"] == 0
