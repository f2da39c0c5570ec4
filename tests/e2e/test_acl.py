"""Canned ACLs: x-amz-acl on CreateBucket/PutObject/CopyObject/CreateMultipartUpload,
Put/GetBucketAcl and Put/GetObjectAcl, and what they let anonymous callers do — with a bucket
policy's explicit Deny still winning."""

from __future__ import annotations

import json

import pytest
import requests
from helpers import boto_client, error_of

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def groups(acl) -> set[tuple[str, str]]:
    return {(g["Grantee"].get("URI", "owner" if g["Grantee"].get("ID") == acl["Owner"]["ID"] else "?"),
             g["Permission"]) for g in acl["Grants"]}


@pytest.fixture
def srv(spawn_server):
    s = spawn_server()
    return s, boto_client(s)


def anon(s, method, path, **kw):
    return requests.request(method, f"{s.url}{path}", timeout=10, **kw)


def test_object_acl_public_read(srv):
    s, s3 = srv
    s3.create_bucket(Bucket="acl-obj")
    s3.put_object(Bucket="acl-obj", Key="pub.txt", Body=b"public", ACL="public-read")
    s3.put_object(Bucket="acl-obj", Key="priv.txt", Body=b"private")
    assert groups(s3.get_object_acl(Bucket="acl-obj", Key="pub.txt")) == {("owner", "FULL_CONTROL"), (ALL_USERS, "READ")}
    assert groups(s3.get_object_acl(Bucket="acl-obj", Key="priv.txt")) == {("owner", "FULL_CONTROL")}
    r = anon(s, "GET", "/acl-obj/pub.txt")
    assert r.status_code == 200 and r.content == b"public"
    assert anon(s, "HEAD", "/acl-obj/pub.txt").status_code == 200
    assert anon(s, "GET", "/acl-obj/priv.txt").status_code == 403
    assert anon(s, "GET", "/acl-obj/missing").status_code == 403  # no listing: no probing for names
    assert anon(s, "GET", "/acl-obj?list-type=2").status_code == 403
    assert anon(s, "GET", "/acl-obj/pub.txt?acl").status_code == 403  # READ is not READ_ACP
    assert anon(s, "PUT", "/acl-obj/new.txt", data=b"x").status_code == 403
    # Back to private: anonymous reads stop at once.
    s3.put_object_acl(Bucket="acl-obj", Key="pub.txt", ACL="private")
    assert anon(s, "GET", "/acl-obj/pub.txt").status_code == 403
    # An overwrite without x-amz-acl is private again (the ACL belongs to the version).
    s3.put_object_acl(Bucket="acl-obj", Key="pub.txt", ACL="public-read")
    s3.put_object(Bucket="acl-obj", Key="pub.txt", Body=b"v2")
    assert anon(s, "GET", "/acl-obj/pub.txt").status_code == 403
    # A copy gets the request's ACL, not the source's.
    s3.put_object(Bucket="acl-obj", Key="src", Body=b"s", ACL="public-read")
    s3.copy_object(Bucket="acl-obj", Key="dst", CopySource={"Bucket": "acl-obj", "Key": "src"})
    assert anon(s, "GET", "/acl-obj/dst").status_code == 403
    s3.copy_object(Bucket="acl-obj", Key="dst2", CopySource={"Bucket": "acl-obj", "Key": "src"}, ACL="public-read")
    assert anon(s, "GET", "/acl-obj/dst2").content == b"s"
    # Multipart: the ACL given at CreateMultipartUpload is the object's.
    up = s3.create_multipart_upload(Bucket="acl-obj", Key="mp", ACL="public-read")["UploadId"]
    e = s3.upload_part(Bucket="acl-obj", Key="mp", UploadId=up, PartNumber=1, Body=b"m" * 10)["ETag"]
    s3.complete_multipart_upload(Bucket="acl-obj", Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert anon(s, "GET", "/acl-obj/mp").content == b"m" * 10


def test_bucket_acls(srv):
    s, s3 = srv
    s3.create_bucket(Bucket="acl-list", ACL="public-read")
    s3.put_object(Bucket="acl-list", Key="a", Body=b"1")
    assert groups(s3.get_bucket_acl(Bucket="acl-list")) == {("owner", "FULL_CONTROL"), (ALL_USERS, "READ")}
    r = anon(s, "GET", "/acl-list?list-type=2")
    assert r.status_code == 200 and b"<Key>a</Key>" in r.content
    assert anon(s, "GET", "/acl-list/a").status_code == 403  # the object's own ACL is private
    assert anon(s, "GET", "/acl-list/missing").status_code == 404  # listable: 404 as AWS
    assert anon(s, "PUT", "/acl-list/b", data=b"x").status_code == 403
    s3.put_bucket_acl(Bucket="acl-list", ACL="public-read-write")
    assert anon(s, "PUT", "/acl-list/b", data=b"anon").status_code == 200
    assert s3.get_object(Bucket="acl-list", Key="b")["Body"].read() == b"anon"
    assert anon(s, "DELETE", "/acl-list/b").status_code == 204
    # An explicit Deny in the bucket policy beats the ACL.
    s3.put_bucket_policy(Bucket="acl-list", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::acl-list/*"}]}))
    assert anon(s, "PUT", "/acl-list/c", data=b"x").status_code == 403
    s3.delete_bucket_policy(Bucket="acl-list")
    # An AccessControlPolicy body that says what a canned ACL says is accepted ...
    acl = s3.get_bucket_acl(Bucket="acl-list")
    owner = acl["Owner"]
    s3.put_bucket_acl(Bucket="acl-list", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"}]})
    assert groups(s3.get_bucket_acl(Bucket="acl-list")) == {("owner", "FULL_CONTROL")}
    assert anon(s, "GET", "/acl-list?list-type=2").status_code == 403
    # ... grants to others need identities.
    assert error_of(lambda: s3.put_bucket_acl(Bucket="acl-list", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "CanonicalUser", "ID": "other"}, "Permission": "READ"}]})) == ("NotImplemented", 501)
    assert error_of(lambda: s3.put_object(Bucket="acl-list", Key="g", Body=b"x", GrantRead='id="x"')) == \
        ("NotImplemented", 501)
    assert error_of(lambda: s3.put_bucket_acl(Bucket="acl-list", ACL="log-delivery-write")) == ("NotImplemented", 501)


def test_bad_canned_acls(srv):
    _, s3 = srv
    s3.create_bucket(Bucket="acl-bad")
    for call in (lambda: s3.put_object(Bucket="acl-bad", Key="k", Body=b"", ACL="everyone"),
                 lambda: s3.put_bucket_acl(Bucket="acl-bad", ACL="bucket-owner-read")):
        code, status = error_of(call)
        assert status == 400 and code in ("InvalidArgument", "InvalidRequest"), (code, status)
    assert error_of(lambda: s3.put_object_acl(Bucket="acl-bad", Key="nope", ACL="private")) == ("NoSuchKey", 404)


def test_anonymous_multipart_where_the_acl_allows_writes(srv):
    import re
    s, s3 = srv
    s3.create_bucket(Bucket="acl-mpu", ACL="public-read-write")
    r = anon(s, "POST", "/acl-mpu/big?uploads")
    assert r.status_code == 200, r.text
    up = re.search(r"<UploadId>([^<]+)</UploadId>", r.text).group(1)
    parts = [b"a" * (5 << 20), b"b" * 100]
    etags = []
    for n, data in enumerate(parts, 1):
        r = anon(s, "PUT", f"/acl-mpu/big?partNumber={n}&uploadId={up}", data=data)
        assert r.status_code == 200, r.text
        etags.append(r.headers["ETag"])
    xml = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)) + \
        "</CompleteMultipartUpload>"
    r = anon(s, "POST", f"/acl-mpu/big?uploadId={up}", data=xml)
    assert r.status_code == 200 and "<ETag>" in r.text, r.text
    assert s3.get_object(Bucket="acl-mpu", Key="big")["Body"].read() == b"".join(parts)
    # The bucket owner can abort an anonymous caller's upload; a private bucket refuses them.
    up2 = re.search(r"<UploadId>([^<]+)</UploadId>", anon(s, "POST", "/acl-mpu/k2?uploads").text).group(1)
    s3.abort_multipart_upload(Bucket="acl-mpu", Key="k2", UploadId=up2)
    s3.put_bucket_acl(Bucket="acl-mpu", ACL="private")
    assert anon(s, "POST", "/acl-mpu/k3?uploads").status_code == 403
