"""Tenants, users, groups, access keys and identity policies (the identity API on the admin
listener and `strait admin ...`), and the POSIX identity every tenant request runs as.

The server runs as root (as CI does); tenants get real uids and gids, and the kernel's answers
on real files are what is tested: files made through S3 belong to the tenant's uid, and a file
the tenant's uid cannot read is refused even where every policy allows it."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, SECRET_KEY, boto_client, error_of
from test_operations import ADMIN_RE


def admin_url(server) -> str:
    """The admin listener of the server's latest start (the log is appended across restarts)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = ADMIN_RE.findall(server.log_text())
        starts = server.log_text().count("strait: listening on")
        if found and len(found) >= starts:
            return f"http://{found[-1][0]}:{found[-1][1]}"
        time.sleep(0.05)
    raise AssertionError("no admin listening line:\n" + server.log_text()[-2000:])

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="POSIX identities need root")

ROOT_AUTH = (ACCESS_KEY, SECRET_KEY)


def api(base, method, path, body=None, auth=ROOT_AUTH, raw=False):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if isinstance(auth, tuple):
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    elif isinstance(auth, str):
        req.add_header("Authorization", f"Bearer {auth}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            out = r.read()
            return r.status, (out.decode() if raw else (json.loads(out) if out.strip() else None))
    except urllib.error.HTTPError as e:
        out = e.read()
        return e.code, (json.loads(out) if out.strip() else None)


def ok(resp, *statuses):
    st, body = resp
    assert st in (statuses or (200, 201, 204)), (st, body)
    return body


def allow(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}).encode()


S3_ALL_ON = lambda pattern: {"Effect": "Allow", "Action": "s3:*",  # noqa: E731
                             "Resource": [f"arn:aws:s3:::{pattern}", f"arn:aws:s3:::{pattern}/*"]}
LIST_MY = {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}


@pytest.fixture
def gw(spawn_server, tmp_path):
    log = tmp_path / "audit.jsonl"
    s = spawn_server(extra_args=("--admin-listen", "127.0.0.1:0", "--audit-log", str(log)))
    s.audit = log
    return s, admin_url(s)


def tenant(base, name, uid, **extra):
    return ok(api(base, "PUT", f"/admin/tenants/{name}", {"uid": uid, "gid": uid, **extra}))


def user_with_key(base, t, u, policies=(), **extra):
    ok(api(base, "PUT", f"/admin/tenants/{t}/users/{u}", {"policies": list(policies), **extra}))
    k = ok(api(base, "POST", f"/admin/tenants/{t}/users/{u}/keys"))
    return k["access_key"], k["secret_key"]


def client(s, key):
    return boto_client(s, access_key=key[0], secret_key=key[1])


