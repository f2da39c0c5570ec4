"""Named limits that bound memory: requests in flight (503 SlowDown beyond it, as S3) and the
shared buffer budget (requests wait for buffer space; nothing deadlocks, nothing is torn)."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib

import os

from helpers import Raw, boto_client, key_path


def test_requests_in_flight_answer_slowdown_beyond_the_limit(spawn_server, tmp_path):
    cfg = tmp_path / "strait.toml"
    cfg.write_text("[limits]\nrequests_in_flight_max = 2\n")
    s = spawn_server(extra_args=["--config", str(cfg)])
    s3 = boto_client(s)
    s3.create_bucket(Bucket="inflight")
    s3.put_object(Bucket="inflight", Key="big", Body=os.urandom(32 << 20))
    raw = Raw(s)
    # Two GETs whose bodies are not read yet hold both permits.
    held = []
    for _ in range(2):
        target, headers, _ = raw.sign("GET", key_path("inflight", "big"))
        conn = raw.connection()
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read(1024)
        held.append((conn, resp))
    r = raw.get(key_path("inflight", "big"))
    assert (r.status, r.code) == (503, "SlowDown")
    for conn, resp in held:
        resp.read()
        conn.close()
    assert raw.head(key_path("inflight", "big")).status == 200  # permits came back


def test_a_small_buffer_budget_serves_everyone(spawn_server, tmp_path):
    cfg = tmp_path / "strait.toml"
    cfg.write_text("[limits]\nbuffer_bytes_max = 2097152\n")
    s = spawn_server(extra_args=["--config", str(cfg)])
    s3 = boto_client(s, max_pool_connections=16)
    s3.create_bucket(Bucket="budget")
    blobs = {f"k{i}": os.urandom((6 << 20) + i) for i in range(6)}

    def put(k):
        s3.put_object(Bucket="budget", Key=k, Body=blobs[k])

    def get(k):
        return hashlib.sha256(s3.get_object(Bucket="budget", Key=k)["Body"].read()).hexdigest()

    with cf.ThreadPoolExecutor(12) as ex:
        list(ex.map(put, blobs))
        got = list(ex.map(get, list(blobs) * 2))
    assert got == [hashlib.sha256(blobs[k]).hexdigest() for k in list(blobs) * 2]


def test_limits_are_validated(strait_bin, tmp_path):
    import subprocess
    for text, name in [("[limits]\nrequests_in_flight_max = 0\n", "requests_in_flight_max"),
                       ("[limits]\nbuffer_bytes_max = 1000\n", "buffer_bytes_max")]:
        f = tmp_path / "c.toml"
        f.write_text(text)
        out = subprocess.run([strait_bin, "check-config", str(f)], capture_output=True, text=True)
        assert out.returncode != 0 and name in out.stderr, out.stderr

