"""Key-to-path mapping: traversal attempts, internal names, directory markers, file/directory
conflicts, symlinks and FIFOs in the tree. Raw requests: boto3 would normalise some paths."""

import os
from pathlib import Path
from urllib.parse import unquote

import pytest

from helpers import key_path, s3_error


def tree_snapshot(top: Path, skip: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath).is_relative_to(skip):
            continue
        for n in dirnames + filenames:
            out.add(os.path.join(dirpath, n))
    return out


def raw_key_request(raw, method, bucket, raw_key, body=b""):
    """Send `raw_key` byte for byte in the path, signed over its canonical (decoded, re-encoded)
    form, as AWS computes it."""
    canonical = key_path(bucket, unquote(raw_key))
    _, hdrs, _ = raw.sign(method, canonical, body=body)
    return raw.send(method, f"/{bucket}/{raw_key}", hdrs, body)


TRAVERSAL = [
    "../escape",
    "../../escape",
    "a/../../escape",
    "a/../b",
    "a/./b",
    "./a",
    "a/.",
    "a/..",
    "..",
    ".",
    "a//b",
    "/abs",
    "a//",
    "%2e%2e/escape",
    "%2E%2E%2Fescape",
    "a%2F..%2F..%2Fescape",
    "a/%2e/b",
    "nul%00byte",
]


@pytest.mark.parametrize("raw_key", TRAVERSAL)
def test_put_key_traversal_refused(raw, server, workdir, bucket, raw_key):
    before = tree_snapshot(workdir, server.root / bucket)
    r = raw_key_request(raw, "PUT", bucket, raw_key, body=b"escaped!")
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r
    after = tree_snapshot(workdir, server.root / bucket)
    new = {p for p in after - before if not p.startswith(str(server.state_dir))
           and "/.strait" not in p and not p.endswith(".log")}
    assert not new, f"files created outside the bucket: {sorted(new)}"


@pytest.mark.parametrize("raw_key", ["../" + "x", "a/../../secret.txt", "%2e%2e/%2e%2e/etc/passwd"])
def test_get_key_traversal_refused(raw, bucket, raw_key):
    r = raw_key_request(raw, "GET", bucket, raw_key)
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r


@pytest.mark.parametrize("path", ["/..%2F..%2Fetc/passwd", "/%2e%2e/etc/passwd", "/../etc/passwd"])
def test_bucket_traversal_refused(raw, path):
    _, hdrs, _ = raw.sign("GET", path)
    r = raw.send("GET", path, hdrs)
    assert r.status in (400, 403, 404), r
    assert b"root:" not in r.body


def test_delete_key_traversal_refused(raw, server, bucket):
    victim = server.root / "victim.txt"
    victim.write_bytes(b"must survive")
    r = raw_key_request(raw, "DELETE", bucket, "../victim.txt")
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r
    assert victim.read_bytes() == b"must survive"


@pytest.mark.parametrize("key", [".strait", ".strait-uploads/x", "d/.strait.stage.1", ".straitfoo",
                                 "a/.strait/b"])
def test_put_internal_name_refused(raw, bucket, key):
    r = raw.put(key_path(bucket, key), body=b"x")
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r


def test_get_internal_name_refused(raw, s3, bucket, bucket_dir):
    (bucket_dir / ".strait-secret").write_bytes(b"internal state")
    r = raw.get(key_path(bucket, ".strait-secret"))
    assert r.status == 400, r
    assert r.code == "InvalidArgument", r
    assert b"internal state" not in r.body


def test_state_dir_not_reachable(raw_tls, tls_server):
    # The TLS server keeps its state in <root>/.strait.
    assert (tls_server.root / ".strait").is_dir()
    for path in ("/.strait", "/.strait/", "/.strait/anything"):
        r = raw_tls.get(path)
        assert r.status == 400, (path, r)
        assert r.code == "InvalidBucketName", (path, r)
    r = raw_tls.put("/.strait/injected", body=b"x")
    assert r.status == 400 and r.code == "InvalidBucketName", r
    assert not (tls_server.root / ".strait" / "injected").exists()


def test_dotfiles_allowed(s3, bucket):
    for k in (".hidden", "...", "a/.b/c", "..x", "x.."):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode()


# --- directory markers -----------------------------------------------------------------------


def test_dir_marker_create(s3, bucket, bucket_dir):
    r = s3.put_object(Bucket=bucket, Key="a/b/", Body=b"")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    h = s3.head_object(Bucket=bucket, Key="a/b/")
    assert h["ContentLength"] == 0
    assert (bucket_dir / "a" / "b").is_dir()
    with s3_error(404):
        s3.head_object(Bucket=bucket, Key="a/b")


def test_dir_marker_distinct_from_file(s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=b"file")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="f/")


def test_dir_marker_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m/", Body=b"", ContentType="application/x-directory",
                  Metadata={"kind": "folder"})
    h = s3.head_object(Bucket=bucket, Key="m/")
    assert h["ContentType"] == "application/x-directory"
    assert h["Metadata"] == {"kind": "folder"}


