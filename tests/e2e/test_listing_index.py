"""The listing index (connectors/src/index.rs): trusted directory snapshots serve pages without
reading directories, and every change — through Strait or directly on the file system — shows
in the next listing. Directories changed within the last 2 s are never trusted, so each test
waits that long before it expects snapshots to be used."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from helpers import boto_client
from test_durability import Ledger, Version, run_load, verify_after_restart
from test_operations import admin_url, fetch

SETTLE = 2.2  # > connectors::index::RACY_NS


def dir_counts(server) -> dict[str, int]:
    status, text = fetch(admin_url(server) + "/metrics")
    assert status == 200
    out = {}
    for m in re.finditer(r'^strait_listing_directories_total\{source="(\w+)"\} (\d+)', text, re.M):
        out[m.group(1)] = int(m.group(2))
    return {"readdir": out.get("readdir", 0), "index": out.get("index", 0)}


def list_all(s3, bucket, **kw) -> list[dict]:
    out, token = [], None
    while True:
        r = s3.list_objects_v2(Bucket=bucket, **kw, **({"ContinuationToken": token} if token else {}))
        out += r.get("Contents", [])
        if not r["IsTruncated"]:
            return out
        token = r["NextContinuationToken"]


def put_many(s3, bucket, keys, body=b"v"):
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), keys))


@pytest.fixture
def indexed(spawn_server):
    s = spawn_server(extra_args=("--admin-listen", "127.0.0.1:0"))
    return s, boto_client(s)


def test_trusted_snapshots_serve_pages_without_reading_directories(indexed):
    s, s3 = indexed
    s3.create_bucket(Bucket="ixflat")
    keys = sorted([f"flat/{i:04d}" for i in range(1500)] + [f"tree/d{i}/k" for i in range(30)])
    put_many(s3, "ixflat", keys)
    time.sleep(SETTLE)
    assert [o["Key"] for o in list_all(s3, "ixflat")] == keys  # reads each directory once, stamps it
    before = dir_counts(s)
    assert [o["Key"] for o in list_all(s3, "ixflat")] == keys
    prefixes = s3.list_objects_v2(Bucket="ixflat", Prefix="tree/", Delimiter="/")["CommonPrefixes"]
    assert [p["Prefix"] for p in prefixes] == sorted(f"tree/d{i}/" for i in range(30))
    after = dir_counts(s)
    assert after["readdir"] == before["readdir"], (before, after)
    assert after["index"] > before["index"], (before, after)


def test_external_changes_show_in_the_next_listing(indexed):
    s, s3 = indexed
    s3.create_bucket(Bucket="ixext")
    root = s.root / "ixext"
    keys = [f"flat/{i:04d}" for i in range(1200)] + ["tree/a/one", "tree/a/two", "tree/keep"]
    put_many(s3, "ixext", keys)
    time.sleep(SETTLE)
    first = {o["Key"]: o for o in list_all(s3, "ixext")}
    assert sorted(first) == sorted(keys)

    # Directly on the file system, as a job would: create, delete, rename a directory,
    # overwrite a file in place (same inode, same directory entry).
    (root / "flat" / "9999-new").write_bytes(b"made by a job")
    (root / "flat" / "0005").unlink()
    os.rename(root / "tree" / "a", root / "tree" / "b")
    target = root / "flat" / "0010"
    ino = target.stat().st_ino
    with open(target, "r+b") as f:
        f.write(b"rewritten in place, longer")
    assert target.stat().st_ino == ino

    got = {o["Key"]: o for o in list_all(s3, "ixext")}
    want = (set(keys) - {"flat/0005", "tree/a/one", "tree/a/two"}) | {"flat/9999-new", "tree/b/one", "tree/b/two"}
    assert set(got) == want
    assert got["flat/9999-new"]["Size"] == len(b"made by a job")
    assert got["flat/0010"]["Size"] == len(b"rewritten in place, longer")
    assert got["flat/0010"]["ETag"] != first["flat/0010"]["ETag"]
    assert got["flat/0011"]["ETag"] == first["flat/0011"]["ETag"] == f'"{hashlib.md5(b"v").hexdigest()}"'

    # Through Strait: overwrite and delete in a directory whose snapshot is trusted again.
    time.sleep(SETTLE)
    list_all(s3, "ixext")
    s3.put_object(Bucket="ixext", Key="flat/0020", Body=b"new body")
    s3.delete_object(Bucket="ixext", Key="flat/0021")
    got = {o["Key"]: o for o in list_all(s3, "ixext")}
    assert "flat/0021" not in got and got["flat/0020"]["Size"] == len(b"new body")
    assert got["flat/0020"]["ETag"] == f'"{hashlib.md5(b"new body").hexdigest()}"'


def test_same_size_in_place_overwrite_in_a_trusted_directory(indexed):
    """The directory does not change, the size does not change: the file's own mtime tells."""
    s, s3 = indexed
    s3.create_bucket(Bucket="ixsame")
    s3.put_object(Bucket="ixsame", Key="d/k", Body=b"aaaa")
    time.sleep(SETTLE)
    etag = list_all(s3, "ixsame")[0]["ETag"]
    before = dir_counts(s)
    assert list_all(s3, "ixsame")[0]["ETag"] == etag
    assert dir_counts(s)["readdir"] == before["readdir"]  # served from the snapshot
    p = s.root / "ixsame" / "d" / "k"
    with open(p, "r+b") as f:
        f.write(b"bbbb")
    listed = list_all(s3, "ixsame")[0]
    head = s3.head_object(Bucket="ixsame", Key="d/k")
    assert listed["ETag"] == head["ETag"] != etag
    assert listed["Size"] == 4
    assert s3.get_object(Bucket="ixsame", Key="d/k")["Body"].read() == b"bbbb"


