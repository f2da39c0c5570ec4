"""The audit log (--audit-log): one JSON line for every denied request, saying what decided it,
and one for every change of buckets, bucket policies and ACLs."""

from __future__ import annotations

import json
import time

import requests
from helpers import boto_client, error_of


def lines(path, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_denials_and_changes_are_audited(spawn_server, tmp_path):
    log = tmp_path / "audit.jsonl"
    s = spawn_server(extra_args=["--audit-log", str(log)])
    s3 = boto_client(s)
    s3.create_bucket(Bucket="audited")                                             # change 1
    s3.put_object(Bucket="audited", Key="secret/x", Body=b"x")                      # not audited
    s3.put_bucket_policy(Bucket="audited", Policy=json.dumps({"Version": "2012-10-17", "Statement": [  # change 2
        {"Sid": "NoSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::audited/secret/*"}]}))
    assert error_of(lambda: s3.get_object(Bucket="audited", Key="secret/x")) == ("AccessDenied", 403)  # denied 1
    assert requests.get(f"{s.url}/audited/other", timeout=10).status_code == 403                 # denied 2
    bad = boto_client(s, secret_key="not-the-secret-0000000000000000000000")
    assert error_of(lambda: bad.list_objects_v2(Bucket="audited"))[1] == 403                     # denied 3
    s3.put_bucket_acl(Bucket="audited", ACL="public-read")                         # change 3
    got = lines(log, 6)
    assert [(r["kind"], r["operation"]) for r in got] == [
        ("change", "CreateBucket"), ("change", "PutBucketPolicy"), ("denied", "GetObject"),
        ("denied", "GetObject"), ("denied", None), ("change", "PutBucketAcl")], got
    policy_deny, anon, badsig = got[2], got[3], got[4]
    assert policy_deny["principal"] == s.access_key and policy_deny["key"] == "secret/x"
    assert "NoSecrets" in policy_deny["decided_by"] and "statement 1" in policy_deny["decided_by"]
    assert anon["principal"] is None and "anonymous" in anon["decided_by"]
    assert badsig["error_code"] == "SignatureDoesNotMatch"
    assert all(r["request_id"] and r["time"] and r["remote"].startswith("127.0.0.1:") for r in got)
