#!/usr/bin/env python3
"""Memory bound: peak RSS of the gateway (VmHWM) while N clients upload M MiB each at once,
then download them at once. The figure to compare is limits.buffer_bytes_max (default 256 MiB)
plus the process's fixed footprint; object sizes and concurrency should not move it.

    python bench/memory.py [--clients 64] [--mib 128] [--binary target/release/strait]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import time
from pathlib import Path

import boto3
from botocore.config import Config

import strait_server

AK, SK = "BENCHMEMORYACCESSKEY", "bench-memory-secret-0123456789abcdef"


status_kib = strait_server.status_kib


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(target, "release", "strait"))
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-memory"))
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "root").mkdir(parents=True)
    proc, url = strait_server.start(a.binary, work / "root", work / "strait.log", AK, SK)
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-east-1",
                      config=Config(max_pool_connections=a.clients, retries={"max_attempts": 1},
                                    s3={"addressing_style": "path"}, request_checksum_calculation="when_required"))
    s3.create_bucket(Bucket="mem")
    body = os.urandom(a.mib << 20)
    base = status_kib(proc.pid, "VmRSS")
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(a.clients) as ex:
        list(ex.map(lambda i: s3.put_object(Bucket="mem", Key=f"o{i}", Body=body), range(a.clients)))
        up = time.monotonic() - t0
        hwm_put = status_kib(proc.pid, "VmHWM")

        def get(i):
            r = s3.get_object(Bucket="mem", Key=f"o{i}")["Body"]
            n = 0
            while chunk := r.read(1 << 20):
                n += len(chunk)
            return n
        assert all(n == len(body) for n in ex.map(get, range(a.clients)))
    hwm = status_kib(proc.pid, "VmHWM")
    proc.terminate()
    proc.wait()
    shutil.rmtree(work, ignore_errors=True)
    total = a.clients * a.mib
    print(f"{a.clients} clients x {a.mib} MiB ({total} MiB): RSS at start {base / 1024:.0f} MiB, "
          f"peak after the uploads {hwm_put / 1024:.0f} MiB, peak after the downloads {hwm / 1024:.0f} MiB; "
          f"uploads took {up:.1f} s ({total / up:.0f} MiB/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