def test_dir_marker_delete_keeps_children(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m/", Body=b"")
    s3.put_object(Bucket=bucket, Key="m/child", Body=b"c")
    assert s3.delete_object(Bucket=bucket, Key="m/")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with s3_error(404):
        s3.head_object(Bucket=bucket, Key="m/")
    assert s3.get_object(Bucket=bucket, Key="m/child")["Body"].read() == b"c"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["m/child"]


def test_dir_marker_delete_keeps_outside_directory(s3, bucket, bucket_dir):
    (bucket_dir / "ext").mkdir()
    s3.delete_object(Bucket=bucket, Key="ext/")
    assert (bucket_dir / "ext").is_dir()


def test_dir_marker_survives_child_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m/", Body=b"")
    s3.put_object(Bucket=bucket, Key="m/child", Body=b"c")
    s3.delete_object(Bucket=bucket, Key="m/child")
    assert s3.head_object(Bucket=bucket, Key="m/")["ContentLength"] == 0


# --- file / directory conflicts --------------------------------------------------------------


def test_put_key_parent_is_file(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"file a")
    with s3_error(409, "ObjectParentIsFile"):
        s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"file a"


def test_put_key_deep_parent_is_file(s3, bucket):
    s3.put_object(Bucket=bucket, Key="p/a", Body=b"file")
    with s3_error(409, "ObjectParentIsFile"):
        s3.put_object(Bucket=bucket, Key="p/a/b/c/d", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="p/a")["Body"].read() == b"file"


def test_put_dir_marker_parent_is_file(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"file a")
    with s3_error(409, "ObjectParentIsFile"):
        s3.put_object(Bucket=bucket, Key="a/", Body=b"")


def test_put_key_existing_directory(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    with s3_error(409, "ExistingObjectIsDirectory"):
        s3.put_object(Bucket=bucket, Key="a", Body=b"file a")
    assert s3.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"x"


def test_put_key_existing_dir_marker(s3, bucket):
    s3.put_object(Bucket=bucket, Key="d/", Body=b"")
    with s3_error(409, "ExistingObjectIsDirectory"):
        s3.put_object(Bucket=bucket, Key="d", Body=b"file")


def test_put_key_existing_directory_made_outside(s3, bucket, bucket_dir):
    (bucket_dir / "outside-dir").mkdir()
    with s3_error(409, "ExistingObjectIsDirectory"):
        s3.put_object(Bucket=bucket, Key="outside-dir", Body=b"file")


def test_put_key_parent_is_file_made_outside(s3, bucket, bucket_dir):
    (bucket_dir / "plain").write_bytes(b"outside file")
    with s3_error(409, "ObjectParentIsFile"):
        s3.put_object(Bucket=bucket, Key="plain/child", Body=b"x")
    assert (bucket_dir / "plain").read_bytes() == b"outside file"


def test_conflict_after_delete_resolved(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"file")
    s3.delete_object(Bucket=bucket, Key="a")
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"now a dir")
    s3.delete_object(Bucket=bucket, Key="a/b")
    s3.put_object(Bucket=bucket, Key="a", Body=b"file again")
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"file again"


# --- symlinks and FIFOs ----------------------------------------------------------------------


def test_symlink_to_outside_file_unreadable(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir / "secret.txt", bucket_dir / "link")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="link")
    with s3_error(404):
        s3.head_object(Bucket=bucket, Key="link")


def test_symlink_inside_bucket_unreadable(s3, bucket, bucket_dir):
    s3.put_object(Bucket=bucket, Key="target", Body=b"t")
    os.symlink("target", bucket_dir / "alias")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="alias")


def test_symlinked_directory_unreachable(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir, bucket_dir / "linkdir")
    with pytest.raises(s3.exceptions.ClientError) as ei:
        s3.get_object(Bucket=bucket, Key="linkdir/secret.txt")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)
    r = s3.list_objects_v2(Bucket=bucket, Prefix="linkdir/")
    assert r["KeyCount"] == 0


def test_put_through_symlinked_directory_refused(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir, bucket_dir / "linkdir")
    with pytest.raises(s3.exceptions.ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="linkdir/planted", Body=b"planted")
    assert 400 <= ei.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert not (outside_dir / "planted").exists()


def test_put_over_symlink_does_not_write_target(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir / "secret.txt", bucket_dir / "link")
    try:
        s3.put_object(Bucket=bucket, Key="link", Body=b"overwritten")
    except s3.exceptions.ClientError as e:
        assert 400 <= e.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert (outside_dir / "secret.txt").read_bytes() == b"top secret"


def test_delete_symlink_does_not_touch_target(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir / "secret.txt", bucket_dir / "link")
    os.symlink(outside_dir, bucket_dir / "linkdir")
    for key in ("link", "linkdir/secret.txt"):
        try:
            s3.delete_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as e:
            assert 400 <= e.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert (outside_dir / "secret.txt").read_bytes() == b"top secret"


def test_copy_from_symlink_refused(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir / "secret.txt", bucket_dir / "link")
    with s3_error(404, "NoSuchKey"):
        s3.copy_object(Bucket=bucket, Key="stolen", CopySource={"Bucket": bucket, "Key": "link"})


def test_fifo_unreadable(s3, bucket, bucket_dir):
    os.mkfifo(bucket_dir / "pipe")
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="pipe")
    with s3_error(404):
        s3.head_object(Bucket=bucket, Key="pipe")


def test_multipart_complete_through_symlinked_directory(s3, bucket, bucket_dir, outside_dir):
    os.symlink(outside_dir, bucket_dir / "linkdir")
    try:
        uid = s3.create_multipart_upload(Bucket=bucket, Key="linkdir/mp")["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="linkdir/mp", UploadId=uid, PartNumber=1, Body=b"x")["ETag"]
        s3.complete_multipart_upload(Bucket=bucket, Key="linkdir/mp", UploadId=uid,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    except s3.exceptions.ClientError as e:
        assert 400 <= e.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert not (outside_dir / "mp").exists()
