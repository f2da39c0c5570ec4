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


def test_policy_simulator(strait_bin, spawn_server, tmp_path):
    import subprocess

    doc = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadPub", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::sim/pub/*"},
        {"Sid": "LabOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::sim/*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))

    def sim(*args):
        out = subprocess.run([strait_bin, "admin", "policy", "simulate", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    base = ["--action", "s3:GetObject", "--resource", "arn:aws:s3:::sim/pub/a"]
    out = sim("--policy", str(f), *base, "--context", "aws:SourceIp=10.1.2.3")
    assert "decision: Allow" in out and 'Sid "ReadPub" (statement 1)' in out
    out = sim("--policy", str(f), *base, "--context", "aws:SourceIp=192.0.2.1")
    assert "decision: ExplicitDeny" in out and 'Sid "LabOnly" (statement 2)' in out
    out = sim("--policy", str(f), "--action", "s3:PutObject", "--resource", "arn:aws:s3:::other/x")
    assert "decision: ImplicitDeny" in out and "no statement applies" in out
    # The stored policy of a bucket, read while the gateway runs.
    s = spawn_server()
    s3 = boto_client(s)
    s3.create_bucket(Bucket="sim")
    s3.put_bucket_policy(Bucket="sim", Policy=json.dumps(doc))
    out = sim("--bucket", "sim", "--root", str(s.root), *base, "--context", "aws:SourceIp=10.9.9.9")
    assert "decision: Allow" in out
    # check: a bad document names the statement at fault.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Version": "2012-10-17", "Statement": [doc["Statement"][0], {"Effect": "Maybe"}]}))
    out = subprocess.run([strait_bin, "admin", "policy", "check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and "Statement[1]" in out.stderr, out.stderr
    out = subprocess.run([strait_bin, "admin", "policy", "check", str(f)], capture_output=True, text=True)
    assert out.returncode == 0 and "2 statement(s)" in out.stdout
