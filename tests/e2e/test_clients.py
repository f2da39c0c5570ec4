"""Real clients against the gateway: aws-cli (s3 and s3api), boto3 transfers, s3fs/fsspec, rclone.

A missing client fails its test (see helpers.require_tool); nothing is skipped."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import MIB, boto_client, require_tool, unique

TREE_FILES = {
    "plain.txt": b"plain",
    "empty.txt": b"",
    "with space/file one.txt": b"spaces",
    "plus+dir/a+b.txt": b"plus",
    "pct%dir/100%.txt": b"percent",
    "ünï/日本語/ファイル.txt": "unicode ✓".encode(),
    "emoji 😀.txt": b"emoji",
    "deep/a/b/c/d/e/f/g/h/leaf.bin": os.urandom(3000),
    "amp&semi;/q=1,x.txt": b"punct",
}
BIG_NAME = "big/large file.bin"


@pytest.fixture(scope="module")
def big_blob():
    return os.urandom(12 * MIB)


def make_tree(root: Path, big: bytes | None = None) -> dict[str, bytes]:
    files = dict(TREE_FILES)
    if big is not None:
        files[BIG_NAME] = big
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def remote_tree(s3, bucket, prefix="") -> dict[str, bytes]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix):]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def digest(tree: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in tree.items()}


def run(args, env, timeout=600, check=True, cwd=None):
    p = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)
    if check:
        assert p.returncode == 0, (f"{args[0]} exited {p.returncode}\n$ {' '.join(map(str, args))}\n"
                                   f"--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-3000:]}")
    return p


# --- aws-cli ---------------------------------------------------------------------------------


@pytest.fixture
def aws(server, cli_env):
    exe = require_tool("aws")

    def call(*args, check=True, tls=None):
        base = [exe, "--endpoint-url", (tls or server).url]
        if tls is not None:
            base += ["--ca-bundle", str(tls.ca)]
        return run(base + list(args), cli_env, check=check)

    return call


def test_awscli_mb_ls_rb(aws, s3):
    name = unique("cli-mb")
    aws("s3", "mb", f"s3://{name}")
    assert name in aws("s3", "ls").stdout
    aws("s3", "rb", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_awscli_rb_not_empty_fails(aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    p = aws("s3", "rb", f"s3://{bucket}", check=False)
    assert p.returncode != 0
    assert "BucketNotEmpty" in p.stderr


def test_awscli_cp_single_file(aws, s3, bucket, tmp_path):
    src = tmp_path / "in file+1.txt"
    src.write_bytes(b"hello from aws-cli")
    aws("s3", "cp", src, f"s3://{bucket}/dir/in file+1.txt")
    assert s3.get_object(Bucket=bucket, Key="dir/in file+1.txt")["Body"].read() == b"hello from aws-cli"
    out = tmp_path / "out.txt"
    aws("s3", "cp", f"s3://{bucket}/dir/in file+1.txt", out)
    assert out.read_bytes() == b"hello from aws-cli"


def test_awscli_cp_recursive_tree(aws, s3, bucket, tmp_path, big_blob):
    files = make_tree(tmp_path / "src", big_blob)
    aws("s3", "cp", "--recursive", tmp_path / "src", f"s3://{bucket}/tree/")
    assert digest(remote_tree(s3, bucket, "tree/")) == digest(files)
    aws("s3", "cp", "--recursive", f"s3://{bucket}/tree/", tmp_path / "back")
    assert digest(read_tree(tmp_path / "back")) == digest(files)


def test_awscli_multipart_etag(aws, s3, bucket, tmp_path, big_blob):
    (tmp_path / "big.bin").write_bytes(big_blob)
    aws("s3", "cp", tmp_path / "big.bin", f"s3://{bucket}/big.bin")
    h = s3.head_object(Bucket=bucket, Key="big.bin")
    assert h["ETag"].endswith('-3"'), h["ETag"]  # 12 MiB in 5 MiB parts
    assert h["ContentLength"] == len(big_blob)


def test_awscli_sync_roundtrip(aws, s3, bucket, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    aws("s3", "sync", src, f"s3://{bucket}/sync")
    assert digest(remote_tree(s3, bucket, "sync/")) == digest(files)
    # Nothing changed: nothing to do.
    assert aws("s3", "sync", src, f"s3://{bucket}/sync").stdout.strip() == ""
    (src / "plain.txt").write_bytes(b"changed and longer")
    (src / "new dir").mkdir()
    (src / "new dir" / "new+file.txt").write_bytes(b"new")
    (src / "empty.txt").unlink()
    aws("s3", "sync", "--delete", src, f"s3://{bucket}/sync")
    assert digest(remote_tree(s3, bucket, "sync/")) == digest(read_tree(src))
    aws("s3", "sync", f"s3://{bucket}/sync", tmp_path / "down")
    assert digest(read_tree(tmp_path / "down")) == digest(read_tree(src))


def test_awscli_ls_recursive(aws, s3, bucket, tmp_path):
    files = make_tree(tmp_path / "src")
    aws("s3", "cp", "--recursive", tmp_path / "src", f"s3://{bucket}/t/")
    out = aws("s3", "ls", "--recursive", f"s3://{bucket}/t/").stdout
    for rel in files:
        assert f"t/{rel}" in out, (rel, out)
    top = aws("s3", "ls", f"s3://{bucket}/t/").stdout
    assert "PRE with space/" in top and "plain.txt" in top


def test_awscli_rm_recursive(aws, s3, bucket, tmp_path):
    make_tree(tmp_path / "src")
    aws("s3", "cp", "--recursive", tmp_path / "src", f"s3://{bucket}/r/")
    aws("s3", "rm", "--recursive", f"s3://{bucket}/r/")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    aws("s3", "rb", f"s3://{bucket}")


def test_awscli_s3api_objects(aws, bucket, tmp_path):
    body = tmp_path / "b.txt"
    body.write_bytes(b"s3api body")
    put = json.loads(aws("s3api", "put-object", "--bucket", bucket, "--key", "ünï key",
                         "--body", body, "--metadata", "a=1", "--content-type", "text/plain").stdout)
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "ünï key").stdout)
    assert head["ETag"] == put["ETag"] and head["ContentLength"] == 10
    assert head["Metadata"] == {"a": "1"} and head["ContentType"] == "text/plain"
    aws("s3api", "get-object", "--bucket", bucket, "--key", "ünï key", tmp_path / "o.txt")
    assert (tmp_path / "o.txt").read_bytes() == b"s3api body"
    listing = json.loads(aws("s3api", "list-objects-v2", "--bucket", bucket).stdout)
    assert [o["Key"] for o in listing["Contents"]] == ["ünï key"]
    p = aws("s3api", "head-object", "--bucket", bucket, "--key", "absent", check=False)
    assert p.returncode != 0 and "404" in p.stderr


def test_awscli_s3api_multipart(aws, s3, bucket, tmp_path, big_blob):
    p1, p2 = big_blob[:5 * MIB], big_blob[5 * MIB:5 * MIB + 777]
    (tmp_path / "p1").write_bytes(p1)
    (tmp_path / "p2").write_bytes(p2)
    key = "dir with space/mp+1.bin"
    uid = json.loads(aws("s3api", "create-multipart-upload", "--bucket", bucket, "--key", key).stdout)["UploadId"]
    parts = []
    for n, f in ((1, "p1"), (2, "p2")):
        r = json.loads(aws("s3api", "upload-part", "--bucket", bucket, "--key", key, "--upload-id", uid,
                           "--part-number", str(n), "--body", tmp_path / f).stdout)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = json.loads(aws("s3api", "list-parts", "--bucket", bucket, "--key", key, "--upload-id", uid).stdout)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    (tmp_path / "parts.json").write_text(json.dumps({"Parts": parts}))
    aws("s3api", "complete-multipart-upload", "--bucket", bucket, "--key", key, "--upload-id", uid,
        "--multipart-upload", f"file://{tmp_path / 'parts.json'}")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == p1 + p2


def test_awscli_over_tls(aws, tls_server, s3_tls, tls_bucket, tmp_path, big_blob):
    files = make_tree(tmp_path / "src", big_blob)
    aws("s3", "cp", "--recursive", tmp_path / "src", f"s3://{tls_bucket}/", tls=tls_server)
    assert digest(remote_tree(s3_tls, tls_bucket)) == digest(files)
    aws("s3", "sync", f"s3://{tls_bucket}/", tmp_path / "back", tls=tls_server)
    assert digest(read_tree(tmp_path / "back")) == digest(files)


# --- boto3 managed transfers -----------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_boto3_upload_download_file_multipart(request, tmp_path, tls):
    from boto3.s3.transfer import TransferConfig

    srv = request.getfixturevalue("tls_server" if tls else "server")
    s3 = boto_client(srv)
    bucket = unique("xfer")
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(17 * MIB)
    (tmp_path / "in.bin").write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
    s3.upload_file(str(tmp_path / "in.bin"), bucket, "dir/big file.bin", Config=cfg)
    h = s3.head_object(Bucket=bucket, Key="dir/big file.bin")
    assert h["ETag"].endswith('-4"'), h["ETag"]
    s3.download_file(bucket, "dir/big file.bin", str(tmp_path / "out.bin"), Config=cfg)
    assert hashlib.sha256((tmp_path / "out.bin").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_boto3_upload_fileobj_small(s3, bucket):
    import io

    s3.upload_fileobj(io.BytesIO(b"small fileobj"), bucket, "small")
    buf = io.BytesIO()
    s3.download_fileobj(bucket, "small", buf)
    assert buf.getvalue() == b"small fileobj"


# --- s3fs / fsspec ---------------------------------------------------------------------------


def s3fs_options(srv):
    client_kwargs = {"endpoint_url": srv.url, "region_name": "us-east-1"}
    if srv.ca:
        client_kwargs["verify"] = str(srv.ca)
    return {"key": srv.access_key, "secret": srv.secret_key, "client_kwargs": client_kwargs,
            "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
            "skip_instance_cache": True, "use_listings_cache": False}


def test_s3fs_read_write_ls(server, bucket):
    import s3fs

    fs = s3fs.S3FileSystem(**s3fs_options(server))
    fs.pipe(f"{bucket}/dir/a.txt", b"alpha")
    fs.pipe(f"{bucket}/dir/sub/b.txt", b"beta")
    fs.pipe(f"{bucket}/top with space.txt", b"top")
    assert fs.cat(f"{bucket}/dir/a.txt") == b"alpha"
    assert sorted(fs.ls(f"{bucket}/dir", detail=False)) == [f"{bucket}/dir/a.txt", f"{bucket}/dir/sub"]
    assert sorted(fs.find(bucket)) == sorted([f"{bucket}/dir/a.txt", f"{bucket}/dir/sub/b.txt",
                                              f"{bucket}/top with space.txt"])
    info = fs.info(f"{bucket}/dir/a.txt")
    assert info["size"] == 5 and info["type"] == "file"
    assert fs.isdir(f"{bucket}/dir/sub")
    with fs.open(f"{bucket}/dir/a.txt", "rb") as f:
        f.seek(2)
        assert f.read(2) == b"ph"
    fs.rm(f"{bucket}/dir", recursive=True)
    assert fs.find(bucket) == [f"{bucket}/top with space.txt"]


def test_s3fs_large_write_multipart(server, s3, bucket):
    import s3fs

    fs = s3fs.S3FileSystem(**s3fs_options(server))
    data = os.urandom(11 * MIB + 5)
    with fs.open(f"{bucket}/large.bin", "wb", block_size=5 * MIB) as f:
        for i in range(0, len(data), MIB):
            f.write(data[i:i + MIB])
    assert s3.head_object(Bucket=bucket, Key="large.bin")["ETag"].endswith('-3"')
    assert hashlib.sha256(fs.cat(f"{bucket}/large.bin")).digest() == hashlib.sha256(data).digest()


def test_s3fs_over_tls(tls_server, tls_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(**s3fs_options(tls_server))
    fs.pipe(f"{tls_bucket}/k", b"over tls")
    assert fs.cat(f"{tls_bucket}/k") == b"over tls"


def test_fsspec_open_put_get(server, bucket, tmp_path):
    import fsspec

    opts = s3fs_options(server)
    with fsspec.open(f"s3://{bucket}/via fsspec.txt", "w", **opts) as f:
        f.write("written through fsspec ✓")
    with fsspec.open(f"s3://{bucket}/via fsspec.txt", "r", **opts) as f:
        assert f.read() == "written through fsspec ✓"
    files = make_tree(tmp_path / "src")
    fs = fsspec.filesystem("s3", **opts)
    fs.put(str(tmp_path / "src") + "/", f"{bucket}/tree/", recursive=True)
    fs.get(f"{bucket}/tree/", str(tmp_path / "back") + "/", recursive=True)
    got = read_tree(tmp_path / "back")
    assert digest(got) == digest(files)


# --- rclone ----------------------------------------------------------------------------------


@pytest.fixture
def rclone(server, tmp_path):
    exe = require_tool("rclone")
    conf = tmp_path / "rclone.conf"
    conf.write_text("")

    def env_for(srv):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
        env.update({
            "RCLONE_CONFIG": str(conf),
            "RCLONE_CONFIG_STRAIT_TYPE": "s3",
            "RCLONE_CONFIG_STRAIT_PROVIDER": "Other",
            "RCLONE_CONFIG_STRAIT_ACCESS_KEY_ID": srv.access_key,
            "RCLONE_CONFIG_STRAIT_SECRET_ACCESS_KEY": srv.secret_key,
            "RCLONE_CONFIG_STRAIT_ENDPOINT": srv.url,
            "RCLONE_CONFIG_STRAIT_REGION": "us-east-1",
            "RCLONE_CONFIG_STRAIT_FORCE_PATH_STYLE": "true",
        })
        return env

    def call(*args, check=True, tls=None):
        srv = tls or server
        extra = ["--retries", "1", "--low-level-retries", "1", "--s3-force-path-style",
                 "--s3-upload-cutoff", "5Mi", "--s3-chunk-size", "5Mi"]
        if tls is not None:
            extra += ["--ca-cert", str(tls.ca)]
        return run([exe] + list(args) + extra, env_for(srv), check=check)

    return call


def test_rclone_copy_check(rclone, s3, bucket, tmp_path, big_blob):
    files = make_tree(tmp_path / "src", big_blob)
    rclone("copy", tmp_path / "src", f"strait:{bucket}/tree")
    rclone("check", tmp_path / "src", f"strait:{bucket}/tree")
    rclone("check", "--download", tmp_path / "src", f"strait:{bucket}/tree")
    assert digest(remote_tree(s3, bucket, "tree/")) == digest(files)
    listed = rclone("lsf", "-R", "--files-only", f"strait:{bucket}/tree").stdout.splitlines()
    assert sorted(listed) == sorted(files)


def test_rclone_sync(rclone, s3, bucket, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    rclone("sync", src, f"strait:{bucket}/s")
    (src / "plain.txt").write_bytes(b"modified content")
    (src / "with space" / "file one.txt").unlink()
    (src / "added+1.txt").write_bytes(b"added")
    rclone("sync", src, f"strait:{bucket}/s")
    rclone("check", src, f"strait:{bucket}/s")
    assert digest(remote_tree(s3, bucket, "s/")) == digest(read_tree(src))
    rclone("copy", f"strait:{bucket}/s", tmp_path / "down")
    assert digest(read_tree(tmp_path / "down")) == digest(read_tree(src))


def test_rclone_check_detects_difference(rclone, s3, bucket, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    rclone("copy", src, f"strait:{bucket}/c")
    s3.put_object(Bucket=bucket, Key="c/plain.txt", Body=b"different")
    p = rclone("check", src, f"strait:{bucket}/c", check=False)
    assert p.returncode != 0


def test_rclone_mkdir_rmdir_bucket(rclone, s3):
    name = unique("rclone-mk")
    rclone("mkdir", f"strait:{name}")
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    rclone("rmdir", f"strait:{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_rclone_over_tls(rclone, tls_server, s3_tls, tls_bucket, tmp_path, big_blob):
    files = make_tree(tmp_path / "src", big_blob)
    rclone("copy", tmp_path / "src", f"strait:{tls_bucket}/t", tls=tls_server)
    rclone("check", tmp_path / "src", f"strait:{tls_bucket}/t", tls=tls_server)
    assert digest(remote_tree(s3_tls, tls_bucket, "t/")) == digest(files)
