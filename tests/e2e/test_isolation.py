"""Tenant isolation: tenant B's user against tenant A's buckets and objects, for every S3
operation Strait implements, over S3 and directly on the file system.

Both users' identity policies allow s3:* on everything, so only A's side (across accounts the
bucket policy must allow too) and the kernel (A's bucket directories are 0750 and belong to A's
uid) stand between B and A's data. After each refused request the file system (bytes, modes,
owners, every xattr, directory entries) and A's own view through S3 (keys, uploads, parts, tags,
ACLs, policy) must be exactly as before. The same operations by A on its own buckets succeed, and
its writes do change what the comparison looks at (so the comparison can fail). A bucket policy
that grants B's user s3:* on A's bucket (a mistake) must still not let B in: B's uid cannot
enter A's directory. Processes running as B's uid (an HPC job) cannot read, list or change A's
files either."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import stat
from typing import Callable

import pytest
from botocore.exceptions import ClientError

from helpers import Raw, RawResponse, Server, boto_client, error_of, unique
from test_tenants import LIST_MY, S3_ALL_ON, admin_url, allow, api, client, ok, tenant, user_with_key

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="POSIX identities need root")

A_UID, B_UID = 5101, 5102
OBJ, NESTED, TAGGED, MP_KEY = "obj.txt", "dir/nested.txt", "tagged.txt", "mp.bin"
MINE_OBJ, MINE_MP = "mine.txt", "mine-mp.bin"
OBJ_BODY = b"alpha's object"


# ---------------------------------------------------------------------------------------------
# The server, the two tenants and their buckets
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    """A's buckets as one matrix row sees them, and the caller's own bucket."""

    main: str          # objects, object and bucket tags, an upload in progress
    empty: str         # only an upload in progress (DeleteBucket would succeed)
    upload: str        # the upload of MP_KEY in main, part 1 uploaded
    part_etag: str
    mine: str          # the caller's own bucket (B's; A's second one for the control)
    mine_upload: str   # the caller's upload of MINE_MP in mine
    mine_client: object
    dirty: bool = False


@dataclasses.dataclass
class Env:
    s: Server
    base: str
    a: object
    b: object
    a_account: str
    b_arn: str
    b_bucket: str
    b_upload: str
    a_own: str
    a_own_upload: str
    worlds: dict = dataclasses.field(default_factory=dict)

    def policy_for_b(self, bucket):
        """The mistake: A's bucket policy grants B's user everything."""
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "Mistake", "Effect": "Allow", "Principal": {"AWS": self.b_arn}, "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]})

    def harmless_policy(self, bucket):
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": self.a_account}, "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{bucket}/*"}]})

    def a_world(self, policy=None, mine="b") -> World:
        """Fresh buckets of A: `main` and `empty`, with `policy(bucket)` as bucket policy."""
        a = self.a
        main, empty = unique("iso-a"), unique("iso-a") + "-e"
        for name in (main, empty):
            a.create_bucket(Bucket=name)
        a.put_object(Bucket=main, Key=OBJ, Body=OBJ_BODY, Metadata={"owner": "alpha"})
        a.put_object(Bucket=main, Key=NESTED, Body=b"nested")
        a.put_object(Bucket=main, Key=TAGGED, Body=b"tagged", Tagging="class=secret")
        a.put_bucket_tagging(Bucket=main, Tagging={"TagSet": [{"Key": "team", "Value": "alpha"}]})
        up = a.create_multipart_upload(Bucket=main, Key=MP_KEY)["UploadId"]
        etag = a.upload_part(Bucket=main, Key=MP_KEY, UploadId=up, PartNumber=1, Body=b"p" * 10)["ETag"]
        a.create_multipart_upload(Bucket=empty, Key="pending.bin")
        if policy:
            for name in (main, empty):
                a.put_bucket_policy(Bucket=name, Policy=policy(name))
        if mine == "b":
            return World(main, empty, up, etag, self.b_bucket, self.b_upload, self.b)
        return World(main, empty, up, etag, self.a_own, self.a_own_upload, self.a)

    def shared(self, kind) -> World:
        """One world per matrix, rebuilt after a case that changed it (a failure)."""
        w = self.worlds.get(kind)
        if w is None or w.dirty:
            w = self.worlds[kind] = self.a_world(self.policy_for_b if kind == "mistake" else None)
        return w


@pytest.fixture(scope="module")
def iso(strait_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("isolation")
    s = Server(binary=strait_bin, root=d / "root", state_dir=d / "state", log_path=d / "strait.log",
               extra_args=("--admin-listen", "127.0.0.1:0", "--audit-log", str(d / "audit.jsonl"))).start()
    try:
        base = admin_url(s)
        acct = {}
        for name, uid in (("isoa", A_UID), ("isob", B_UID)):
            acct[name] = tenant(base, name, uid)["account_id"]
            ok(api(base, "PUT", f"/admin/tenants/{name}/policies/all", allow(S3_ALL_ON("*"), LIST_MY)))
        a = client(s, user_with_key(base, "isoa", "ann", policies=["all"]))
        b = client(s, user_with_key(base, "isob", "bob", policies=["all"]))
        b_arn = ok(api(base, "GET", "/admin/tenants/isob/users/bob"))["arn"]
        own = {}
        for who, c, prefix in (("b", b, "iso-b"), ("a", a, "iso-a-own")):
            name = unique(prefix)
            c.create_bucket(Bucket=name)
            c.put_object(Bucket=name, Key=MINE_OBJ, Body=f"{who}'s own object".encode())
            own[who] = (name, c.create_multipart_upload(Bucket=name, Key=MINE_MP)["UploadId"])
        yield Env(s, base, a, b, acct["isoa"], b_arn, *own["b"], *own["a"])
    finally:
        s.stop()
    assert not s.panics(), s.panics()


# ---------------------------------------------------------------------------------------------
# What must not change
# ---------------------------------------------------------------------------------------------


def fs_state(root) -> dict:
    """Every entry under the served root: type, mode, owner, size, times, bytes, xattrs."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [None, *filenames]:  # directories are recorded as their own dirpath
            p = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(p)
            e = {"mode": oct(st.st_mode), "owner": (st.st_uid, st.st_gid), "size": st.st_size,
                 "mtime": st.st_mtime_ns, "ctime": st.st_ctime_ns,
                 "xattrs": {n: os.getxattr(p, n, follow_symlinks=False)
                            for n in sorted(os.listxattr(p, follow_symlinks=False))}}
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    e["sha256"] = hashlib.sha256(f.read()).hexdigest()
            if stat.S_ISDIR(st.st_mode):
                e["entries"] = sorted(os.listdir(p))
            out[os.path.relpath(p, root)] = e
    return out


