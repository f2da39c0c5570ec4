"""Bucket operations: create, delete, head, list, location; names; unimplemented sub-resources."""

import os

import pytest

from helpers import boto_client, s3_error, unique


def test_create_bucket_makes_directory(s3, server):
    name = unique("mk")
    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (server.root / name).is_dir()


def test_create_bucket_existing(server):
    # Outside us-east-1 AWS answers 409 BucketAlreadyOwnedByYou for a bucket you already own.
    c = boto_client(server, region="eu-west-1")
    name = unique("dup")
    c.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with s3_error(409, "BucketAlreadyOwnedByYou"):
        c.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


def test_create_bucket_existing_us_east_1(s3, bucket):
    # us-east-1 legacy: AWS answers 200 to re-creating your own bucket; 409 BucketAlreadyOwnedByYou
    # is what every other region says. Either is AWS behaviour, nothing else is.
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert e.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"


def test_create_bucket_keeps_contents_when_existing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        pass
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


@pytest.mark.parametrize("name", [
    "ab",                       # too short
    "a" * 64,                   # too long
    "UpperCase",                # upper case
    "under_score",              # underscore
    "-leading-dash",
    "trailing-dash-",
    "double..dots",
    ".leading-dot",
    "192.168.5.4",              # IP address form
    "xn--punycode-prefix",      # reserved prefix
    "name-s3alias",             # reserved suffix
    ".strait",                  # the internal state directory
])
def test_create_bucket_invalid_name(raw, server, name):
    r = raw.put(f"/{name}")
    assert r.status == 400, r
    assert r.code == "InvalidBucketName", r
    assert not (server.root / name).exists()


def test_delete_bucket_empty(s3, server):
    name = unique("del")
    s3.create_bucket(Bucket=name)
    resp = s3.delete_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert not (server.root / name).exists()
    with s3_error(404):
        s3.head_bucket(Bucket=name)


def test_delete_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    with s3_error(409, "BucketNotEmpty"):
        s3.delete_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"x"


def test_delete_bucket_not_empty_file_on_disk(s3, bucket, bucket_dir):
    (bucket_dir / "made-outside.txt").write_bytes(b"outside")
    with s3_error(409, "BucketNotEmpty"):
        s3.delete_bucket(Bucket=bucket)


def test_delete_bucket_missing(s3):
    with s3_error(404, "NoSuchBucket"):
        s3.delete_bucket(Bucket=unique("missing"))


def test_delete_bucket_with_inprogress_upload(s3, bucket):
    # An in-progress upload is no object; its parts live in the bucket directory. Whether AWS
    # lets the bucket go is not pinned down here: deleted or BucketNotEmpty, never a 5xx.
    s3.create_multipart_upload(Bucket=bucket, Key="pending")
    try:
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert e.response["Error"]["Code"] == "BucketNotEmpty"


def test_head_bucket_exists(s3, bucket):
    resp = s3.head_bucket(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_head_bucket_missing(s3):
    with s3_error(404):
        s3.head_bucket(Bucket=unique("nope"))


def test_list_buckets_contains_created(s3, bucket):
    resp = s3.list_buckets()
    names = [b["Name"] for b in resp["Buckets"]]
    assert bucket in names
    assert names == sorted(names)
    assert all("CreationDate" in b for b in resp["Buckets"])
    assert "Owner" in resp


def test_list_buckets_hides_files_and_internal_dirs(s3_tls, tls_server):
    # The TLS server keeps its state in the default <root>/.strait: never a bucket.
    (tls_server.root / "plain-file-at-root").write_bytes(b"not a bucket")
    names = [b["Name"] for b in s3_tls.list_buckets()["Buckets"]]
    assert ".strait" not in names
    assert "plain-file-at-root" not in names
    assert all(not n.startswith(".") for n in names)


def test_list_buckets_directory_made_outside(s3, server):
    name = unique("outside-made")
    (server.root / name).mkdir()
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_bucket_symlink_not_a_bucket(s3, server, outside_dir):
    name = unique("linkbucket")
    os.symlink(outside_dir, server.root / name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with s3_error(404, "NoSuchBucket"):
        s3.get_object(Bucket=name, Key="secret.txt")
    with s3_error(404, "NoSuchBucket"):
        s3.list_objects_v2(Bucket=name)


def test_get_bucket_location(s3, bucket):
    resp = s3.get_bucket_location(Bucket=bucket)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    # A bucket created without a LocationConstraint is in us-east-1, reported as empty.
    assert resp.get("LocationConstraint") in (None, "")


def test_get_bucket_location_missing(s3):
    with s3_error(404, "NoSuchBucket"):
        s3.get_bucket_location(Bucket=unique("nope"))


def test_any_region_accepted(server):
    c = boto_client(server, region="moon-base-1")
    name = unique("region")
    c.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "moon-base-1"})
    c.put_object(Bucket=name, Key="k", Body=b"v")
    assert c.get_object(Bucket=name, Key="k")["Body"].read() == b"v"


def test_list_objects_missing_bucket(s3):
    with s3_error(404, "NoSuchBucket"):
        s3.list_objects_v2(Bucket=unique("nope"))


def test_put_object_missing_bucket(s3):
    with s3_error(404, "NoSuchBucket"):
        s3.put_object(Bucket=unique("nope"), Key="k", Body=b"v")


@pytest.mark.parametrize("subresource,body", [
    ("cors", b'<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>'
             b'<AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>'),
    ("versioning", b'<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>'),
    ("lifecycle", b'<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix></Prefix></Filter>'
                  b'<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>'
                  b'</LifecycleConfiguration>'),
])
def test_put_bucket_subresource_not_implemented(raw, bucket, subresource, body):
    import hashlib
    import base64

    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    r = raw.put(f"/{bucket}", query={subresource: None}, body=body, headers={"Content-MD5": md5})
    assert r.status == 501, r
    assert r.code == "NotImplemented", r


def test_put_bucket_versioning_not_implemented_boto(s3, bucket):
    with s3_error(501, "NotImplemented"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def test_bucket_request_raw_path_style(raw, bucket):
    r = raw.get(f"/{bucket}", query={"list-type": "2"})
    assert r.status == 200, r
    assert r.xml.tag == "ListBucketResult"
    assert r.xml.findtext("Name") == bucket


def test_bucket_tagging_roundtrip_and_limits(s3, bucket):
    with s3_error(404, "NoSuchTagSet"):
        s3.get_bucket_tagging(Bucket=bucket)
    tags = [{"Key": f"project-{i}", "Value": f"v{i}"} for i in range(20)]  # buckets allow 50
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in got) == sorted((t["Key"], t["Value"]) for t in tags)
    with s3_error(400, "InvalidTag"):
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "aws:reserved", "Value": "x"}]})
    with s3_error(400, "InvalidTag"):
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]})
    s3.delete_bucket_tagging(Bucket=bucket)
    with s3_error(404, "NoSuchTagSet"):
        s3.get_bucket_tagging(Bucket=bucket)


def test_acls_report_the_owner_with_full_control(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for acl in (s3.get_bucket_acl(Bucket=bucket), s3.get_object_acl(Bucket=bucket, Key="k")):
        assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
        assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"]
    with s3_error(404, "NoSuchKey"):
        s3.get_object_acl(Bucket=bucket, Key="absent")
    # Grants to other principals need identities (canned ACLs are in test_acl.py).
    with s3_error(501, "NotImplemented"):
        s3.put_bucket_acl(Bucket=bucket, GrantRead='id="someone-else"')
