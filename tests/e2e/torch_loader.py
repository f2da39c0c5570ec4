#!/usr/bin/env python3
"""PyTorch data loading against an S3 endpoint: the worker of test_pytorch.py.

Runs under the torch venv (scripts/install-torch-env.sh: Debian's torch, s3torchconnector,
s3fs), not the test venv, and does the real work in that process and its DataLoader workers;
it only reports what it read (keys, md5s, sizes) as JSON to --out, and the test compares that
with the manifest it made when uploading.

    torch_loader.py MODE --endpoint URL --bucket B [--prefix P] [--ca FILE] --out REPORT.json

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Region us-east-1, path-style
addressing. Modes:

  map         S3MapDataset.from_prefix: DataLoader(num_workers, shuffle=True), --epochs epochs
  iterable    S3IterableDataset.from_prefix(enable_sharding=True): DataLoader(num_workers)
  s3fs        a map-style Dataset over s3fs.S3FileSystem: DataLoader(num_workers, shuffle=True)
  checkpoint  S3Checkpoint writer/reader round trips of torch.save'd state dicts
  patterns    request patterns on --key (a large object): sequential and range-based
              s3torchconnector reads, paged and delimited listings, s3fs HEAD + GETs

TLS: the CRT client under s3torchconnector (aws-lc/s2n) ignores AWS_CA_BUNDLE; it trusts the
file named by SSL_CERT_FILE, which --ca sets before any client exists. s3fs gets verify=FILE.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

REGION = "us-east-1"


def md5(data) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Samples: each DataLoader item is (key, uint8 tensor of the object's bytes, worker id); the
# bytes travel from the worker process through the DataLoader's shared memory, as in training.
# ---------------------------------------------------------------------------------------------


def _worker_id() -> int:
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    return -1 if info is None else info.id


def _sample(key: str, data: bytes):
    import torch

    return key, torch.frombuffer(bytearray(data), dtype=torch.uint8), _worker_id()


def reader_to_sample(reader):
    """s3torchconnector transform: S3Reader -> sample (runs in the DataLoader worker)."""
    return _sample(reader.key, reader.read())


def run_epochs(loader, epochs: int) -> list:
    """Iterate the loader `epochs` times; per epoch, [key, md5, size, worker] in arrival order."""
    out = []
    for _ in range(epochs):
        seen = []
        for key, tensor, worker in loader:
            seen.append([key, md5(tensor.numpy().tobytes()), int(tensor.numel()), int(worker)])
        out.append(seen)
    return out


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------


def s3t_config():
    from s3torchconnector import S3ClientConfig

    # Path-style: the endpoint is an IP address and port, so no bucket.host names. Few retries,
    # so a failing request shows as an error rather than a long stall.
    return S3ClientConfig(force_path_style=True, max_attempts=2)


def s3fs_kwargs(args) -> dict:
    client = {"endpoint_url": args.endpoint, "region_name": REGION}
    if args.ca:
        client["verify"] = args.ca
    return {
        "client_kwargs": client,
        "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 2}},
        # A fresh instance, never fsspec's cached one: DataLoader workers are forked.
        "skip_instance_cache": True,
    }


class S3FSDataset:
    """Map-style dataset: item i is the object bucket/keys[i], read through s3fs.

    The S3FileSystem (an aiobotocore session and its event loop thread) is made lazily once
    per process, so each forked DataLoader worker has its own."""

    def __init__(self, bucket: str, keys: list, fs_kwargs: dict):
        self.bucket, self.keys, self.fs_kwargs = bucket, keys, fs_kwargs
        self._fs, self._pid = None, None

    def fs(self):
        import s3fs

        if self._pid != os.getpid():
            self._fs, self._pid = s3fs.S3FileSystem(**self.fs_kwargs), os.getpid()
        return self._fs

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        key = self.keys[i]
        with self.fs().open(f"{self.bucket}/{key}", "rb") as f:  # HEAD, then ranged GET(s)
            return _sample(key, f.read())


# ---------------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------------


def mode_map(args) -> dict:
    from torch.utils.data import DataLoader
    from s3torchconnector import S3MapDataset

    ds = S3MapDataset.from_prefix(f"s3://{args.bucket}/{args.prefix}", region=REGION,
                                  endpoint=args.endpoint, transform=reader_to_sample,
                                  s3client_config=s3t_config())
    # batch_size=None: one object per item (sizes differ, so no collation into batches).
    loader = DataLoader(ds, batch_size=None, shuffle=True, num_workers=args.workers)
    return {"len": len(ds), "epochs": run_epochs(loader, args.epochs)}


def mode_iterable(args) -> dict:
    from torch.utils.data import DataLoader
    from s3torchconnector import S3IterableDataset

    # enable_sharding: worker w of n takes every n-th listed object, so each object is read once
    # per epoch (without it, every worker yields the whole prefix).
    ds = S3IterableDataset.from_prefix(f"s3://{args.bucket}/{args.prefix}", region=REGION,
                                       endpoint=args.endpoint, transform=reader_to_sample,
                                       s3client_config=s3t_config(), enable_sharding=True)
    loader = DataLoader(ds, batch_size=None, num_workers=args.workers)
    return {"epochs": run_epochs(loader, args.epochs)}


def mode_s3fs(args) -> dict:
    import s3fs
    from torch.utils.data import DataLoader

    fs = s3fs.S3FileSystem(**s3fs_kwargs(args))
    # find: ListObjectsV2 without a delimiter, every key under the prefix.
    keys = sorted(p.split("/", 1)[1] for p in fs.find(f"{args.bucket}/{args.prefix}"))
    ds = S3FSDataset(args.bucket, keys, s3fs_kwargs(args))
    loader = DataLoader(ds, batch_size=None, shuffle=True, num_workers=args.workers)
    return {"len": len(ds), "epochs": run_epochs(loader, args.epochs)}


def mode_checkpoint(args) -> dict:
    import io

    import torch
    from s3torchconnector import S3Checkpoint

    ckpt = S3Checkpoint(region=REGION, endpoint=args.endpoint, s3client_config=s3t_config())
    torch.manual_seed(7)
    states = {
        # The example: a small state dict, one PutObject.
        "small": {"w": torch.randn(64, 64), "step": 7},
        # ~12 MiB, over the 8 MiB part size: the writer switches to a multipart upload.
        "large": {"w": torch.randn(1792, 1792), "b": torch.arange(1000), "step": 8,
                  "opt": {"lr": 0.1, "betas": (0.9, 0.999)}},
    }
    report = {}
    for name, state in states.items():
        uri = f"s3://{args.bucket}/{args.prefix}{name}.pt"
        with ckpt.writer(uri) as w:
            torch.save(state, w)
        with ckpt.reader(uri) as r:
            loaded = torch.load(r)
        local = io.BytesIO()
        torch.save(state, local)
        report[name] = {
            "key": f"{args.prefix}{name}.pt",
            "keys_equal": sorted(loaded) == sorted(state),
            "tensors_equal": all(torch.equal(loaded[k], v) for k, v in state.items()
                                 if isinstance(v, torch.Tensor)),
            "others_equal": all(loaded[k] == v for k, v in state.items()
                                if not isinstance(v, torch.Tensor)),
            "local_size": len(local.getvalue()),
        }
    return report


def mode_patterns(args) -> dict:
    import s3fs
    from s3torchconnector import S3MapDataset, S3ReaderConstructor
    from s3torchconnector._s3client import S3Client

    uri = f"s3://{args.bucket}/{args.key}"
    report: dict = {}

    # 1. Sequential reader (the default): the CRT splits the GET into part-size (8 MiB) ranged
    #    GETs; the parts after the first carry If-Match with the first part's ETag.
    def sequential():
        ds = S3MapDataset.from_objects(uri, region=REGION, endpoint=args.endpoint,
                                       s3client_config=s3t_config())
        data = ds[0].read()
        return {"size": len(data), "md5": md5(data)}

    report["sequential"] = sequential()

    # 2. Range-based reader, unbuffered: one ranged GET per read() at the seek position.
    #    Windows: the start, across the first part boundary, past the end, one over 8 MiB.
    def ranged():
        ds = S3MapDataset.from_objects(uri, region=REGION, endpoint=args.endpoint,
                                       s3client_config=s3t_config(),
                                       reader_constructor=S3ReaderConstructor.range_based(buffer_size=0))
        r = ds[0]
        out = []
        for off, n in json.loads(args.windows):
            r.seek(off)
            data = r.read(n)
            out.append([off, n, len(data), md5(data)])
        return out

    report["ranged"] = ranged()

    # 3. Listings through the CRT client: small pages (continuation tokens) with the empty
    #    delimiter it always sends, and a delimited listing of the bucket's top level.
    def listings():
        client = S3Client(REGION, endpoint=args.endpoint, s3client_config=s3t_config())
        pages = list(client.list_objects(args.bucket, args.prefix, "", 7))
        top = list(client.list_objects(args.bucket, "", "/", 1000))
        return {
            "page_sizes": [len(p.object_info) for p in pages],
            "keys": [o.key for p in pages for o in p.object_info],
            "top_prefixes": sorted(cp for p in top for cp in p.common_prefixes),
            "top_keys": sorted(o.key for p in top for o in p.object_info),
        }

    report["listings"] = listings()

    # 4. s3fs: info (HEAD), a whole-object cat (GET, checksum mode: botocore validates the
    #    returned checksum), a ranged cat, and a buffered read in 8 MiB blocks (HEAD + GETs).
    def with_s3fs():
        fs = s3fs.S3FileSystem(**s3fs_kwargs(args))
        path = f"{args.bucket}/{args.key}"
        info = fs.info(path)
        whole = fs.cat_file(path)
        part = fs.cat_file(path, start=5_000_000, end=5_000_100)
        with fs.open(path, "rb", block_size=8 * 1024 * 1024) as f:
            streamed = f.read()
        return {"info_size": info["size"], "info_etag": info.get("ETag"),
                "whole": md5(whole), "part": md5(part), "streamed": md5(streamed)}

    report["s3fs"] = with_s3fs()
    return report


MODES = {"map": mode_map, "iterable": mode_iterable, "s3fs": mode_s3fs,
         "checkpoint": mode_checkpoint, "patterns": mode_patterns}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--key", help="patterns: the large object")
    p.add_argument("--windows", default="[]", help="patterns: JSON [[offset, length], ...]")
    p.add_argument("--ca", help="CA bundle (PEM) for an https endpoint")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.ca:
        os.environ["SSL_CERT_FILE"] = args.ca
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if not os.environ.get(var):
            sys.exit(f"torch_loader: {var} is not set")
    t = time.monotonic()
    report = MODES[args.mode](args)
    report["seconds"] = time.monotonic() - t
    with open(args.out, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