def test_bucket_recreated_with_the_same_name_lists_only_its_own_keys(indexed):
    s, s3 = indexed
    s3.create_bucket(Bucket="ixrec")
    put_many(s3, "ixrec", [f"a/{i}" for i in range(20)])
    time.sleep(SETTLE)
    assert len(list_all(s3, "ixrec")) == 20
    for i in range(20):
        s3.delete_object(Bucket="ixrec", Key=f"a/{i}")
    s3.delete_bucket(Bucket="ixrec")
    s3.create_bucket(Bucket="ixrec")
    s3.put_object(Bucket="ixrec", Key="a/other", Body=b"x")
    assert [o["Key"] for o in list_all(s3, "ixrec")] == ["a/other"]


def run_strait(s, *args) -> subprocess.CompletedProcess:
    return subprocess.run([s.binary, "index", *args, "--root", str(s.root), "--state-dir", str(s.state_dir)],
                          capture_output=True, text=True, timeout=120)


def test_index_verify_and_rebuild(spawn_server):
    s = spawn_server()
    s3 = boto_client(s)
    s3.create_bucket(Bucket="ixver")
    keys = sorted(f"d{i % 7}/k{i:03d}" for i in range(300))
    put_many(s3, "ixver", keys)
    time.sleep(SETTLE)
    assert [o["Key"] for o in list_all(s3, "ixver")] == keys
    assert [o["Key"] for o in list_all(s3, "ixver")] == keys  # caches every record

    r = run_strait(s, "verify")
    assert "stop it first" in r.stderr and r.returncode == 1, r  # the running gateway holds the store
    assert s.stop() == 0
    r = run_strait(s, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"ixver: (\d+) directories trusted, (\d+) to re-read, (\d+) cached records checked, 0 drift", r.stdout)
    assert m and int(m.group(1)) == 8 and int(m.group(3)) == 300, r.stdout  # bucket top + d0..d6

    r = run_strait(s, "rebuild")
    assert r.returncode == 0 and "listing index cleared" in r.stdout, r
    r = run_strait(s, "verify")
    assert re.search(r"ixver: 0 directories trusted, 8 to re-read, 0 cached records checked, 0 drift", r.stdout), r.stdout
    r = run_strait(s, "rebuild", "--warm")
    assert r.returncode == 0 and "ixver: indexed 300 keys" in r.stdout, r
    r = run_strait(s, "verify")
    assert re.search(r"ixver: 8 directories trusted, 0 to re-read, 300 cached records checked, 0 drift", r.stdout), r.stdout

    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    assert [o["Key"] for o in list_all(boto_client(s2), "ixver")] == keys


def _prefixes(s3, bucket, prefix=""):
    r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    return [p["Prefix"] for p in r.get("CommonPrefixes", [])], [o["Key"] for o in r.get("Contents", [])]