def owner_of(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


def test_identity_api_is_authenticated_and_tenants_are_the_administrators(gw):
    s, base = gw
    assert api(base, "GET", "/admin/tenants", auth=None)[0] == 401
    assert api(base, "GET", "/admin/tenants", auth=(ACCESS_KEY, "wrong"))[0] == 401
    assert api(base, "GET", "/admin/tenants", auth="no-token-configured")[0] == 401
    assert ok(api(base, "GET", "/admin/tenants")) == {"tenants": []}
    st, err = api(base, "PUT", "/admin/tenants/Bad_Name", {"uid": 3000, "gid": 3000})
    assert st == 400 and "tenant name" in err["error"]
    st, err = api(base, "PUT", "/admin/tenants/rooty", {"uid": 0, "gid": 3000})
    assert st == 400 and "must not be 0" in err["error"]
    st, err = api(base, "PUT", "/admin/tenants/x", {"uid": 3000, "gid": 3000, "shell": "/bin/sh"})
    assert st == 400
    t = tenant(base, "climate", 3101)
    assert len(t["account_id"]) == 12 and t["posix"] == {"uid": 3101, "gid": 3101, "groups": []}
    # The account id is fixed for life; another tenant cannot take it.
    assert api(base, "PUT", "/admin/tenants/climate", {"uid": 3101, "gid": 3101, "account_id": "123456789012"})[0] == 409
    assert api(base, "PUT", "/admin/tenants/other", {"uid": 3102, "gid": 3102, "account_id": t["account_id"]})[0] == 409
    assert [x["name"] for x in ok(api(base, "GET", "/admin/tenants"))["tenants"]] == ["climate"]
    assert api(base, "GET", "/admin/tenants/nope")[0] == 404


def test_tenant_user_works_as_its_posix_identity_within_its_policies(gw):
    s, base = gw
    admin = boto_client(s)
    admin.create_bucket(Bucket="admins-bucket")
    tenant(base, "climate", 3201, groups=[3299])
    ok(api(base, "PUT", "/admin/tenants/climate/policies/rw", allow(S3_ALL_ON("climate-*"), LIST_MY)))
    ann = client(s, user_with_key(base, "climate", "ann"))
    # No policy attached yet: nothing is allowed.
    assert error_of(lambda: ann.list_buckets()) == ("AccessDenied", 403)
    assert error_of(lambda: ann.create_bucket(Bucket="climate-data")) == ("AccessDenied", 403)
    ok(api(base, "PUT", "/admin/tenants/climate/users/ann", {"policies": ["rw"]}))
    ann.create_bucket(Bucket="climate-data")
    bdir = s.root / "climate-data"
    assert owner_of(bdir) == (3201, 3201) and stat.S_IMODE(os.stat(bdir).st_mode) == 0o750
    ann.put_object(Bucket="climate-data", Key="runs/2026/t2m.nc", Body=b"x" * 1000)
    f = bdir / "runs" / "2026" / "t2m.nc"
    assert owner_of(f) == (3201, 3201), "the file belongs to the tenant's uid and gid"
    assert owner_of(bdir / "runs") == (3201, 3201)
    assert ann.get_object(Bucket="climate-data", Key="runs/2026/t2m.nc")["Body"].read() == b"x" * 1000
    mp = ann.create_multipart_upload(Bucket="climate-data", Key="big")
    part = ann.upload_part(Bucket="climate-data", Key="big", UploadId=mp["UploadId"], PartNumber=1, Body=b"y" * 100)
    ann.complete_multipart_upload(Bucket="climate-data", Key="big", UploadId=mp["UploadId"],
                                  MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert owner_of(bdir / "big") == (3201, 3201)
    ann.copy_object(Bucket="climate-data", Key="big-copy", CopySource={"Bucket": "climate-data", "Key": "big"})
    assert owner_of(bdir / "big-copy") == (3201, 3201)
    keys = [o["Key"] for o in ann.list_objects_v2(Bucket="climate-data")["Contents"]]
    assert keys == ["big", "big-copy", "runs/2026/t2m.nc"]
    # Its own buckets only; the administrator's bucket is neither listed nor reachable.
    assert [b["Name"] for b in ann.list_buckets()["Buckets"]] == ["climate-data"]
    assert error_of(lambda: ann.list_objects_v2(Bucket="admins-bucket")) == ("AccessDenied", 403)
    assert error_of(lambda: ann.create_bucket(Bucket="elsewhere")) == ("AccessDenied", 403)
    # A name taken by another account.
    assert error_of(lambda: ann.create_bucket(Bucket="admins-bucket")) == ("AccessDenied", 403)
    ok(api(base, "PUT", "/admin/tenants/climate/policies/rw",
           allow(S3_ALL_ON("*"), LIST_MY)))
    assert error_of(lambda: ann.create_bucket(Bucket="admins-bucket")) == ("BucketAlreadyExists", 409)
    # An explicit Deny wins over the Allow.
    ok(api(base, "PUT", "/admin/tenants/climate/policies/no-delete", allow(
        {"Sid": "KeepRuns", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::climate-data/runs/*"})))
    ok(api(base, "PUT", "/admin/tenants/climate/users/ann", {"policies": ["rw", "no-delete"]}))
    assert error_of(lambda: ann.delete_object(Bucket="climate-data", Key="runs/2026/t2m.nc")) == ("AccessDenied", 403)
    ann.delete_object(Bucket="climate-data", Key="big-copy")
    assert not (bdir / "big-copy").exists()
    denied = [json.loads(x) for x in s.audit.read_text().splitlines() if '"denied"' in x]
    assert any("KeepRuns" in (d.get("decided_by") or "") for d in denied), denied
    # The administrator still sees every bucket.
    assert {"admins-bucket", "climate-data"} <= {b["Name"] for b in admin.list_buckets()["Buckets"]}


def test_the_kernel_has_the_last_word(gw):
    """Files the tenant's uid cannot read are refused though every policy allows them."""
    s, base = gw
    tenant(base, "bio", 3301)
    ok(api(base, "PUT", "/admin/tenants/bio/policies/all", allow(S3_ALL_ON("bio-*"))))
    bob = client(s, user_with_key(base, "bio", "bob", policies=["all"]))
    bob.create_bucket(Bucket="bio-images")
    d = s.root / "bio-images"
    # A job running as root drops files into the bucket directly.
    (d / "public.tif").write_bytes(b"p" * 10)
    os.chmod(d / "public.tif", 0o644)
    (d / "secret.tif").write_bytes(b"s" * 10)
    os.chmod(d / "secret.tif", 0o600)
    (d / "locked").mkdir()
    (d / "locked" / "a.tif").write_bytes(b"a")
    os.chmod(d / "locked", 0o700)
    assert bob.get_object(Bucket="bio-images", Key="public.tif")["Body"].read() == b"p" * 10
    assert error_of(lambda: bob.get_object(Bucket="bio-images", Key="secret.tif")) == ("AccessDenied", 403)
    assert error_of(lambda: bob.head_object(Bucket="bio-images", Key="secret.tif"))[1] == 403
    assert error_of(lambda: bob.get_object(Bucket="bio-images", Key="locked/a.tif")) == ("AccessDenied", 403)
    # Overwriting a file the uid may not write is refused too, and the bytes stay.
    os.chmod(d / "public.tif", 0o444)
    os.chmod(d, 0o550)
    assert error_of(lambda: bob.put_object(Bucket="bio-images", Key="public.tif", Body=b"new"))[1] == 403
    os.chmod(d, 0o750)
    assert (d / "public.tif").read_bytes() == b"p" * 10
    # The administrator (the gateway's own identity) reads everything.
    admin = boto_client(s)
    assert admin.get_object(Bucket="bio-images", Key="secret.tif")["Body"].read() == b"s" * 10


def test_across_tenants_both_policies_and_the_file_system_must_allow(gw):
    s, base = gw
    a = tenant(base, "alpha", 3401)
    tenant(base, "beta", 3402)
    ok(api(base, "PUT", "/admin/tenants/alpha/policies/own", allow(S3_ALL_ON("alpha-*"))))
    ok(api(base, "PUT", "/admin/tenants/beta/policies/read-anything", allow(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"})))
    alice = client(s, user_with_key(base, "alpha", "alice", policies=["own"]))
    bert_key = user_with_key(base, "beta", "bert", policies=["read-anything"])
    bert = client(s, bert_key)
    beta_arn = ok(api(base, "GET", "/admin/tenants/beta/users/bert"))["arn"]
    alice.create_bucket(Bucket="alpha-shared")
    alice.put_object(Bucket="alpha-shared", Key="data.csv", Body=b"1,2,3")
    os.chmod(s.root / "alpha-shared" / "data.csv", 0o644)
    # 1. Identity policy only: refused (the bucket's account did not agree).
    assert error_of(lambda: bert.get_object(Bucket="alpha-shared", Key="data.csv")) == ("AccessDenied", 403)
    # 2. Both policies allow, but beta's uid cannot enter alpha's 0750 directory: the kernel refuses.
    alice.put_bucket_policy(Bucket="alpha-shared", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": beta_arn}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::alpha-shared/*"}]}))
    time.sleep(1.1)  # bucket policies are cached for a second
    assert error_of(lambda: bert.get_object(Bucket="alpha-shared", Key="data.csv")) == ("AccessDenied", 403)
    # 3. The steward opens the directory on the file system: now all three agree.
    os.chmod(s.root / "alpha-shared", 0o755)
    assert bert.get_object(Bucket="alpha-shared", Key="data.csv")["Body"].read() == b"1,2,3"
    # The bucket policy grants GetObject only: no listing, no writes, and a missing key is 403.
    assert error_of(lambda: bert.list_objects_v2(Bucket="alpha-shared")) == ("AccessDenied", 403)
    assert error_of(lambda: bert.get_object(Bucket="alpha-shared", Key="missing"))[1] == 403
    # The grant names one bucket exactly: a bucket whose name it prefixes gets nothing.
    alice.create_bucket(Bucket="alpha-shared2")
    alice.put_object(Bucket="alpha-shared2", Key="data.csv", Body=b"4,5,6")
    alice.put_bucket_policy(Bucket="alpha-shared2", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": a["account_id"]}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::alpha-shared2/*"}]}))
    os.chmod(s.root / "alpha-shared2", 0o755)
    time.sleep(1.1)
    assert error_of(lambda: bert.get_object(Bucket="alpha-shared2", Key="data.csv")) == ("AccessDenied", 403)


def test_revocation_rotation_and_deletion_apply_to_the_next_request(gw):
    s, base = gw
    tenant(base, "ops", 3501)
    ok(api(base, "PUT", "/admin/tenants/ops/policies/list", allow(LIST_MY)))
    key = user_with_key(base, "ops", "carol", policies=["list"])
    c = client(s, key)
    c.list_buckets()
    path = f"/admin/tenants/ops/users/carol/keys/{key[0]}"
    ok(api(base, "PUT", path, {"status": "Inactive"}))
    assert error_of(lambda: c.list_buckets()) == ("InvalidAccessKeyId", 403)
    ok(api(base, "PUT", path, {"status": "Active"}))
    c.list_buckets()
    new = ok(api(base, "POST", path + "/rotate"))
    assert new["replaces"] == key[0]
    assert error_of(lambda: c.list_buckets()) == ("InvalidAccessKeyId", 403)
    c2 = client(s, (new["access_key"], new["secret_key"]))
    c2.list_buckets()
    keys = ok(api(base, "GET", "/admin/tenants/ops/users/carol/keys"))["keys"]
    assert {(k["access_key"], k["status"]) for k in keys} == {(key[0], "Inactive"), (new["access_key"], "Active")}
    assert all("secret" not in json.dumps(k) for k in keys)
    # A changed policy applies at once too.
    ok(api(base, "PUT", "/admin/tenants/ops/policies/list", allow(
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"})))
    assert error_of(lambda: c2.list_buckets()) == ("AccessDenied", 403)
    ok(api(base, "DELETE", "/admin/tenants/ops/users/carol"))
    assert error_of(lambda: c2.list_buckets()) == ("InvalidAccessKeyId", 403)
    assert api(base, "GET", "/admin/tenants/ops/users/carol/keys")[0] == 404


def test_secrets_are_sealed_at_rest(gw):
    s, base = gw
    tenant(base, "vault", 3601)
    keys = [user_with_key(base, "vault", f"u{i}") for i in range(3)]
    s.stop()
    state = s.state_dir
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    mk = state / "master.key"
    assert stat.S_IMODE(os.stat(mk).st_mode) == 0o600
    blob = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file() and p != mk)
    for ak, sk in keys:
        assert ak.encode() in blob, "the key id is stored (sanity check of the search)"
        assert sk.encode() not in blob, "a secret is stored in the clear"
    # Without the master key the stored secrets are useless; with it they work after a restart.
    s.start()
    ok(api(admin_url(s), "PUT", "/admin/tenants/vault/policies/l", allow(LIST_MY)))
    ok(api(admin_url(s), "PUT", "/admin/tenants/vault/users/u0", {"policies": ["l"]}))
    # Signing verifies only if the gateway unsealed the secret.
    assert client(s, keys[0]).list_buckets()["Buckets"] == []
    s.stop()
    mk.rename(state.parent / "master.key.moved-away")
    s.start()
    assert error_of(lambda: client(s, keys[0]).list_buckets()) == ("InvalidAccessKeyId", 403)


def test_groups_and_policy_variables(gw):
    s, base = gw
    tenant(base, "lab", 3701)
    ok(api(base, "PUT", "/admin/tenants/lab/policies/home", allow(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::lab-home/home/${aws:username}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::lab-home",
         "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}})))
    ok(api(base, "PUT", "/admin/tenants/lab/groups/members", {"policies": ["home"]}))
    assert api(base, "PUT", "/admin/tenants/lab/users/dan", {"groups": ["nosuch"]})[0] == 400
    dan = client(s, user_with_key(base, "lab", "dan", groups=["members"]))
    eve = client(s, user_with_key(base, "lab", "eve", groups=["members"]))
    admin = boto_client(s)
    admin.create_bucket(Bucket="lab-home")
    # An administrator's bucket: hand it to the tenant on the file system and by owner.
    acct = ok(api(base, "GET", "/admin/tenants/lab"))["account_id"]
    os.setxattr(s.root / "lab-home", "user.strait.bucket-owner", acct.encode())
    os.chown(s.root / "lab-home", 3701, 3701)
    time.sleep(1.1)  # bucket owners are cached for a second
    dan.put_object(Bucket="lab-home", Key="home/dan/notes.txt", Body=b"mine")
    assert error_of(lambda: eve.get_object(Bucket="lab-home", Key="home/dan/notes.txt")) == ("AccessDenied", 403)
    assert error_of(lambda: eve.put_object(Bucket="lab-home", Key="home/dan/x", Body=b"x")) == ("AccessDenied", 403)
    assert [o["Key"] for o in dan.list_objects_v2(Bucket="lab-home", Prefix="home/dan/")["Contents"]] == ["home/dan/notes.txt"]
    assert error_of(lambda: eve.list_objects_v2(Bucket="lab-home", Prefix="home/dan/")) == ("AccessDenied", 403)
    ok(api(base, "DELETE", "/admin/tenants/lab/groups/members"))
    assert error_of(lambda: dan.get_object(Bucket="lab-home", Key="home/dan/notes.txt")) == ("AccessDenied", 403)
    assert ok(api(base, "GET", "/admin/tenants/lab/users/dan"))["groups"] == []


def test_policy_versions_diff_rollback_and_validation(gw):
    s, base = gw
    tenant(base, "geo", 3801)
    st, err = api(base, "PUT", "/admin/tenants/geo/policies/p", allow(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Sid": "Oops", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}))
    assert st == 400 and 'Sid "Oops" (statement 2)' in err["error"], err
    st, err = api(base, "PUT", "/admin/tenants/geo/policies/p", b'{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe"}]}')
    assert st == 400 and "Statement[0].Effect" in err["error"], err
    assert api(base, "GET", "/admin/tenants/geo/policies/p")[0] == 404
    v1 = ok(api(base, "PUT", "/admin/tenants/geo/policies/p", allow(LIST_MY)))
    assert v1["default_version"] == 1
    v2 = ok(api(base, "PUT", "/admin/tenants/geo/policies/p", allow({**LIST_MY, "Effect": "Deny"})))
    assert v2["default_version"] == 2
    vs = ok(api(base, "GET", "/admin/tenants/geo/policies/p/versions"))
    assert [(v["version"], v["default"]) for v in vs["versions"]] == [(1, False), (2, True)]
    assert all(v["author"].endswith(":root") for v in vs["versions"])
    st, diff = api(base, "GET", "/admin/tenants/geo/policies/p/diff?from=1&to=2", raw=True)
    assert st == 200 and '-      "Effect": "Allow"' in diff and '+      "Effect": "Deny"' in diff, diff
    g = client(s, user_with_key(base, "geo", "gus", policies=["p"]))
    assert error_of(lambda: g.list_buckets()) == ("AccessDenied", 403)
    ok(api(base, "POST", "/admin/tenants/geo/policies/p/rollback?version=1"))
    g.list_buckets()
    assert ok(api(base, "GET", "/admin/tenants/geo/policies/p?version=2"))["document"]["Statement"][0]["Effect"] == "Deny"
    ok(api(base, "DELETE", "/admin/tenants/geo/policies/p"))
    assert ok(api(base, "GET", "/admin/tenants/geo/users/gus"))["policies"] == []
    assert error_of(lambda: g.list_buckets()) == ("AccessDenied", 403)


def test_tenant_administrators_manage_their_own_tenant_only(gw):
    s, base = gw
    a = tenant(base, "astro", 3901)
    tenant(base, "chem", 3902)
    ok(api(base, "PUT", "/admin/tenants/astro/policies/iam-admin", allow(
        {"Effect": "Allow", "Action": "iam:*", "Resource": f"arn:aws:iam::{a['account_id']}:*"})))
    boss = user_with_key(base, "astro", "boss", policies=["iam-admin"])
    # Creates users and keys in its tenant...
    ok(api(base, "PUT", "/admin/tenants/astro/users/intern", {}, auth=boss))
    k = ok(api(base, "POST", "/admin/tenants/astro/users/intern/keys", auth=boss))
    assert k["secret_key"]
    assert [u["name"] for u in ok(api(base, "GET", "/admin/tenants/astro/users", auth=boss))["users"]] == ["boss", "intern"]
    # ...but never in another tenant, never tenants themselves, never POSIX identities.
    assert api(base, "PUT", "/admin/tenants/chem/users/mole", {}, auth=boss)[0] == 403
    assert api(base, "GET", "/admin/tenants", auth=boss)[0] == 403
    assert api(base, "PUT", "/admin/tenants/astro", {"uid": 1, "gid": 1}, auth=boss)[0] == 403
    assert api(base, "PUT", "/admin/tenants/astro/users/intern", {"posix": {"uid": 1, "gid": 1}}, auth=boss)[0] == 403
    assert api(base, "DELETE", "/admin/tenants/astro", auth=boss)[0] == 403
    # A user without iam permissions can do nothing, not even read its own record.
    intern = (k["access_key"], k["secret_key"])
    assert api(base, "GET", "/admin/tenants/astro/users/intern", auth=intern)[0] == 403
    audit = [json.loads(x) for x in s.audit.read_text().splitlines()]
    changes = [(r["operation"], r["resource"]) for r in audit if r["kind"] == "change" and r.get("resource")]
    assert ("iam:CreateUser", f"arn:aws:iam::{a['account_id']}:user/intern") in changes
    denials = [r for r in audit if r["kind"] == "denied" and (r.get("operation") or "").startswith(("iam:", "strait:"))]
    assert len(denials) >= 6 and all(r["decided_by"] for r in denials)
    assert any(r["principal"].endswith(":user/boss") and "tenant astro" in r["decided_by"] for r in denials)


def test_user_posix_override_and_admin_cli(gw):
    s, base = gw
    env = {**os.environ, "STRAIT_ROOT_ACCESS_KEY": ACCESS_KEY, "STRAIT_ROOT_SECRET_KEY": SECRET_KEY}

    def cli(*args, check=True):
        r = subprocess.run([s.binary, "admin", *args, "--admin", base], capture_output=True, text=True,
                           env=env, timeout=60)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    cli("tenant", "create", "hpc", "--uid", "4001", "--gid", "4001", "--groups", "4100,4101")
    assert json.loads(cli("tenant", "get", "hpc").stdout)["posix"]["groups"] == [4100, 4101]
    pol = s.root.parent / "pol.json"
    pol.write_bytes(allow(S3_ALL_ON("hpc-*")))
    cli("identity-policy", "put", "hpc", "rw", str(pol))
    bad = s.root.parent / "bad.json"
    bad.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}')
    r = cli("identity-policy", "put", "hpc", "rw", str(bad), check=False)
    assert r.returncode != 0 and "statement 1" in r.stderr
    cli("user", "put", "hpc", "frank", "--policy", "rw", "--posix", "4050:4100")
    k = json.loads(cli("key", "create", "hpc", "frank").stdout)
    frank = client(s, (k["access_key"], k["secret_key"]))
    frank.create_bucket(Bucket="hpc-scratch")
    frank.put_object(Bucket="hpc-scratch", Key="out.dat", Body=b"z")
    assert owner_of(s.root / "hpc-scratch" / "out.dat") == (4050, 4100), "the user's own uid overrides the tenant's"
    cli("key", "deactivate", "hpc", "frank", k["access_key"])
    assert error_of(lambda: frank.list_objects_v2(Bucket="hpc-scratch")) == ("InvalidAccessKeyId", 403)
    assert "frank" in cli("user", "list", "hpc").stdout
    assert [v["version"] for v in json.loads(cli("identity-policy", "versions", "hpc", "rw").stdout)["versions"]] == [1]
    r = subprocess.run([s.binary, "admin", "tenant", "list", "--admin", base], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}, timeout=60)
    assert r.returncode != 0 and "no credentials" in r.stderr


def test_policy_simulator_for_a_tenants_user(gw):
    s, base = gw
    t = tenant(base, "sim", 3951)
    ok(api(base, "PUT", "/admin/tenants/sim/policies/rw", allow(S3_ALL_ON("sim-*"))))
    key = user_with_key(base, "sim", "sue", policies=["rw"])
    sue = client(s, key)
    sue.create_bucket(Bucket="sim-data")
    sue.put_bucket_policy(Bucket="sim-data", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "NoRaw", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::sim-data/raw/*", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}))
    arn = f"arn:aws:iam::{t['account_id']}:user/sue"

    def sim(action, resource, **ctx):
        return ok(api(base, "POST", "/admin/simulate",
                      {"principal": arn, "action": action, "resource": resource, "context": ctx}))

    r = sim("s3:GetObject", "arn:aws:s3:::sim-data/clean/a")
    assert r["decision"] == "allowed" and "policy rw v1" in r["decided_by"], r
    r = sim("s3:GetObject", "arn:aws:s3:::sim-data/raw/a", **{"aws:SourceIp": "192.0.2.1"})
    assert r["decision"] == "explicitDeny" and 'Sid "NoRaw"' in r["decided_by"], r
    assert sim("s3:GetObject", "arn:aws:s3:::sim-data/raw/a", **{"aws:SourceIp": "10.1.1.1"})["decision"] == "allowed"
    r = sim("s3:GetObject", "arn:aws:s3:::other/x")
    assert r["decision"] == "implicitDeny", r
    # The simulation agrees with what the gateway does.
    sue.put_object(Bucket="sim-data", Key="raw/a", Body=b"x")
    assert error_of(lambda: sue.get_object(Bucket="sim-data", Key="raw/a")) == ("AccessDenied", 403)
    env = {**os.environ, "STRAIT_ROOT_ACCESS_KEY": ACCESS_KEY, "STRAIT_ROOT_SECRET_KEY": SECRET_KEY}
    out = subprocess.run([s.binary, "admin", "policy", "simulate", "--admin", base, "--principal", arn,
                          "--action", "s3:GetObject", "--resource", "arn:aws:s3:::sim-data/raw/a",
                          "--context", "aws:SourceIp=192.0.2.1"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["decision"] == "explicitDeny"
    # A tenant's user without iam:SimulatePrincipalPolicy may not simulate.
    assert api(base, "POST", "/admin/simulate", {"principal": arn, "action": "s3:GetObject",
                                                 "resource": "arn:aws:s3:::sim-data/a"}, auth=key)[0] == 403


def test_a_generated_root_secret_is_sealed_too(spawn_server):
    s = spawn_server(env_creds=False)
    assert s.secret_key != SECRET_KEY and len(s.secret_key) == 40
    boto_client(s).list_buckets()
    s.stop()
    blob = b"".join(p.read_bytes() for p in s.state_dir.rglob("*") if p.is_file() and p.name != "master.key")
    assert s.access_key.encode() in blob and s.secret_key.encode() not in blob
    s.start()
    boto_client(s).list_buckets()  # the same pair, unsealed at start


@pytest.fixture
def lustre():
    """A project tree the tenants' uids can reach (pytest's own temporary root is 0700)."""
    import shutil
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="strait-lustre-", dir="/tmp"))
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def test_a_linked_project_directory_handed_to_a_tenant(gw, lustre):
    s, base = gw
    tenant(base, "proj", 3981)
    ok(api(base, "PUT", "/admin/tenants/proj/policies/rw", allow(S3_ALL_ON("proj-climate"), LIST_MY)))
    pat = client(s, user_with_key(base, "proj", "pat", policies=["rw"]))
    d = lustre / "proj" / "climate"
    d.mkdir(parents=True)
    os.chmod(d.parent, 0o755)
    (d / "run.nc").write_bytes(b"netcdf")
    (d / "private.nc").write_bytes(b"secret")
    os.chmod(d / "private.nc", 0o600)  # root's, as a job left it
    os.chown(d, 3981, 3981)
    os.chmod(d, 0o750)
    assert api(base, "PUT", "/admin/buckets/proj-climate", {"path": str(d), "tenant": "nosuch"})[0] == 400
    ok(api(base, "PUT", "/admin/buckets/proj-climate", {"path": str(d), "tenant": "proj"}), 201)
    assert [b["Name"] for b in pat.list_buckets()["Buckets"]] == ["proj-climate"]
    assert pat.get_object(Bucket="proj-climate", Key="run.nc")["Body"].read() == b"netcdf"
    assert error_of(lambda: pat.get_object(Bucket="proj-climate", Key="private.nc")) == ("AccessDenied", 403)
    pat.put_object(Bucket="proj-climate", Key="out/result.nc", Body=b"r")
    assert owner_of(d / "out" / "result.nc") == (3981, 3981)
    # The listing shows what the tenant's uid may read.
    assert [o["Key"] for o in pat.list_objects_v2(Bucket="proj-climate")["Contents"]] == ["out/result.nc", "run.nc"]


def test_steward_creates_a_bucket_for_a_tenant(gw):
    s, base = gw
    tenant(base, "astro2", 3991)
    ok(api(base, "PUT", "/admin/tenants/astro2/policies/rw", allow(S3_ALL_ON("astro2-*"), LIST_MY)))
    u = client(s, user_with_key(base, "astro2", "ivy", policies=["rw"]))
    ok(api(base, "PUT", "/admin/buckets/astro2-survey", {"tenant": "astro2"}), 201)
    d = s.root / "astro2-survey"
    assert owner_of(d) == (3991, 3991) and stat.S_IMODE(os.stat(d).st_mode) == 0o750
    assert [b["Name"] for b in u.list_buckets()["Buckets"]] == ["astro2-survey"]
    u.put_object(Bucket="astro2-survey", Key="k", Body=b"v")
    assert api(base, "PUT", "/admin/buckets/astro2-survey", {"tenant": "astro2"})[0] == 400  # exists
    assert api(base, "PUT", "/admin/buckets/Bad_Name", {})[0] == 400


def test_bucket_policy_history_diff_and_rollback(gw):
    s, base = gw
    admin = boto_client(s)
    admin.create_bucket(Bucket="hist")
    deny = {"Version": "2012-10-17", "Statement": [{"Sid": "NoGet", "Effect": "Deny", "Principal": "*",
                                                    "Action": "s3:GetObject", "Resource": "arn:aws:s3:::hist/*"}]}
    admin.put_object(Bucket="hist", Key="k", Body=b"v")
    admin.put_bucket_policy(Bucket="hist", Policy=json.dumps({**deny, "Statement": [{**deny["Statement"][0], "Resource": "arn:aws:s3:::hist/secret/*"}]}))
    admin.put_bucket_policy(Bucket="hist", Policy=json.dumps(deny))
    time.sleep(1.1)
    assert error_of(lambda: admin.get_object(Bucket="hist", Key="k")) == ("AccessDenied", 403)
    vs = ok(api(base, "GET", "/admin/buckets/hist/policy/versions"))["versions"]
    assert [(v["version"], v["removed"]) for v in vs] == [(1, False), (2, False)]
    assert vs[0]["author"] == ACCESS_KEY
    st, diff = api(base, "GET", "/admin/buckets/hist/policy/diff", raw=True)
    assert st == 200 and '-      "Resource": "arn:aws:s3:::hist/secret/*"' in diff and '+      "Resource": "arn:aws:s3:::hist/*"' in diff, diff
    ok(api(base, "POST", "/admin/buckets/hist/policy/rollback?version=1"))
    time.sleep(1.1)  # other gateways' (and this one's) policy cache: a second
    assert admin.get_object(Bucket="hist", Key="k")["Body"].read() == b"v"
    assert "hist/secret/*" in admin.get_bucket_policy(Bucket="hist")["Policy"]
    admin.delete_bucket_policy(Bucket="hist")
    env = {**os.environ, "STRAIT_ROOT_ACCESS_KEY": ACCESS_KEY, "STRAIT_ROOT_SECRET_KEY": SECRET_KEY}
    out = subprocess.run([s.binary, "admin", "bucket-policy", "versions", "hist", "--admin", base],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    got = [(v["version"], v["removed"], v["author"]) for v in json.loads(out.stdout)["versions"]]
    assert got[2:] == [(3, False, "rollback to v1"), (4, True, ACCESS_KEY)], got
    assert api(base, "GET", "/admin/buckets/hist/policy/versions", auth=None)[0] == 401


def test_master_key_rotation_reseals_every_secret(spawn_server):
    s = spawn_server(env_creds=False, extra_args=("--admin-listen", "127.0.0.1:0"))
    base = admin_url(s)
    root = (s.access_key, s.secret_key)
    ok(api(base, "PUT", "/admin/tenants/rot", {"uid": 3971, "gid": 3971}, auth=root))
    ok(api(base, "PUT", "/admin/tenants/rot/policies/l", allow(LIST_MY), auth=root))
    ok(api(base, "PUT", "/admin/tenants/rot/users/ray", {"policies": ["l"]}, auth=root))
    k = ok(api(base, "POST", "/admin/tenants/rot/users/ray/keys", auth=root))
    s.stop()
    mk = s.state_dir / "master.key"
    before = mk.read_bytes()
    out = subprocess.run([s.binary, "admin", "master-key", "rotate", "--root", str(s.root), "--state-dir", str(s.state_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "1 key(s) re-sealed" in out.stdout, out.stderr
    assert mk.read_bytes() != before and stat.S_IMODE(os.stat(mk).st_mode) == 0o600
    assert not (s.state_dir / "master.key.new").exists() and not (s.state_dir / "master.key.old").exists()
    s.start()
    # The tenant's key and the generated root pair both still work, under the new key only.
    assert client(s, (k["access_key"], k["secret_key"])).list_buckets()["Buckets"] == []
    boto_client(s).list_buckets()
    s.stop()
    mk.write_bytes(before)  # the retired key opens nothing any more
    env = {k2: v for k2, v in os.environ.items() if not k2.startswith("STRAIT_ROOT_")}
    r = subprocess.run([s.binary, "serve", "--root", str(s.root), "--state-dir", str(s.state_dir), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "does not open with this master key" in r.stderr, r.stderr
