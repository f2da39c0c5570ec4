"""Files changed on disk behind the running server (the HPC job case): HEAD, GET and LIST see
exactly the current state of the tree.

test_objects.py covers a file created on disk (GET, ETag shape) and an S3 object rewritten on
disk with a different size; test_listing.py lists a tree created on disk. Here: the same-size
in-place edit, replacement by rename, deletion, and that HEAD, GET and LIST agree at each step.
"""

from __future__ import annotations

import os
import re

from helpers import checksum_b64, md5_hex, s3_error

FOREIGN_ETAG = re.compile(r'"[0-9a-f]{32}-\d+"')


def listed(s3, bucket, **kw) -> dict[str, dict]:
    out, token = {}, None
    while True:
        r = s3.list_objects_v2(Bucket=bucket, **kw, **({"ContinuationToken": token} if token else {}))
        for c in r.get("Contents", []):
            out[c["Key"]] = c
        if not r.get("IsTruncated"):
            return out
        token = r["NextContinuationToken"]


def state(s3, bucket, key) -> tuple[str, int, bytes]:
    """(ETag, size, body) as HEAD, GET and LIST report them; fails unless all three agree."""
    h = s3.head_object(Bucket=bucket, Key=key)
    g = s3.get_object(Bucket=bucket, Key=key)
    body = g["Body"].read()
    entry = listed(s3, bucket, Prefix=key).get(key)
    assert entry is not None, f"{key} not listed"
    assert h["ETag"] == g["ETag"] == entry["ETag"], (h["ETag"], g["ETag"], entry["ETag"])
    assert h["ContentLength"] == g["ContentLength"] == entry["Size"] == len(body)
    return h["ETag"], len(body), body


def rewrite_in_place(path, data: bytes) -> None:
    """Overwrite the file's bytes through the same inode (no truncate, same size) until its
    mtime differs from before: the file system's timestamp granularity is coarse."""
    before = os.stat(path)
    assert before.st_size == len(data)
    while True:
        with open(path, "r+b") as f:
            f.write(data)
        after = os.stat(path)
        if after.st_mtime_ns != before.st_mtime_ns:
            break
    assert after.st_ino == before.st_ino and after.st_size == before.st_size


def test_foreign_file_head_get_list_agree(s3, bucket, bucket_dir):
    assert listed(s3, bucket) == {}
    (bucket_dir / "job" / "out").mkdir(parents=True)
    (bucket_dir / "job" / "out" / "rank0.dat").write_bytes(b"rank zero output")
    etag, size, body = state(s3, bucket, "job/out/rank0.dat")
    assert body == b"rank zero output" and size == 16
    assert FOREIGN_ETAG.fullmatch(etag), etag
    # Stable while the file is unchanged.
    assert state(s3, bucket, "job/out/rank0.dat")[0] == etag
    assert list(listed(s3, bucket)) == ["job/out/rank0.dat"]


def test_foreign_in_place_edit_same_size(s3, bucket, bucket_dir):
    p = bucket_dir / "grid.bin"
    p.write_bytes(b"A" * 4096)
    etag1, _, _ = state(s3, bucket, "grid.bin")
    rewrite_in_place(p, b"B" * 4096)
    etag2, size, body = state(s3, bucket, "grid.bin")
    assert etag2 != etag1
    assert body == b"B" * 4096 and size == 4096
    with s3_error(412, "PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key="grid.bin", IfMatch=etag1)
    assert s3.get_object(Bucket=bucket, Key="grid.bin", IfNoneMatch=etag1)["Body"].read() == body


def test_s3_object_edited_in_place_drops_stale_metadata(s3, bucket, bucket_dir):
    """An S3 object edited in place by a job: the stored MD5 ETag and checksum describe old
    bytes and must not be served any more."""
    old = b"0123456789" * 100
    s3.put_object(Bucket=bucket, Key="ckpt", Body=old, ChecksumAlgorithm="CRC32")
    new = b"9876543210" * 100
    rewrite_in_place(bucket_dir / "ckpt", new)
    h = s3.head_object(Bucket=bucket, Key="ckpt", ChecksumMode="ENABLED")
    assert h["ETag"] != f'"{md5_hex(old)}"'
    assert h.get("ChecksumCRC32") in (None, checksum_b64("crc32", new)), h.get("ChecksumCRC32")
    etag, _, body = state(s3, bucket, "ckpt")
    assert body == new and etag == h["ETag"]


def test_foreign_replace_by_rename(s3, bucket, bucket_dir):
    """A job writes a temp file and renames it over an S3 object (new inode): the new bytes,
    a new ETag, and none of the old object's metadata."""
    put = s3.put_object(Bucket=bucket, Key="result.csv", Body=b"old,rows\n", ContentType="text/csv",
                        Metadata={"owner": "s3-client"})
    tmp = bucket_dir / "result.csv.tmp-job"
    tmp.write_bytes(b"new,rows,from,job\n")
    os.rename(tmp, bucket_dir / "result.csv")
    etag, size, body = state(s3, bucket, "result.csv")
    assert body == b"new,rows,from,job\n"
    assert etag != put["ETag"] and FOREIGN_ETAG.fullmatch(etag), etag
    h = s3.head_object(Bucket=bucket, Key="result.csv")
    assert h.get("Metadata", {}) == {}, h.get("Metadata")
    assert list(listed(s3, bucket)) == ["result.csv"]


def test_foreign_delete(s3, bucket, bucket_dir):
    s3.put_object(Bucket=bucket, Key="via-s3", Body=b"s3")
    (bucket_dir / "via-disk").write_bytes(b"disk")
    (bucket_dir / "keep").write_bytes(b"keep")
    assert set(listed(s3, bucket)) == {"via-s3", "via-disk", "keep"}
    os.unlink(bucket_dir / "via-s3")
    os.unlink(bucket_dir / "via-disk")
    for key in ("via-s3", "via-disk"):
        with s3_error(404):
            s3.head_object(Bucket=bucket, Key=key)
        with s3_error(404, "NoSuchKey"):
            s3.get_object(Bucket=bucket, Key=key)
    assert list(listed(s3, bucket)) == ["keep"]


def test_foreign_delete_leaves_no_prefix(s3, bucket, bucket_dir):
    """Deleting the only file of a directory on disk: the key is gone and the now-empty
    directory yields no common prefix."""
    s3.put_object(Bucket=bucket, Key="run1/log.txt", Body=b"log")
    (bucket_dir / "run2").mkdir()
    (bucket_dir / "run2" / "log.txt").write_bytes(b"log")
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["run1/", "run2/"]
    os.unlink(bucket_dir / "run1" / "log.txt")
    os.unlink(bucket_dir / "run2" / "log.txt")
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert r.get("CommonPrefixes", []) == [] and r.get("Contents", []) == [], r
    assert listed(s3, bucket) == {}
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="run2/log.txt")


def test_foreign_recreate_after_s3_delete(s3, bucket, bucket_dir):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"first")
    s3.delete_object(Bucket=bucket, Key="a/b")
    (bucket_dir / "a").mkdir(exist_ok=True)
    (bucket_dir / "a" / "b").write_bytes(b"second, from disk")
    etag, _, body = state(s3, bucket, "a/b")
    assert body == b"second, from disk" and FOREIGN_ETAG.fullmatch(etag)