@pytest.mark.parametrize("verify", [False, True])
def test_common_prefixes_follow_directories_changed_behind_the_gateway(spawn_server, tmp_path, verify):
    """Children created, removed, renamed or first filled show in the next delimiter listing in
    both modes. A child emptied in place (its files removed, the directory left) keeps its
    prefix by default until a listing reads into it; with listing_verify_prefixes it goes at once."""
    cfg = tmp_path / "ix.toml"
    cfg.write_text(f"[server]\nlisting_verify_prefixes = {'true' if verify else 'false'}\n")
    s = spawn_server(extra_args=("--config", str(cfg), "--admin-listen", "127.0.0.1:0"))
    s3 = boto_client(s)
    s3.create_bucket(Bucket="ixpre")
    put_many(s3, "ixpre", [f"d{i}/f{j}" for i in range(6) for j in range(2)] + ["only-sub/x/k"])
    (s.root / "ixpre" / "empty").mkdir()
    time.sleep(SETTLE)
    want = [f"d{i}/" for i in range(6)] + ["only-sub/"]
    assert _prefixes(s3, "ixpre") == (want, [])  # stamps every child
    time.sleep(SETTLE)
    assert _prefixes(s3, "ixpre") == (want, [])  # from the snapshot

    root = s.root / "ixpre"
    (root / "d0" / "f0").unlink()  # d0 still holds f1
    for f in (root / "d1").iterdir():  # d1 emptied in place
        f.unlink()
    os.rename(root / "d2", root / "moved")  # the parent changes
    (root / "empty" / "new").write_bytes(b"first key")  # a directory that had no file
    (root / "only-sub" / "x" / "k").unlink()  # emptied below a child without files
    got, _ = _prefixes(s3, "ixpre")
    exact = [p for p in want if p not in ("d1/", "d2/", "only-sub/")] + ["empty/", "moved/"]
    if verify:
        assert got == sorted(exact)
    else:
        assert got == sorted(exact + ["d1/"])
        # Reading into it re-reads it: then the parent's listing drops it too.
        assert _prefixes(s3, "ixpre", "d1/") == ([], [])
        assert _prefixes(s3, "ixpre") == (sorted(exact), [])
    assert s3.list_objects_v2(Bucket="ixpre", Prefix="d1/")["KeyCount"] == 0


def test_listing_index_can_be_switched_off(spawn_server, tmp_path):
    cfg = tmp_path / "noindex.toml"
    cfg.write_text("[server]\nlisting_index = false\n")
    s = spawn_server(extra_args=("--config", str(cfg), "--admin-listen", "127.0.0.1:0"))
    s3 = boto_client(s)
    s3.create_bucket(Bucket="ixoff")
    put_many(s3, "ixoff", [f"k{i}" for i in range(10)])
    time.sleep(SETTLE)
    for _ in range(2):
        assert len(list_all(s3, "ixoff")) == 10
    c = dir_counts(s)
    assert c["index"] == 0 and c["readdir"] >= 2


def test_kill_9_under_writes_and_listings_then_restart(spawn_server):
    """Snapshots exist and are being refreshed when the gateway dies: after restart, nothing
    acknowledged is missing from listings and nothing listed is absent."""
    s = spawn_server()
    s3 = boto_client(s)
    bucket = "ixcrash"
    s3.create_bucket(Bucket=bucket)
    pre = [f"w{i}/pre{j}" for i in range(4) for j in range(50)] + ["w0/sub/dir/pre"]
    put_many(s3, bucket, pre)
    time.sleep(SETTLE)
    list_all(s3, bucket)
    stop = threading.Event()

    def lister():
        c = boto_client(s)
        while not stop.is_set():
            try:
                list_all(c, bucket)
            except Exception:  # the server is killed under it
                return

    t = threading.Thread(target=lister, daemon=True)
    t.start()
    ledger = Ledger()
    v = Version(hashlib.md5(b"v").hexdigest(), f'"{hashlib.md5(b"v").hexdigest()}"', 1)
    for k in pre:  # acknowledged before the load
        ledger.begin(k, v)
        ledger.acked[k] = v
        ledger.inflight.pop(k, None)
    try:
        rc = run_load(s, bucket, ledger, puts=40, mpus=1, sig=signal.SIGKILL)
    finally:
        stop.set()
        t.join(timeout=30)
    assert rc == -9
    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    verify_after_restart(s2, bucket, ledger)
    keys = {o["Key"] for o in list_all(boto_client(s2), bucket)}
    assert set(pre) <= keys
