"""Bucket and object sub-resources beyond the core data path: versioning, CORS, policy, lifecycle,
encryption, ACLs, GetObjectAttributes. Each case asserts what AWS answers; an implementation
that leaves the operation out answers 501 NotImplemented (reported as such in MATRIX.md)."""

import json

from conflib import etag_of, ops, put, s3_error


@ops("GetBucketVersioning")
def test_versioning_unset(s3, bucket):
    r = s3.get_bucket_versioning(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200 and "Status" not in r


@ops("PutBucketVersioning", "GetBucketVersioning")
def test_versioning_enable(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


@ops("ListObjectVersions")
def test_list_object_versions_unversioned(s3, bucket):
    put(s3, bucket, "k", b"v")
    r = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r["Versions"]] == [("k", "null", True)]


CORS = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.org"]}]}


@ops("PutBucketCors", "GetBucketCors")
def test_cors_roundtrip(s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS)
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules[0]["AllowedMethods"] == ["GET"] and rules[0]["AllowedOrigins"] == ["https://example.org"]


@ops("GetBucketCors")
def test_cors_none(s3, bucket):
    with s3_error(404, "NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=bucket)


@ops("DeleteBucketCors")
def test_cors_delete(s3, bucket):
    assert s3.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::{b}/*"}]}


@ops("PutBucketPolicy", "GetBucketPolicy")
def test_policy_roundtrip(s3, bucket):
    doc = json.dumps(POLICY).replace("{b}", bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=doc)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Effect"] == "Deny"


@ops("GetBucketPolicy")
def test_policy_none(s3, bucket):
    with s3_error(404, "NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)


@ops("PutBucketLifecycleConfiguration", "GetBucketLifecycleConfiguration")
def test_lifecycle_roundtrip(s3, bucket):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "expire-tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}}]})
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules[0]["ID"] == "expire-tmp" and rules[0]["Expiration"]["Days"] == 7


@ops("GetBucketLifecycleConfiguration")
def test_lifecycle_none(s3, bucket):
    with s3_error(404, "NoSuchLifecycleConfiguration"):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)


@ops("GetBucketAcl")
def test_bucket_acl_owner_full_control(s3, bucket):
    r = s3.get_bucket_acl(Bucket=bucket)
    assert r["Owner"]["ID"]
    assert any(g["Permission"] == "FULL_CONTROL" for g in r["Grants"])


@ops("GetObjectAcl")
def test_object_acl_owner_full_control(s3, bucket):
    put(s3, bucket, "k")
    r = s3.get_object_acl(Bucket=bucket, Key="k")
    assert any(g["Permission"] == "FULL_CONTROL" for g in r["Grants"])


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


@ops("PutBucketAcl", "GetBucketAcl")
def test_bucket_canned_acl_public_read(s3, bucket):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    r = s3.get_bucket_acl(Bucket=bucket)
    assert {(g["Grantee"].get("URI"), g["Permission"]) for g in r["Grants"]} >= {(ALL_USERS, "READ")}
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    r = s3.get_bucket_acl(Bucket=bucket)
    assert [g["Permission"] for g in r["Grants"]] == ["FULL_CONTROL"]


@ops("PutObject", "PutObjectAcl", "GetObjectAcl")
def test_object_canned_acl(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    r = s3.get_object_acl(Bucket=bucket, Key="k")
    assert (ALL_USERS, "READ") in {(g["Grantee"].get("URI"), g["Permission"]) for g in r["Grants"]}
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    r = s3.get_object_acl(Bucket=bucket, Key="k")
    assert [g["Permission"] for g in r["Grants"]] == ["FULL_CONTROL"]


@ops("GetObjectAttributes")
def test_object_attributes(s3, bucket):
    put(s3, bucket, "k", b"attrs")
    r = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag", "ObjectSize", "StorageClass"])
    assert r["ObjectSize"] == 5 and r["ETag"] == etag_of(b"attrs").strip('"')
