"""The client matrix: each client's basic scenarios (put, get, list, delete, multipart) against
the target, verified through boto3. aws-cli, boto3, s3fs, rclone, minio (Python SDK), s3cmd.
(object_store, the Rust crate, is the lead's test; matrix.py reads its result file.)"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conflib import MIB, blob, get_body, keys_of, put

CLIENTS = ["aws-cli", "boto3", "s3fs", "rclone", "minio", "s3cmd"]
SCENARIOS = ["put", "get", "list", "delete", "multipart"]
BIG = 11 * MIB + 17  # three 5 MiB parts


def tool(name: str) -> str:
    p = Path(sys.executable).parent / name
    if p.exists():
        return str(p)
    pytest.fail(f"client {name!r} not installed in the venv (tests/requirements.txt)", pytrace=False)


def run(args, env, cwd=None):
    p = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    assert p.returncode == 0, (f"{args[0]} exited {p.returncode}\n$ {' '.join(map(str, args))}\n"
                               f"--- stdout ---\n{p.stdout[-2000:]}\n--- stderr ---\n{p.stderr[-2000:]}")
    return p.stdout


class Driver:
    """One client's way of doing each scenario step."""

    def __init__(self, target, env, tmp: Path):
        self.target, self.env, self.tmp = target, env, tmp
        self.srv = target.server

    def file(self, data: bytes, name="in.bin") -> Path:
        p = self.tmp / name
        p.write_bytes(data)
        return p


class AwsCli(Driver):
    def cmd(self, *args):
        base = [tool("aws"), "--endpoint-url", self.srv.url]
        if self.srv.ca:
            base += ["--ca-bundle", str(self.srv.ca)]
        return run(base + list(args), self.env)

    def put(self, b, k, data):
        self.cmd("s3", "cp", self.file(data), f"s3://{b}/{k}")

    def get(self, b, k):
        out = self.tmp / "out.bin"
        self.cmd("s3", "cp", f"s3://{b}/{k}", out)
        return out.read_bytes()

    def list(self, b, prefix):
        out = self.cmd("s3", "ls", "--recursive", f"s3://{b}/{prefix}")
        return sorted(line.split(None, 3)[3] for line in out.splitlines() if line.strip())

    def delete(self, b, k):
        self.cmd("s3", "rm", f"s3://{b}/{k}")


class Boto3(Driver):
    def __init__(self, *a):
        super().__init__(*a)
        self.c = self.target.client()

    def put(self, b, k, data):
        if len(data) > 5 * MIB:
            from boto3.s3.transfer import TransferConfig
            cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
            self.c.upload_file(str(self.file(data)), b, k, Config=cfg)
        else:
            self.c.upload_fileobj(io.BytesIO(data), b, k)

    def get(self, b, k):
        buf = io.BytesIO()
        self.c.download_fileobj(b, k, buf)
        return buf.getvalue()

    def list(self, b, prefix):
        pages = self.c.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def delete(self, b, k):
        self.c.delete_object(Bucket=b, Key=k)


class S3fs(Driver):
    def __init__(self, *a):
        super().__init__(*a)
        import s3fs

        ck = {"endpoint_url": self.srv.url, "region_name": "us-east-1"}
        if self.srv.ca:
            ck["verify"] = str(self.srv.ca)
        self.fs = s3fs.S3FileSystem(key=self.srv.access_key, secret=self.srv.secret_key, client_kwargs=ck,
                                    config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
                                    skip_instance_cache=True, use_listings_cache=False)

    def put(self, b, k, data):
        with self.fs.open(f"{b}/{k}", "wb", block_size=5 * MIB) as f:
            for i in range(0, len(data), MIB):
                f.write(data[i:i + MIB])

    def get(self, b, k):
        return self.fs.cat(f"{b}/{k}")

    def list(self, b, prefix):
        return sorted(p[len(b) + 1:] for p in self.fs.find(f"{b}/{prefix}"))

    def delete(self, b, k):
        self.fs.rm(f"{b}/{k}")


class Rclone(Driver):
    def cmd(self, *args):
        env = {k: v for k, v in self.env.items() if not k.startswith(("RCLONE_", "AWS_"))}
        env.update({
            "RCLONE_CONFIG": str(self.tmp / "rclone.conf"),
            "RCLONE_CONFIG_T_TYPE": "s3", "RCLONE_CONFIG_T_PROVIDER": "Other",
            "RCLONE_CONFIG_T_ACCESS_KEY_ID": self.srv.access_key,
            "RCLONE_CONFIG_T_SECRET_ACCESS_KEY": self.srv.secret_key,
            "RCLONE_CONFIG_T_ENDPOINT": self.srv.url, "RCLONE_CONFIG_T_REGION": "us-east-1",
            "RCLONE_CONFIG_T_FORCE_PATH_STYLE": "true",
        })
        (self.tmp / "rclone.conf").touch()
        extra = ["--retries", "1", "--low-level-retries", "1", "--s3-upload-cutoff", "5Mi", "--s3-chunk-size", "5Mi"]
        if self.srv.ca:
            extra += ["--ca-cert", str(self.srv.ca)]
        return run([tool("rclone")] + list(args) + extra, env)

    def put(self, b, k, data):
        self.cmd("copyto", self.file(data), f"t:{b}/{k}")

    def get(self, b, k):
        out = self.tmp / "out.bin"
        self.cmd("copyto", f"t:{b}/{k}", out)
        return out.read_bytes()

    def list(self, b, prefix):
        out = self.cmd("lsf", "-R", "--files-only", f"t:{b}/{prefix}")
        return sorted(prefix + line for line in out.splitlines() if line)

    def delete(self, b, k):
        self.cmd("deletefile", f"t:{b}/{k}")


