#!/usr/bin/env python3
"""Multipart vs single PUT of one object: seconds for a single PutObject of N MiB and for the
same bytes as a multipart upload in 16 MiB parts (4 parts in flight), interleaved, medians.
Client: boto3 (its CRC32 of every body is part of both figures).

    python bench/multipart.py [--mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

import strait_server

AK, SK = "BENCHMULTIPARTKEY001", "bench-multipart-secret-0123456789abc"


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(target, "release", "strait"))
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-multipart"))
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "root").mkdir(parents=True)
    proc, url = strait_server.start(a.binary, work / "root", work / "strait.log", AK, SK)
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=AK,
                      aws_secret_access_key=SK, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, max_pool_connections=8))
    s3.create_bucket(Bucket="bench-mp")
    src = work / "src.bin"
    with open(src, "wb") as f:
        for _ in range(a.mib):
            f.write(os.urandom(1 << 20))
    single = TransferConfig(multipart_threshold=1 << 40, use_threads=False)
    multi = TransferConfig(multipart_threshold=16 << 20, multipart_chunksize=16 << 20, max_concurrency=4)
    times: dict = {"single PUT": [], "multipart 16 MiB parts": []}
    try:
        for _ in range(a.rounds):
            for name, cfg in (("single PUT", single), ("multipart 16 MiB parts", multi)):
                t0 = time.monotonic()
                s3.upload_file(str(src), "bench-mp", "obj", Config=cfg)
                times[name].append(time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    gib = a.mib / 1024
    for k, v in med.items():
        print(f"{k}: {v:.2f} s ({gib / v:.2f} GiB/s)  runs: {', '.join(f'{x:.2f}' for x in times[k])}")
    print(f"multipart / single throughput: {med['single PUT'] / med['multipart 16 MiB parts']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
