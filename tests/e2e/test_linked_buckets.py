"""Linked buckets: `strait admin bucket link NAME PATH` serves an existing directory anywhere on
the file system as a bucket, without moving a byte; the directory stays the steward's."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from helpers import boto_client, error_of


def admin(s, *args) -> subprocess.CompletedProcess:
    return subprocess.run([s.binary, "admin", "bucket", *args, "--root", str(s.root), "--state-dir", str(s.state_dir)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def project(tmp_path):
    """A project directory as an HPC job left it, outside the gateway's root."""
    p = tmp_path / "lustre" / "proj" / "climate"
    (p / "runs" / "2026").mkdir(parents=True)
    (p / "runs" / "2026" / "t2m.nc").write_bytes(b"netcdf" * 1000)
    (p / "README").write_text("climate runs\n")
    (tmp_path / "lustre" / "proj" / "secret.txt").write_text("not in the bucket")
    return p


def test_link_serves_an_existing_directory_in_place(spawn_server, project, tmp_path):
    s = spawn_server()
    assert s.stop() == 0
    r = admin(s, "link", "climate", str(project))
    assert r.returncode == 0 and f"linked bucket climate -> {project}" in r.stdout, r.stdout + r.stderr
    assert admin(s, "list").stdout.split() == ["climate", str(project)]
    s = spawn_server(root=s.root, state_dir=s.state_dir)
    assert f"bucket climate is linked to {project}" in s.log_text()
    s3 = boto_client(s)

    assert "climate" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="climate")["Contents"]]
    assert keys == ["README", "runs/2026/t2m.nc"]
    assert s3.get_object(Bucket="climate", Key="runs/2026/t2m.nc")["Body"].read() == b"netcdf" * 1000

    # Writes land in the project directory itself; a key cannot climb out of it.
    put = s3.put_object(Bucket="climate", Key="runs/2027/new.nc", Body=b"fresh")
    assert put["ETag"] == f'"{hashlib.md5(b"fresh").hexdigest()}"'
    assert (project / "runs" / "2027" / "new.nc").read_bytes() == b"fresh"
    code, status = error_of(lambda: s3.get_object(Bucket="climate", Key="../secret.txt"))
    assert status in (400, 404) and code != "InternalError", code
    os.symlink(tmp_path / "lustre" / "proj" / "secret.txt", project / "escape")
    code, _ = error_of(lambda: s3.get_object(Bucket="climate", Key="escape"))
    assert code == "NoSuchKey"

    # Multipart uploads stage inside the linked directory and publish there.
    mpu = s3.create_multipart_upload(Bucket="climate", Key="big.bin")
    part = os.urandom(5 << 20)
    e1 = s3.upload_part(Bucket="climate", Key="big.bin", UploadId=mpu["UploadId"], PartNumber=1, Body=part)["ETag"]
    s3.complete_multipart_upload(Bucket="climate", Key="big.bin", UploadId=mpu["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert (project / "big.bin").read_bytes() == part

    # The bucket is the steward's: neither deleted nor re-created by S3 clients.
    code, _ = error_of(lambda: s3.delete_bucket(Bucket="climate"))
    assert code == "AccessDenied"
    code, _ = error_of(lambda: s3.create_bucket(Bucket="climate",
                                                 CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}))
    assert code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"), code
    assert project.is_dir()

    # Unlinking stops serving it and leaves every file in place.
    assert s.stop() == 0
    r = admin(s, "unlink", "climate")
    assert r.returncode == 0, r.stderr
    s = spawn_server(root=s.root, state_dir=s.state_dir)
    s3 = boto_client(s)
    assert "climate" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    code, _ = error_of(lambda: s3.head_bucket(Bucket="climate"))
    assert code in ("NoSuchBucket", "404"), code
    assert (project / "runs" / "2027" / "new.nc").read_bytes() == b"fresh"
    assert (project / "README").exists()


def test_link_refuses_bad_requests(spawn_server, project, tmp_path):
    s = spawn_server()
    boto_client(s).create_bucket(Bucket="taken")
    r = admin(s, "link", "other", str(project))
    assert r.returncode == 1 and "stop it first" in r.stderr, r  # the running gateway holds the store
    assert s.stop() == 0
    cases = [
        (("link", "Bad_Name", str(project)), "not a valid S3 bucket name"),
        (("link", "nowhere", str(tmp_path / "missing")), "No such file or directory"),
        (("link", "afile", str(project / "README")), "not a directory"),
        (("link", "taken", str(project)), "exists under the root"),
        (("link", "state", str(s.state_dir)), "overlaps the state directory"),
        (("unlink", "never"), "is not linked"),
    ]
    for args, message in cases:
        r = admin(s, *args)
        assert r.returncode == 1 and message in r.stderr, (args, r.stdout, r.stderr)
    assert admin(s, "link", "climate", str(project)).returncode == 0
    r = admin(s, "link", "climate", str(project))
    assert r.returncode == 1 and "already linked" in r.stderr


def test_link_and_unlink_online_through_the_admin_api(spawn_server, project):
    import json
    import urllib.request

    from test_operations import admin_url

    s = spawn_server(extra_args=("--admin-listen", "127.0.0.1:0"), extra_env={"STRAIT_ADMIN_TOKEN": "t0ken"})
    base = admin_url(s)
    s3 = boto_client(s)

    def call(method, path, body=None, token="t0ken"):
        req = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw.strip() else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    assert call("PUT", "/admin/buckets/climate", {"path": str(project)}, token=None)[0] == 401
    st, r = call("PUT", "/admin/buckets/climate", {"path": str(project)})
    assert st == 201 and r == {"name": "climate", "path": str(project)}
    # Served at once, without a restart.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="climate")["Contents"]] == ["README", "runs/2026/t2m.nc"]
    assert call("GET", "/admin/buckets")[1] == {"buckets": [{"name": "climate", "path": str(project)}]}
    st, r = call("PUT", "/admin/buckets/climate", {"path": str(project)})
    assert st == 400 and "already linked" in r["error"]
    st, r = call("PUT", "/admin/buckets/Bad_Name", {"path": str(project)})
    assert st == 400 and "not a valid S3 bucket name" in r["error"]
    assert call("PUT", "/admin/buckets/other", {"dir": "/x"})[0] == 400
    assert call("DELETE", "/admin/buckets/climate")[0] == 204
    code, _ = error_of(lambda: s3.list_objects_v2(Bucket="climate"))
    assert code == "NoSuchBucket"
    assert (project / "README").exists()
    assert call("DELETE", "/admin/buckets/climate")[0] == 404