def diff(before: dict, after: dict) -> list[str]:
    out = []
    for p in sorted(set(before) | set(after)):
        if p not in after:
            out.append(f"removed {p}")
        elif p not in before:
            out.append(f"created {p}: {after[p]}")
        elif before[p] != after[p]:
            fields = {k: (before[p].get(k), after[p].get(k)) for k in set(before[p]) | set(after[p])
                      if before[p].get(k) != after[p].get(k)}
            out.append(f"changed {p}: {fields}")
    return out


def _try(f):
    try:
        return f()
    except ClientError as e:
        return ("error", e.response.get("Error", {}).get("Code"))


def a_view(env: Env, w: World) -> dict:
    """What A (and the caller, of its own bucket) sees through S3."""
    a, m = env.a, w.mine_client
    return {
        "objects": _try(lambda: [(o["Key"], o["ETag"], o["Size"])
                                 for o in a.list_objects_v2(Bucket=w.main).get("Contents", [])]),
        "head": _try(lambda: {k: v for k, v in a.head_object(Bucket=w.main, Key=OBJ).items()
                              if k in ("ETag", "ContentLength", "Metadata", "LastModified")}),
        "uploads": _try(lambda: sorted((u["Key"], u["UploadId"])
                                       for u in a.list_multipart_uploads(Bucket=w.main).get("Uploads", []))),
        "parts": _try(lambda: [(p["PartNumber"], p["ETag"]) for p in
                               a.list_parts(Bucket=w.main, Key=MP_KEY, UploadId=w.upload).get("Parts", [])]),
        "bucket_tags": _try(lambda: a.get_bucket_tagging(Bucket=w.main)["TagSet"]),
        "policy": _try(lambda: a.get_bucket_policy(Bucket=w.main)["Policy"]),
        "bucket_acl": _try(lambda: a.get_bucket_acl(Bucket=w.main)["Grants"]),
        "object_acl": _try(lambda: a.get_object_acl(Bucket=w.main, Key=OBJ)["Grants"]),
        "object_tags": _try(lambda: (a.get_object_tagging(Bucket=w.main, Key=OBJ)["TagSet"],
                                     a.get_object_tagging(Bucket=w.main, Key=TAGGED)["TagSet"])),
        "empty_uploads": _try(lambda: [u["Key"] for u in
                                       a.list_multipart_uploads(Bucket=w.empty).get("Uploads", [])]),
        "buckets": _try(lambda: sorted(b["Name"] for b in a.list_buckets()["Buckets"])),
        "mine_objects": _try(lambda: [(o["Key"], o["ETag"]) for o in
                                      m.list_objects_v2(Bucket=w.mine).get("Contents", [])]),
        "mine_parts": _try(lambda: [p["PartNumber"] for p in
                                    m.list_parts(Bucket=w.mine, Key=MINE_MP, UploadId=w.mine_upload).get("Parts", [])]),
    }


