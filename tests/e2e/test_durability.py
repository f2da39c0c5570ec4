"""Crash safety: kill -9 and SIGTERM under concurrent PUT and multipart load.

A ledger records every write a client began and every write the server acknowledged (200, with
the MD5/ETag the client computed). Each key is written by one thread only, so per key the
writes are sequential: after a restart a key must hold its latest acknowledged version or the
one write that was in flight when the server died — never other, torn or mixed bytes, and its
ETag must be that version's ETag.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from botocore.config import Config

from helpers import MIB, Raw, Server, key_path, md5_hex, multipart_etag

STAGE_PREFIX = ".strait.stage."
PUT_WRITERS = 4
KEYS_PER_WRITER = 4
MPU_KEYS = ("mp/one", "mp/deep/two")
PART_SIZE = 5 * MIB  # limits.part_size_bytes_min default


@dataclasses.dataclass(frozen=True)
class Version:
    md5: str
    etag: str
    size: int


class Ledger:
    def __init__(self):
        self.cond = threading.Condition()
        self.acked: dict[str, Version] = {}  # latest acknowledged version per key
        self.inflight: dict[str, Version] = {}  # the write begun and not answered, per key
        self.begun: set[str] = set()
        self.puts = 0
        self.mpus = 0
        self.unexpected: list[str] = []
        self.server_gone = threading.Event()  # set just before the signal is sent

    def begin(self, key: str, v: Version) -> None:
        with self.cond:
            self.inflight[key] = v
            self.begun.add(key)

    def ack(self, key: str, v: Version, etag: str, multipart: bool) -> None:
        with self.cond:
            del self.inflight[key]
            if etag != v.etag:
                self.unexpected.append(f"{key}: acknowledged ETag {etag}, sent {v.etag}")
            self.acked[key] = v
            if multipart:
                self.mpus += 1
            else:
                self.puts += 1
            self.cond.notify_all()

    def failed(self, key: str, exc: BaseException) -> None:
        # The write stays in flight: the server may or may not have published it.
        with self.cond:
            if not self.server_gone.is_set():
                self.unexpected.append(f"{key}: {type(exc).__name__}: {exc}")
            self.cond.notify_all()

    def wait_for(self, puts: int, mpus: int, timeout: float = 45) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: (self.puts >= puts and self.mpus >= mpus) or self.unexpected,
                                    timeout=timeout)
        assert not self.unexpected, self.unexpected[:5]
        assert ok, f"load never reached {puts} PUTs and {mpus} multipart uploads (got {self.puts}, {self.mpus})"


def client(server: Server):
    import boto3

    return boto3.client(
        "s3", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"},
                      connect_timeout=5, read_timeout=60, max_pool_connections=16),
    )


def put_writer(s3, bucket: str, keys: list[str], ledger: Ledger, stop: threading.Event, seed: int):
    rng = random.Random(seed)
    while not stop.is_set():
        key = rng.choice(keys)
        size = rng.choice([0, rng.randrange(1, 64 * 1024), rng.randrange(0, 3 * MIB + 1)])
        body = os.urandom(size)
        v = Version(md5_hex(body), f'"{md5_hex(body)}"', size)
        ledger.begin(key, v)
        try:
            r = s3.put_object(Bucket=bucket, Key=key, Body=body)
        except Exception as e:  # noqa: BLE001 - any failure leaves the write in flight
            ledger.failed(key, e)
            return
        ledger.ack(key, v, r["ETag"], multipart=False)


def mpu_writer(s3, bucket: str, ledger: Ledger, stop: threading.Event, seed: int):
    rng = random.Random(seed)
    while not stop.is_set():
        key = rng.choice(MPU_KEYS)
        parts = [os.urandom(PART_SIZE), os.urandom(rng.randrange(1, MIB))]
        whole = b"".join(parts)
        v = Version(md5_hex(whole), multipart_etag(parts), len(whole))
        ledger.begin(key, v)
        try:
            up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            done = []
            for n, p in enumerate(parts, 1):
                e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=p)["ETag"]
                done.append({"PartNumber": n, "ETag": e})
            r = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                             MultipartUpload={"Parts": done})
        except Exception as e:  # noqa: BLE001
            ledger.failed(key, e)
            return
        ledger.ack(key, v, r["ETag"], multipart=True)


def run_load(server: Server, bucket: str, ledger: Ledger, puts: int, mpus: int, sig: int,
             exit_within: float = 30) -> int:
    """Run the writers until the ledger holds `puts` and `mpus` acknowledgements, then send
    `sig` to the server while they keep writing. Returns the server's exit status; fails if
    the server is still running `exit_within` seconds after the signal."""
    s3 = client(server)
    stop = threading.Event()
    threads = [threading.Thread(target=put_writer, daemon=True,
                                args=(s3, bucket, [f"w{i}/k{j}" if j % 2 else f"w{i}/sub/dir/k{j}"
                                                   for j in range(KEYS_PER_WRITER)], ledger, stop, i))
               for i in range(PUT_WRITERS)]
    threads.append(threading.Thread(target=mpu_writer, args=(s3, bucket, ledger, stop, 99), daemon=True))
    for t in threads:
        t.start()
    try:
        ledger.wait_for(puts, mpus)
        ledger.server_gone.set()
        server.proc.send_signal(sig)
        try:
            rc = server.proc.wait(timeout=exit_within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"strait still running {exit_within}s after signal {sig}")
    finally:
        stop.set()
        ledger.server_gone.set()
        for t in threads:
            t.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a writer hung after the server went away"
    return rc


def staging_files(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [os.path.join(dirpath, n) for n in dirnames + filenames if n.startswith(STAGE_PREFIX)]
    return found


def verify_after_restart(server: Server, bucket: str, ledger: Ledger) -> None:
    s3 = client(server)
    assert not ledger.unexpected, ledger.unexpected[:5]
    problems = []
    for key in sorted(ledger.begun):
        allowed = {v for v in (ledger.acked.get(key), ledger.inflight.get(key)) if v is not None}
        try:
            g = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            if key in ledger.acked:
                problems.append(f"{key}: acknowledged, now NoSuchKey")
            continue
        body = g["Body"].read()
        got = Version(md5_hex(body), g["ETag"], len(body))
        if got not in allowed:
            problems.append(f"{key}: got {got}, allowed {allowed}")
    assert not problems, problems[:10]

    listed, token = {}, None
    while True:
        r = s3.list_objects_v2(Bucket=bucket, **({"ContinuationToken": token} if token else {}))
        listed.update({c["Key"]: c for c in r.get("Contents", [])})
        if not r.get("IsTruncated"):
            break
        token = r["NextContinuationToken"]
    assert set(listed) <= ledger.begun, sorted(set(listed) - ledger.begun)
    assert set(ledger.acked) <= set(listed), sorted(set(ledger.acked) - set(listed))
    for key, entry in listed.items():
        g = s3.get_object(Bucket=bucket, Key=key)
        assert g["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert len(g["Body"].read()) == entry["Size"] and g["ETag"] == entry["ETag"], key
    assert staging_files(server.root) == []


# --- kill -9 ---------------------------------------------------------------------------------


def test_sigkill_under_load_keeps_acknowledged_objects(spawn_server):
    s = spawn_server()
    bucket = "durable"
    client(s).create_bucket(Bucket=bucket)
    ledger = Ledger()
    rc = run_load(s, bucket, ledger, puts=60, mpus=3, sig=signal.SIGKILL)
    assert rc == -signal.SIGKILL
    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    verify_after_restart(s2, bucket, ledger)


def start_partial_put(server: Server, path: str, data: bytes, sent: int, query=None) -> http.client.HTTPConnection:
    """A signed PUT of `data` with only the first `sent` bytes of the body written."""
    target, hdrs, _ = Raw(server).sign("PUT", path, query=query, headers={"Content-Length": str(len(data))},
                                       body=data)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(data[:sent])
    return conn


def wait_until(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def unnamed_files_open_in(pid: int, directory: Path) -> list[str]:
    """The server's descriptors on unnamed (O_TMPFILE) files of `directory`: their /proc link
    reads `<directory>/#<inode> (deleted)`; one entry per file, however many descriptors
    (the I/O engine may hold its own)."""
    found = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(f"{directory}/#") and target.endswith(" (deleted)"):
            found.add(target)
    return sorted(found)


def staged(server: Server, directory: Path) -> list[str]:
    """Staging files of writes in flight in `directory`: named ones, and the unnamed ones the
    server holds open."""
    d = Path(directory).resolve()
    return staging_files(d) + unnamed_files_open_in(server.proc.pid, d)


def test_sigkill_mid_put_leaves_nothing_with_unnamed_staging(spawn_server):
    """The default staging file has no name: while a PUT streams, the target directory shows
    nothing of it; kill -9 leaves nothing to clean up and the key never appears."""
    s = spawn_server()
    client(s).create_bucket(Bucket="cut")
    client(s).put_object(Bucket="cut", Key="dir/old", Body=b"previous")
    directory = (s.root / "cut" / "dir").resolve()
    data = os.urandom(4 * MIB)
    conn = start_partial_put(s, key_path("cut", "dir/obj"), data, 2 * MIB)
    try:
        wait_until(lambda: unnamed_files_open_in(s.proc.pid, directory), "the unnamed staging file")
        assert sorted(os.listdir(directory)) == ["old"]
        s.proc.kill()
        s.proc.wait(timeout=30)
    finally:
        conn.close()
    assert staging_files(s.root) == []
    assert sorted(os.listdir(directory)) == ["old"]
    c = client(spawn_server(root=s.root, state_dir=s.state_dir))
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="cut", Key="dir/obj")
    assert [o["Key"] for o in c.list_objects_v2(Bucket="cut")["Contents"]] == ["dir/old"]


def test_sigkill_leftover_staging_removed_at_start(spawn_server):
    """With named staging (`STRAIT_STAGING=named`, as on file systems without O_TMPFILE), a
    PUT cut off mid-body by kill -9 leaves its staging file; the restart removes it and the key
    never appears."""
    named = {"STRAIT_STAGING": "named"}
    s = spawn_server(extra_env=named)
    client(s).create_bucket(Bucket="cut")
    client(s).put_object(Bucket="cut", Key="dir/old", Body=b"previous")
    data = os.urandom(4 * MIB)
    conn = start_partial_put(s, key_path("cut", "dir/obj"), data, 2 * MIB)
    try:
        wait_until(lambda: staging_files(s.root / "cut" / "dir"), "the staging file")
        s.proc.kill()
        s.proc.wait(timeout=30)
    finally:
        conn.close()
    assert staging_files(s.root), "kill -9 left no staging file to clean up"
    s2 = spawn_server(root=s.root, state_dir=s.state_dir, extra_env=named)
    assert staging_files(s2.root) == []
    c = client(s2)
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="cut", Key="dir/obj")
    assert [o["Key"] for o in c.list_objects_v2(Bucket="cut")["Contents"]] == ["dir/old"]
    assert c.get_object(Bucket="cut", Key="dir/old")["Body"].read() == b"previous"


def test_sigkill_leftover_part_staging_removed_at_start(spawn_server):
    s = spawn_server()
    c = client(s)
    c.create_bucket(Bucket="cutpart")
    up = c.create_multipart_upload(Bucket="cutpart", Key="big")["UploadId"]
    first = os.urandom(PART_SIZE)
    p1 = c.upload_part(Bucket="cutpart", Key="big", UploadId=up, PartNumber=1, Body=first)["ETag"]
    data = os.urandom(2 * MIB)
    target, hdrs, _ = Raw(s).sign("PUT", key_path("cutpart", "big"), query={"partNumber": "2", "uploadId": up},
                                  headers={"Content-Length": str(len(data))}, body=data)
    conn = http.client.HTTPConnection(s.host, s.port, timeout=60)
    try:
        conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(data[:MIB])
        uploads = s.root / "cutpart" / ".strait-uploads"
        wait_until(lambda: staging_files(uploads), "the part staging file")
        s.proc.kill()
        s.proc.wait(timeout=30)
    finally:
        conn.close()
    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    assert staging_files(s2.root) == []
    c = client(s2)
    # The upload survives with its acknowledged part; it can be completed.
    parts = c.list_parts(Bucket="cutpart", Key="big", UploadId=up).get("Parts", [])
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, p1)]
    last = b"tail"
    p2 = c.upload_part(Bucket="cutpart", Key="big", UploadId=up, PartNumber=2, Body=last)["ETag"]
    r = c.complete_multipart_upload(Bucket="cutpart", Key="big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]})
    assert r["ETag"] == multipart_etag([first, last])
    body = c.get_object(Bucket="cutpart", Key="big")["Body"].read()
    assert hashlib.md5(body).hexdigest() == md5_hex(first + last)


# --- SIGTERM ---------------------------------------------------------------------------------

GRACE_SECS = 10


@pytest.fixture
def grace_config(tmp_path) -> Path:
    f = tmp_path / "grace.toml"
    f.write_text(f"[limits]\nshutdown_grace_secs = {GRACE_SECS}\n")
    return f


def test_sigterm_under_load_exits_zero_and_keeps_objects(spawn_server, grace_config):
    s = spawn_server(extra_args=("--config", str(grace_config)))
    bucket = "graceful"
    client(s).create_bucket(Bucket=bucket)
    ledger = Ledger()
    rc = run_load(s, bucket, ledger, puts=16, mpus=1, sig=signal.SIGTERM, exit_within=GRACE_SECS + 10)
    assert rc == 0, s.log_text()[-2000:]
    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    verify_after_restart(s2, bucket, ledger)


def test_sigterm_lets_in_flight_put_finish(spawn_server, grace_config):
    """limits.shutdown_grace_secs: a request in flight at SIGTERM may still finish."""
    s = spawn_server(extra_args=("--config", str(grace_config)))
    client(s).create_bucket(Bucket="drain")
    data = os.urandom(4 * MIB)
    conn = start_partial_put(s, key_path("drain", "obj"), data, 2 * MIB)
    try:
        wait_until(lambda: staged(s, s.root / "drain"), "the staging file")
        log_start = len(s.log_text())
        s.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in s.log_text()[log_start:] or not s.alive(),
                   "the server to start shutting down")
        try:
            conn.send(data[2 * MIB:])
            resp = conn.getresponse()
            status, etag = resp.status, resp.getheader("ETag")
            resp.read()
        except (ConnectionError, http.client.HTTPException) as e:
            status, etag = f"{type(e).__name__}: {e}", None
    finally:
        conn.close()
    rc = s.proc.wait(timeout=GRACE_SECS + 10)
    assert status == 200, f"in-flight PUT at SIGTERM got {status}"
    assert etag == f'"{md5_hex(data)}"'
    assert rc == 0
    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    assert client(s2).get_object(Bucket="drain", Key="obj")["Body"].read() == data
    assert staging_files(s2.root) == []


SHORT_GRACE_SECS = 2


@pytest.fixture
def short_grace_config(tmp_path) -> Path:
    f = tmp_path / "short-grace.toml"
    f.write_text(f"[limits]\nshutdown_grace_secs = {SHORT_GRACE_SECS}\n")
    return f


def outcome(conn: http.client.HTTPConnection) -> str | int:
    """The status a cut-off request finally got, or the exception that ended it."""
    try:
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException) as e:
        return f"{type(e).__name__}: {e}"


def test_sigterm_aborts_requests_still_in_flight_after_grace(spawn_server, short_grace_config):
    """A PUT and an UploadPart whose bodies never finish are aborted when the grace period
    ends: the exiting process removes their staging files itself, exits 0, and nothing
    partial becomes visible; what was acknowledged before SIGTERM is kept."""
    s = spawn_server(extra_args=("--config", str(short_grace_config)))
    c = client(s)
    c.create_bucket(Bucket="abort")
    up = c.create_multipart_upload(Bucket="abort", Key="mp")["UploadId"]
    first = os.urandom(PART_SIZE)
    p1 = c.upload_part(Bucket="abort", Key="mp", UploadId=up, PartNumber=1, Body=first)["ETag"]

    data = os.urandom(4 * MIB)
    part = os.urandom(2 * MIB)
    put_conn = start_partial_put(s, key_path("abort", "dir/obj"), data, 2 * MIB)
    part_conn = start_partial_put(s, key_path("abort", "mp"), part, MIB,
                                  query={"partNumber": "2", "uploadId": up})
    try:
        wait_until(lambda: staged(s, s.root / "abort" / "dir"), "the PUT's staging file")
        uploads = s.root / "abort" / ".strait-uploads" / up
        wait_until(lambda: staging_files(uploads), "the part's staging file")
        # Acknowledged while the two cut-off requests are in flight.
        small = b"acknowledged before SIGTERM"
        r = c.put_object(Bucket="abort", Key="dir/acked", Body=small)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["ETag"] == f'"{md5_hex(small)}"'
        in_flight = staged(s, s.root / "abort" / "dir") + staging_files(uploads)
        assert len(in_flight) == 2, in_flight

        log_start = len(s.log_text())
        sent_at = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        try:
            rc = s.proc.wait(timeout=SHORT_GRACE_SECS + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"strait still running {SHORT_GRACE_SECS + 5}s after SIGTERM; "
                        f"staging: {staging_files(s.root)}; log tail:\n{s.log_text()[-3000:]}")
        took = time.monotonic() - sent_at
        # Right after the exit, before any restart: the exiting process cleaned up.
        left = staging_files(s.root)
        log = s.log_text()[log_start:]
        put_result, part_result = outcome(put_conn), outcome(part_conn)
    finally:
        put_conn.close()
        part_conn.close()

    assert rc == 0, f"exit status {rc}; log tail:\n{log[-3000:]}"
    assert left == [], f"staging files left by the exiting process: {left}; log tail:\n{log[-3000:]}"
    assert "grace period over" in log, f"the grace period did not run out; log tail:\n{log[-3000:]}"
    assert took >= SHORT_GRACE_SECS - 0.5, f"exited {took:.2f}s after SIGTERM, before the grace period ended"
    for what, res in (("PUT", put_result), ("UploadPart", part_result)):
        assert not isinstance(res, int) or res >= 400, f"aborted {what} got HTTP {res}"

    s2 = spawn_server(root=s.root, state_dir=s.state_dir)
    assert "removed leftover staging file" not in s2.log_text(), s2.log_text()[-3000:]
    assert staging_files(s2.root) == []
    c = client(s2)
    assert c.get_object(Bucket="abort", Key="dir/acked")["Body"].read() == small
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="abort", Key="dir/obj")
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="abort", Key="mp")
    assert [o["Key"] for o in c.list_objects_v2(Bucket="abort")["Contents"]] == ["dir/acked"]
    # The upload keeps only its acknowledged part and can still be completed.
    parts = c.list_parts(Bucket="abort", Key="mp", UploadId=up).get("Parts", [])
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, p1)]
    last = b"tail"
    p2 = c.upload_part(Bucket="abort", Key="mp", UploadId=up, PartNumber=2, Body=last)["ETag"]
    r = c.complete_multipart_upload(Bucket="abort", Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]})
    assert r["ETag"] == multipart_etag([first, last])
    assert hashlib.md5(c.get_object(Bucket="abort", Key="mp")["Body"].read()).hexdigest() == md5_hex(first + last)
    assert staging_files(s2.root) == []