class MinioSdk(Driver):
    def __init__(self, *a):
        super().__init__(*a)
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(ca_certs=str(self.srv.ca)) if self.srv.ca else None
        self.c = Minio(f"{self.srv.host}:{self.srv.port}", access_key=self.srv.access_key,
                       secret_key=self.srv.secret_key, secure=self.srv.scheme == "https",
                       region="us-east-1", http_client=http)

    def put(self, b, k, data):
        if len(data) > 5 * MIB:
            self.c.fput_object(b, k, str(self.file(data)), part_size=5 * MIB)
        else:
            self.c.put_object(b, k, io.BytesIO(data), len(data))

    def get(self, b, k):
        r = self.c.get_object(b, k)
        try:
            return r.read()
        finally:
            r.close()
            r.release_conn()

    def list(self, b, prefix):
        return sorted(o.object_name for o in self.c.list_objects(b, prefix=prefix, recursive=True))

    def delete(self, b, k):
        self.c.remove_object(b, k)


class S3cmd(Driver):
    def cfg(self) -> Path:
        p = self.tmp / "s3cmd.cfg"
        hostport = f"{self.srv.host}:{self.srv.port}"
        lines = [
            "[default]",
            f"access_key = {self.srv.access_key}",
            f"secret_key = {self.srv.secret_key}",
            f"host_base = {hostport}",
            f"host_bucket = {hostport}",
            "bucket_location = us-east-1",
            f"use_https = {'True' if self.srv.scheme == 'https' else 'False'}",
            "check_ssl_certificate = True",
            f"ca_certs_file = {self.srv.ca or ''}",
            "signature_v2 = False",
            "multipart_chunk_size_mb = 5",
            "progress_meter = False",
        ]
        p.write_text("\n".join(lines) + "\n")
        return p

    def cmd(self, *args):
        return run([sys.executable, tool("s3cmd"), "-c", self.cfg()] + list(args), self.env)

    def put(self, b, k, data):
        self.cmd("put", self.file(data), f"s3://{b}/{k}")

    def get(self, b, k):
        out = self.tmp / "out.bin"
        self.cmd("get", "--force", f"s3://{b}/{k}", out)
        return out.read_bytes()

    def list(self, b, prefix):
        out = self.cmd("ls", "--recursive", f"s3://{b}/{prefix}")
        pre = f"s3://{b}/"
        return sorted(line.split(pre, 1)[1] for line in out.splitlines() if pre in line)

    def delete(self, b, k):
        self.cmd("del", f"s3://{b}/{k}")


DRIVERS = {"aws-cli": AwsCli, "boto3": Boto3, "s3fs": S3fs, "rclone": Rclone, "minio": MinioSdk, "s3cmd": S3cmd}
KEY = "dir with space/obj+1.txt"


def scenario_put(d, s3, b):
    d.put(b, KEY, b"hello client")
    assert get_body(s3, b, KEY) == b"hello client"


def scenario_get(d, s3, b):
    data = blob(70_000, seed=1)
    put(s3, b, KEY, data)
    assert d.get(b, KEY) == data


def scenario_list(d, s3, b):
    keys = ["l/a.txt", "l/sub dir/b+c.txt", "l/ü.txt", "other"]
    for k in keys:
        put(s3, b, k, b"x")
    assert d.list(b, "l/") == sorted(keys[:3])


def scenario_delete(d, s3, b):
    put(s3, b, KEY, b"bye")
    put(s3, b, "keep", b"stay")
    d.delete(b, KEY)
    assert keys_of(s3.list_objects_v2(Bucket=b)) == ["keep"]


def scenario_multipart(d, s3, b):
    data = blob(BIG, seed=2)
    d.put(b, "big/file.bin", data)
    h = s3.head_object(Bucket=b, Key="big/file.bin")
    assert h["ContentLength"] == BIG
    assert h["ETag"].endswith('-3"'), h["ETag"]
    assert d.get(b, "big/file.bin") == data


SCENARIO_FUNCS = {"put": scenario_put, "get": scenario_get, "list": scenario_list,
                  "delete": scenario_delete, "multipart": scenario_multipart}

CASES = [pytest.param(c, s, marks=[pytest.mark.client(c, s), pytest.mark.ops()], id=f"{c}-{s}")
         for c in CLIENTS for s in SCENARIOS]


@pytest.mark.parametrize("client,scenario", CASES)
def test_client_scenario(target, s3, bucket, cli_env, tmp_path, client, scenario):
    d = DRIVERS[client](target, dict(cli_env), tmp_path)
    SCENARIO_FUNCS[scenario](d, s3, bucket)