# ---------------------------------------------------------------------------------------------
# The operations: c is the acting client, w the world
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Op:
    name: str
    call: Callable
    writes: bool  # the control (A on its own bucket) must change the file system
    head: bool = False  # HEAD: no error body, only the status


def _src(bucket, key):
    return {"Bucket": bucket, "Key": key}


PUBLIC_READ = lambda bucket: json.dumps({"Version": "2012-10-17", "Statement": [  # noqa: E731
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})

OPS = [
    Op("CreateBucket", lambda c, w: c.create_bucket(Bucket=w.main), False),
    Op("DeleteBucket", lambda c, w: c.delete_bucket(Bucket=w.empty), True),
    Op("HeadBucket", lambda c, w: c.head_bucket(Bucket=w.main), False, head=True),
    Op("ListObjects", lambda c, w: c.list_objects(Bucket=w.main), False),
    Op("ListObjectsV2", lambda c, w: c.list_objects_v2(Bucket=w.main), False),
    Op("ListObjectVersions", lambda c, w: c.list_object_versions(Bucket=w.main), False),
    Op("GetBucketLocation", lambda c, w: c.get_bucket_location(Bucket=w.main), False),
    Op("GetBucketVersioning", lambda c, w: c.get_bucket_versioning(Bucket=w.main), False),
    Op("GetBucketTagging", lambda c, w: c.get_bucket_tagging(Bucket=w.main), False),
    Op("PutBucketTagging", lambda c, w: c.put_bucket_tagging(
        Bucket=w.main, Tagging={"TagSet": [{"Key": "team", "Value": "bravo"}]}), True),
    Op("DeleteBucketTagging", lambda c, w: c.delete_bucket_tagging(Bucket=w.main), True),
    Op("GetBucketPolicy", lambda c, w: c.get_bucket_policy(Bucket=w.main), False),
    Op("PutBucketPolicy", lambda c, w: c.put_bucket_policy(Bucket=w.main, Policy=PUBLIC_READ(w.main)), True),
    Op("DeleteBucketPolicy", lambda c, w: c.delete_bucket_policy(Bucket=w.main), True),
    Op("GetBucketPolicyStatus", lambda c, w: c.get_bucket_policy_status(Bucket=w.main), False),
    Op("GetBucketAcl", lambda c, w: c.get_bucket_acl(Bucket=w.main), False),
    Op("PutBucketAcl", lambda c, w: c.put_bucket_acl(Bucket=w.main, ACL="public-read-write"), True),
    Op("PutObject", lambda c, w: c.put_object(Bucket=w.main, Key=OBJ, Body=b"overwritten"), True),
    Op("PutObject-newkey", lambda c, w: c.put_object(Bucket=w.main, Key="planted/new.txt", Body=b"x"), True),
    Op("GetObject", lambda c, w: c.get_object(Bucket=w.main, Key=OBJ)["Body"].read(), False),
    Op("HeadObject", lambda c, w: c.head_object(Bucket=w.main, Key=OBJ), False, head=True),
    Op("GetObjectAttributes", lambda c, w: c.get_object_attributes(
        Bucket=w.main, Key=OBJ, ObjectAttributes=["ETag", "ObjectSize"]), False),
    Op("CopyObject-from-A", lambda c, w: c.copy_object(
        Bucket=w.mine, Key="copied.txt", CopySource=_src(w.main, OBJ)), True),
    Op("CopyObject-into-A", lambda c, w: c.copy_object(
        Bucket=w.main, Key="copied.txt", CopySource=_src(w.mine, MINE_OBJ)), True),
    Op("DeleteObject", lambda c, w: c.delete_object(Bucket=w.main, Key=OBJ), True),
    Op("DeleteObjects", lambda c, w: c.delete_objects(
        Bucket=w.main, Delete={"Objects": [{"Key": OBJ}, {"Key": NESTED}]}), True),
    Op("GetObjectTagging", lambda c, w: c.get_object_tagging(Bucket=w.main, Key=TAGGED), False),
    Op("PutObjectTagging", lambda c, w: c.put_object_tagging(
        Bucket=w.main, Key=OBJ, Tagging={"TagSet": [{"Key": "class", "Value": "public"}]}), True),
    Op("DeleteObjectTagging", lambda c, w: c.delete_object_tagging(Bucket=w.main, Key=TAGGED), True),
    Op("GetObjectAcl", lambda c, w: c.get_object_acl(Bucket=w.main, Key=OBJ), False),
    Op("PutObjectAcl", lambda c, w: c.put_object_acl(Bucket=w.main, Key=OBJ, ACL="public-read"), True),
    Op("CreateMultipartUpload", lambda c, w: c.create_multipart_upload(Bucket=w.main, Key="new-mp.bin"), True),
    Op("UploadPart", lambda c, w: c.upload_part(
        Bucket=w.main, Key=MP_KEY, UploadId=w.upload, PartNumber=2, Body=b"q" * 10), True),
    Op("UploadPartCopy-from-A", lambda c, w: c.upload_part_copy(
        Bucket=w.mine, Key=MINE_MP, UploadId=w.mine_upload, PartNumber=1, CopySource=_src(w.main, OBJ)), True),
    Op("UploadPartCopy-into-A", lambda c, w: c.upload_part_copy(
        Bucket=w.main, Key=MP_KEY, UploadId=w.upload, PartNumber=2, CopySource=_src(w.mine, MINE_OBJ)), True),
    Op("CompleteMultipartUpload", lambda c, w: c.complete_multipart_upload(
        Bucket=w.main, Key=MP_KEY, UploadId=w.upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": w.part_etag}]}), True),
    Op("AbortMultipartUpload", lambda c, w: c.abort_multipart_upload(
        Bucket=w.main, Key=MP_KEY, UploadId=w.upload), True),
    Op("ListParts", lambda c, w: c.list_parts(Bucket=w.main, Key=MP_KEY, UploadId=w.upload), False),
    Op("ListMultipartUploads", lambda c, w: c.list_multipart_uploads(Bucket=w.main), False),
]

# Known holes: operation name -> reason (strict xfail: the case must start passing when fixed).
MISTAKE_BUGS: dict[str, str] = {}
DENIED_BUGS: dict[str, str] = {}


class Leak(AssertionError):
    """The caller got through (what a known bug's xfail expects; any other failure is real)."""


def known_bug(reason):
    return [pytest.mark.xfail(strict=True, raises=Leak, reason=reason)] if reason else []


def cases(bugs):
    return [pytest.param(op, id=op.name, marks=known_bug(bugs.get(op.name))) for op in OPS]


def refusal(op: Op, call) -> str | None:
    """None if the call was refused as it must be, else what happened."""
    try:
        out = call()
    except ClientError as e:
        code, status = e.response.get("Error", {}).get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
        if op.name == "CreateBucket":
            # A's name is taken; B must not be told it owns it.
            good = (code, status) in {("BucketAlreadyExists", 409), ("AccessDenied", 403)}
        elif op.head:
            good = status == 403
        else:
            good = (code, status) == ("AccessDenied", 403)
        return None if good else f"refused with {status} {code}, want 403 AccessDenied"
    if isinstance(out, dict):
        out = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    return f"the call succeeded: {out!r}"[:600]


def refused_and_unchanged(env: Env, w: World, op: Op):
    fs0, view0 = fs_state(env.s.root), a_view(env, w)
    wrong = refusal(op, lambda: op.call(env.b, w))
    changes = diff(fs0, fs_state(env.s.root))
    view1 = a_view(env, w)
    if changes or view1 != view0 or wrong:
        w.dirty = True
    problems = [wrong] if wrong else []
    problems += [f"file system: {c}" for c in changes]
    problems += [f"A's view of {k}: {view0[k]!r} -> {view1[k]!r}" for k in view0 if view0[k] != view1[k]]
    if problems:
        raise Leak(f"{op.name} by B:\n" + "\n".join(problems))


# ---------------------------------------------------------------------------------------------
# The matrix over S3
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", cases(DENIED_BUGS))
def test_b_is_refused_on_a_buckets(iso, op):
    """No bucket policy: across accounts the bucket owner did not agree (the kernel too, for
    a copy from A's bucket into B's own)."""
    refused_and_unchanged(iso, iso.shared("plain"), op)


@pytest.mark.parametrize("op", cases(MISTAKE_BUGS))
def test_a_bucket_policy_granting_b_everything_is_stopped_by_the_kernel(iso, op):
    """Both policies allow; B's uid cannot enter A's 0750 directory."""
    refused_and_unchanged(iso, iso.shared("mistake"), op)


@pytest.mark.parametrize("op", [pytest.param(op, id=op.name) for op in OPS])
def test_a_succeeds_on_its_own_buckets(iso, op):
    """The control: the same requests by A on its own (fresh) buckets succeed, and writes show
    in the file-system comparison."""
    w = iso.a_world(iso.harmless_policy, mine="a")
    before = fs_state(iso.s.root)
    op.call(iso.a, w)
    changes = diff(before, fs_state(iso.s.root))
    if op.writes:
        assert changes, f"{op.name} by the owner changed nothing on the file system"
    else:
        assert not changes, changes


def test_list_buckets_shows_each_tenant_its_own(iso):
    """Exactly the bucket directories of the tenant's uid, whatever A's bucket policies grant."""
    w, m = iso.shared("plain"), iso.shared("mistake")
    root = iso.s.root
    dirs = {uid: {n for n in os.listdir(root) if os.stat(root / n).st_uid == uid} for uid in (A_UID, B_UID)}
    b_sees = [x["Name"] for x in iso.b.list_buckets()["Buckets"]]
    a_sees = [x["Name"] for x in iso.a.list_buckets()["Buckets"]]
    assert iso.b_bucket in b_sees and set(b_sees) == dirs[B_UID] and len(b_sees) == len(dirs[B_UID])
    assert {w.main, w.empty, m.main, m.empty, iso.a_own} <= set(a_sees) and set(a_sees) == dirs[A_UID]


def test_the_mistaken_policy_does_grant_b(iso):
    """The kernel, not the policy, refused B in the mistake matrix: opened on the file system,
    A's bucket lets B read."""
    w = iso.a_world(iso.policy_for_b)
    assert error_of(lambda: iso.b.get_object(Bucket=w.main, Key=OBJ)) == ("AccessDenied", 403)
    os.chmod(iso.s.root / w.main, 0o755)
    assert iso.b.get_object(Bucket=w.main, Key=OBJ)["Body"].read() == OBJ_BODY
    assert [o["Key"] for o in iso.b.list_objects_v2(Bucket=w.main)["Contents"]] == [NESTED, OBJ, TAGGED]
    # Without the policy, the open directory is still closed to B over S3.
    iso.a.delete_bucket_policy(Bucket=w.main)
    assert error_of(lambda: iso.b.get_object(Bucket=w.main, Key=OBJ)) == ("AccessDenied", 403)


def outcome(call) -> tuple[int, str | None]:
    """(status, error code) of a boto3 call or a raw request."""
    try:
        r = call()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response.get("Error", {}).get("Code")
    if isinstance(r, RawResponse):
        return r.status, r.code
    return 200, None


def _opened_a(iso):
    """A's bucket, opened to everyone on the file system (a steward's chmod 0755), no policy."""
    w = iso.a_world()
    os.chmod(iso.s.root / w.main, 0o755)
    return w


def _src_copy_from_opened_a(iso):
    w = _opened_a(iso)
    dst = unique("iso-b")
    iso.b.create_bucket(Bucket=dst)
    return (lambda: iso.b.get_object(Bucket=w.main, Key=OBJ),
            lambda: iso.b.copy_object(Bucket=dst, Key="copied.txt", CopySource=_src(w.main, OBJ)))


def _src_part_copy_from_opened_a(iso):
    w = _opened_a(iso)
    dst = unique("iso-b")
    iso.b.create_bucket(Bucket=dst)
    up = iso.b.create_multipart_upload(Bucket=dst, Key="mp")["UploadId"]
    return (lambda: iso.b.get_object(Bucket=w.main, Key=OBJ),
            lambda: iso.b.upload_part_copy(Bucket=dst, Key="mp", UploadId=up, PartNumber=1,
                                           CopySource=_src(w.main, OBJ)))


def _src_copy_from_admin_bucket(iso):
    """The administrator's buckets are 0755 on the file system (readable by every uid)."""
    admin = boto_client(iso.s)
    src, dst = unique("iso-admin"), unique("iso-b")
    admin.create_bucket(Bucket=src)
    admin.put_object(Bucket=src, Key="secret.txt", Body=b"the administrator's")
    iso.b.create_bucket(Bucket=dst)
    return (lambda: iso.b.get_object(Bucket=src, Key="secret.txt"),
            lambda: iso.b.copy_object(Bucket=dst, Key="copied.txt", CopySource=_src(src, "secret.txt")))


def _src_anonymous_copy_from_a(iso):
    """Anyone may write into a drop box of the administrator's; A's bucket is untouched (0750)."""
    w = iso.a_world()
    admin, raw = boto_client(iso.s), Raw(iso.s)
    drop = unique("iso-drop")
    admin.create_bucket(Bucket=drop)
    admin.put_bucket_policy(Bucket=drop, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{drop}/*"}]}))
    return (lambda: raw.get(f"/{w.main}/{OBJ}", sign=False),
            lambda: raw.put(f"/{drop}/loot.txt", sign=False, headers={"x-amz-copy-source": f"/{w.main}/{OBJ}"}))


SOURCE_ROWS = [
    # (id, setup returning (read the source, copy it), known bug or None)
    ("CopyObject-from-opened-A", _src_copy_from_opened_a, None),
    ("UploadPartCopy-from-opened-A", _src_part_copy_from_opened_a, None),
    ("CopyObject-from-admin-bucket", _src_copy_from_admin_bucket, None),
    ("anonymous-CopyObject-from-A", _src_anonymous_copy_from_a, None),
]


@pytest.mark.parametrize("setup", [pytest.param(f, id=i, marks=known_bug(bug)) for i, f, bug in SOURCE_ROWS])
def test_a_copy_source_needs_read_permission(iso, setup):
    """A copy reads its source: whoever may not GetObject it may not copy it (AWS: s3:GetObject
    on the source), whatever the file system would let the gateway read."""
    read, copy = setup(iso)
    assert outcome(read) == (403, "AccessDenied"), "the caller must not be able to read the source"
    before = fs_state(iso.s.root)
    got = outcome(copy)
    changes = diff(before, fs_state(iso.s.root))
    if got != (403, "AccessDenied") or changes:
        raise Leak(f"copy answered {got}; file system: {changes}")


# ---------------------------------------------------------------------------------------------
# Directly on the file system
# ---------------------------------------------------------------------------------------------


def as_uid(root, uid, fn):
    """fn() in a child process running as uid:uid without supplementary groups, from the
    served root (its ancestors are root's); its result, or the errno name it failed with."""
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(r)
            os.chdir(root)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                res = {"ok": fn()}
            except OSError as e:
                res = {"errno": errno.errorcode.get(e.errno, str(e.errno))}
            os.write(wfd, json.dumps(res, default=repr).encode())
        except BaseException as e:  # noqa: BLE001
            os.write(wfd, json.dumps({"crash": repr(e)}).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _read(p):
    with open(p, "rb") as f:
        return f.read().decode()


def _create(p):
    with open(p, "xb") as f:
        f.write(b"planted")
    return "created"


def part_file(root, w: World) -> str:
    """The relative path of the file holding part 1's bytes of A's upload (found as root): the
    upload's data file when the part went in place, else the part's own file."""
    found = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root / w.main)
             for f in fs if ".strait-uploads" in d and w.upload in d and f in ("data", "00001")]
    assert found, "no part file of the upload under the bucket"
    return sorted(found, key=lambda p: not p.endswith("data"))[0]


DENIED_FS = {"EACCES", "EPERM"}

FS_ROWS = [
    # (id, what B's uid does to A's bucket)
    ("read-object", lambda w, part: _read(f"{w.main}/{OBJ}")),
    ("read-nested-object", lambda w, part: _read(f"{w.main}/{NESTED}")),
    ("read-part", lambda w, part: _read(part)),
    ("list-bucket", lambda w, part: os.listdir(w.main)),
    ("stat-object", lambda w, part: os.stat(f"{w.main}/{OBJ}").st_size),
    ("read-xattrs", lambda w, part: os.listxattr(f"{w.main}/{OBJ}")),
    ("create-file", lambda w, part: _create(f"{w.main}/planted.txt")),
    ("delete-object", lambda w, part: os.unlink(f"{w.main}/{OBJ}")),
    ("rename-object", lambda w, part: os.rename(f"{w.main}/{OBJ}", f"{w.mine}/stolen.txt")),
    ("set-bucket-xattr", lambda w, part: os.setxattr(w.main, "user.strait.bucket-policy", b"{}")),
    ("chmod-bucket", lambda w, part: os.chmod(w.main, 0o777)),
    ("remove-bucket", lambda w, part: os.rmdir(w.empty)),
]


@pytest.mark.parametrize("action", [pytest.param(f, id=i) for i, f in FS_ROWS])
def test_b_uid_on_the_file_system(iso, action):
    w = iso.shared("plain")
    root = iso.s.root
    part = part_file(root, w)
    before = fs_state(root)
    got = as_uid(root, B_UID, lambda: action(w, part))
    changes = diff(before, fs_state(root))
    if changes:
        w.dirty = True
    assert got.get("errno") in DENIED_FS, got
    assert not changes, changes


def test_the_file_system_check_can_succeed(iso):
    """The controls of the rows above: each uid reads and lists its own tenant's files, and
    A's uid is as locked out of B's bucket as B's is of A's."""
    w = iso.shared("plain")
    root = iso.s.root
    part = part_file(root, w)
    assert as_uid(root, A_UID, lambda: _read(f"{w.main}/{OBJ}")) == {"ok": OBJ_BODY.decode()}
    assert as_uid(root, A_UID, lambda: _read(f"{w.main}/{NESTED}")) == {"ok": "nested"}
    assert as_uid(root, A_UID, lambda: len(_read(part))) == {"ok": 10}
    assert OBJ in as_uid(root, A_UID, lambda: os.listdir(w.main))["ok"]
    assert as_uid(root, B_UID, lambda: _read(f"{iso.b_bucket}/{MINE_OBJ}")) == {"ok": "b's own object"}
    assert as_uid(root, B_UID, lambda: os.listdir(iso.b_bucket))["ok"].count(MINE_OBJ) == 1
    assert as_uid(root, A_UID, lambda: _read(f"{iso.b_bucket}/{MINE_OBJ}")) == {"errno": "EACCES"}
    assert as_uid(root, A_UID, lambda: os.listdir(iso.b_bucket)) == {"errno": "EACCES"}


def test_files_made_through_s3_belong_to_the_tenant(iso):
    """Everything A made through S3 (objects, directories, parts) is A's uid and gid, the
    bucket is 0750 and nothing in it is open to others beyond what 0750 hides."""
    w = iso.shared("plain")
    root = iso.s.root
    for bucket, uid in ((w.main, A_UID), (w.empty, A_UID), (iso.b_bucket, B_UID)):
        top = root / bucket
        st = os.stat(top)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, uid, 0o750), bucket
        entries = [os.path.join(d, n) for d, ds, fs in os.walk(top) for n in ds + fs]
        assert entries
        for p in entries:
            st = os.lstat(p)
            assert (st.st_uid, st.st_gid) == (uid, uid), p
            assert not stat.S_ISLNK(st.st_mode), p
            assert not st.st_mode & stat.S_IWOTH, p
    objects = [root / w.main / k for k in (OBJ, NESTED, TAGGED)]
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o644 for p in objects)
