"""Bucket policies: Get/Put/DeleteBucketPolicy, GetBucketPolicyStatus, anonymous access only
where a policy allows it, explicit denies that bind even the owner (except for managing the
policy itself), and condition keys taken from the connection."""

from __future__ import annotations

import json

import pytest
import requests
from helpers import boto_client, error_of


def public_read(bucket: str, prefix: str = "pub/", extra: list | None = None) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/{prefix}*"},
        *(extra or []),
    ]})


@pytest.fixture
def pol(spawn_server):
    s = spawn_server()
    s3 = boto_client(s)
    s3.create_bucket(Bucket="polb")
    s3.put_object(Bucket="polb", Key="pub/hello.txt", Body=b"hello world")
    s3.put_object(Bucket="polb", Key="private/secret.txt", Body=b"secret")
    return s, s3


def anon(s, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{s.url}{path}", timeout=10, **kw)


def test_anonymous_access_only_where_the_policy_allows(pol):
    s, s3 = pol
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 403  # no policy yet
    assert error_of(lambda: s3.get_bucket_policy(Bucket="polb")) == ("NoSuchBucketPolicy", 404)
    doc = public_read("polb")
    s3.put_bucket_policy(Bucket="polb", Policy=doc)
    assert json.loads(s3.get_bucket_policy(Bucket="polb")["Policy"]) == json.loads(doc)
    assert s3.get_bucket_policy_status(Bucket="polb")["PolicyStatus"]["IsPublic"] is True

    r = anon(s, "GET", "/polb/pub/hello.txt")
    assert r.status_code == 200 and r.content == b"hello world"
    assert anon(s, "HEAD", "/polb/pub/hello.txt").status_code == 200
    r = anon(s, "GET", "/polb/private/secret.txt")
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    assert anon(s, "PUT", "/polb/pub/new.txt", data=b"x").status_code == 403
    assert anon(s, "DELETE", "/polb/pub/hello.txt").status_code == 403
    assert anon(s, "GET", "/polb?list-type=2").status_code == 403  # s3:ListBucket not granted
    # Without s3:ListBucket, a missing key is 403, not 404 (AWS: no probing for names) ...
    r = anon(s, "GET", "/polb/pub/missing.txt")
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content
    assert anon(s, "HEAD", "/polb/pub/missing.txt").status_code == 403
    # ... and 404 once listing is allowed.
    s3.put_bucket_policy(Bucket="polb", Policy=public_read("polb", extra=[
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::polb"}]))
    r = anon(s, "GET", "/polb/pub/missing.txt")
    assert r.status_code == 404 and b"<Code>NoSuchKey</Code>" in r.content
    assert anon(s, "HEAD", "/polb/pub/missing.txt").status_code == 404
    assert s3.head_object(Bucket="polb", Key="pub/hello.txt")["ContentLength"] == 11
    s3.put_bucket_policy(Bucket="polb", Policy=doc)
    assert anon(s, "GET", "/").status_code == 403  # ListBuckets is never anonymous
    # A policy on bucket "polb" grants nothing on "polbx".
    s3.create_bucket(Bucket="polbx")
    s3.put_object(Bucket="polbx", Key="pub/hello.txt", Body=b"other")
    assert anon(s, "GET", "/polbx/pub/hello.txt").status_code == 403

    s3.delete_bucket_policy(Bucket="polb")
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 403
    assert error_of(lambda: s3.get_bucket_policy_status(Bucket="polb")) == ("NoSuchBucketPolicy", 404)


def test_conditions_on_the_connection_and_the_listing(pol):
    s, s3 = pol
    s3.put_bucket_policy(Bucket="polb", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::polb/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::polb",
         "Condition": {"StringLike": {"s3:prefix": "pub/*"}}},
    ]}))
    # From loopback (the TCP peer); X-Forwarded-For is not believed.
    assert anon(s, "GET", "/polb/private/secret.txt", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    # The listing statement is open to anyone (a prefix condition does not narrow who).
    assert s3.get_bucket_policy_status(Bucket="polb")["PolicyStatus"]["IsPublic"] is True
    r = anon(s, "GET", "/polb?list-type=2&prefix=pub/")
    assert r.status_code == 200 and b"<Key>pub/hello.txt</Key>" in r.content, r.content
    assert anon(s, "GET", "/polb?list-type=2&prefix=private/").status_code == 403
    assert anon(s, "GET", "/polb?list-type=2").status_code == 403  # no prefix: the condition fails

    s3.put_bucket_policy(Bucket="polb", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::polb/*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
    ]}))
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 403
    assert s3.get_bucket_policy_status(Bucket="polb")["PolicyStatus"]["IsPublic"] is True

    s3.put_bucket_policy(Bucket="polb", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::polb/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
    ]}))
    assert s3.get_bucket_policy_status(Bucket="polb")["PolicyStatus"]["IsPublic"] is False  # narrowed by SourceIp
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 403  # loopback is not 10/8


def test_existing_object_tags_in_conditions(pol):
    s, s3 = pol
    s3.put_object(Bucket="polb", Key="data/open.csv", Body=b"1,2", Tagging="release=public")
    s3.put_object(Bucket="polb", Key="data/closed.csv", Body=b"3,4", Tagging="release=embargo")
    s3.put_bucket_policy(Bucket="polb", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::polb/data/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/release": "public"}}}]}))
    assert anon(s, "GET", "/polb/data/open.csv").content == b"1,2"
    assert anon(s, "GET", "/polb/data/closed.csv").status_code == 403
    s3.put_object_tagging(Bucket="polb", Key="data/closed.csv",
                          Tagging={"TagSet": [{"Key": "release", "Value": "public"}]})
    assert anon(s, "GET", "/polb/data/closed.csv").content == b"3,4"  # the next request sees the new tag


def test_explicit_deny_binds_the_owner_but_never_locks_the_policy(pol):
    s, s3 = pol
    s3.put_bucket_policy(Bucket="polb", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::polb/private/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "arn:aws:s3:::polb",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}))
    assert error_of(lambda: s3.delete_object(Bucket="polb", Key="private/secret.txt")) == ("AccessDenied", 403)
    assert error_of(lambda: s3.put_object(Bucket="polb", Key="private/x", Body=b"x")) == ("AccessDenied", 403)
    s3.put_object(Bucket="polb", Key="pub/ok.txt", Body=b"fine")
    assert s3.get_object(Bucket="polb", Key="private/secret.txt")["Body"].read() == b"secret"
    # Bucket-level operations over plain HTTP are denied ...
    assert error_of(lambda: s3.list_objects_v2(Bucket="polb")) == ("AccessDenied", 403)
    # ... but the owner can still read, replace and delete the policy.
    assert "Deny" in s3.get_bucket_policy(Bucket="polb")["Policy"]
    s3.delete_bucket_policy(Bucket="polb")
    assert s3.list_objects_v2(Bucket="polb")["KeyCount"] == 3


def test_malformed_policies_are_refused(pol):
    s, s3 = pol
    bad = [
        "not json",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}),
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}),
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
                                                            "Resource": "*", "Condition": {"Sorta": {"k": "v"}}}]}),
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
                                                            "Resource": "x" * 21000}]}),
    ]
    for doc in bad:
        assert error_of(lambda: s3.put_bucket_policy(Bucket="polb", Policy=doc)) == ("MalformedPolicy", 400), doc[:80]
    assert error_of(lambda: s3.get_bucket_policy(Bucket="polb")) == ("NoSuchBucketPolicy", 404)
    assert error_of(lambda: s3.put_bucket_policy(Bucket="nosuchpol", Policy=public_read("nosuchpol")))[0] == \
        "NoSuchBucket"


def test_policy_written_by_another_gateway_applies_within_a_second(pol):
    """The document lives in the bucket directory's xattr: another gateway over the same tree
    (here: a direct setxattr) changes what this gateway enforces, within the 1 s cache."""
    import os
    import time

    s, s3 = pol
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 403
    os.setxattr(s.root / "polb", "user.strait.bucket-policy", public_read("polb").encode())
    time.sleep(1.1)
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 200
    os.removexattr(s.root / "polb", "user.strait.bucket-policy")
    time.sleep(1.1)
    assert anon(s, "GET", "/polb/pub/hello.txt").status_code == 403
