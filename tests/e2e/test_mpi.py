"""The MPI shim (mpi-shim/) under real mpirun -np 4, with Open MPI and with MPICH from Debian.

The shim is built exactly as its README says (`make -C mpi-shim MPICC=...`), the driver
tests/mpi/mpi_check.c is linked against it, and every rank writes the bytes it read to a file
that is compared byte for byte with the object. The number of requests the gateway served comes
from its access log (server side), not from the client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import boto_client

REPO = Path(__file__).resolve().parents[2]
NP = 4
MIB = 1 << 20

# name -> (compiler wrapper, launcher, launcher flags, environment)
MPIS = {
    "openmpi": ("mpicc.openmpi", "mpirun.openmpi", ["--oversubscribe", "--mca", "btl", "self,vader"],
                {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                 "OMPI_MCA_btl_vader_single_copy_mechanism": "none", "OMPI_MCA_rmaps_base_oversubscribe": "1"}),
    "mpich": ("mpicc.mpich", "mpirun.mpich", [], {}),
}


@pytest.fixture(scope="module")
def mpi_server(strait_bin, tmp_path_factory):
    from helpers import Server
    d = tmp_path_factory.mktemp("mpi")
    log = d / "access.log"
    s = Server(binary=strait_bin, root=d / "root", state_dir=d / "state", log_path=d / "strait.log",
               extra_args=["--access-log", str(log)]).start()
    s.access_log = log
    s3 = boto_client(s)
    s3.create_bucket(Bucket="mpi")
    yield s, s3
    s.stop()
    assert not s.panics(), s.panics()


@pytest.fixture(scope="module", params=sorted(MPIS))
def mpi(request, tmp_path_factory):
    """(name, path of the driver binary linked with the shim for this MPI)."""
    name = request.param
    cc, run, _, _ = MPIS[name]
    for tool in (cc, run):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not installed (scripts/install-deps.sh installs Open MPI and MPICH)", pytrace=False)
    build = tmp_path_factory.mktemp(f"shim-{name}")
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", "/root/.cache/strait/target")
    out = subprocess.run(["make", "-C", str(REPO / "mpi-shim"), f"MPICC={cc}", f"BUILD={build}"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    libs = subprocess.run(["make", "-s", "-C", str(REPO / "mpi-shim"), "libs"], capture_output=True, text=True,
                          check=True).stdout.split()
    exe = build / "mpi_check"
    cmd = [cc, "-O2", "-Wall", "-Werror", "-Wno-deprecated-declarations", str(REPO / "tests/mpi/mpi_check.c"),
           f"-I{REPO / 'mpi-shim/include'}", f"-L{build}", *libs, "-o", str(exe)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, " ".join(cmd) + "\n" + out.stdout + out.stderr
    # The documented example program builds with the documented line.
    cmd = [cc, str(REPO / "mpi-shim/examples/read_dataset.c"), f"-I{REPO / 'mpi-shim/include'}", f"-L{build}",
           *libs, "-o", str(build / "read_dataset")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, " ".join(cmd) + "\n" + out.stdout + out.stderr
    return name, exe


def launch(mpi, server, op: str, name: str, outdir: Path, *hints: str, env_extra=None, np_=NP):
    mname, exe = mpi
    _, run, flags, env_mpi = MPIS[mname]
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(env_mpi)
    env.update({"STRAIT_ENDPOINT": server.url, "AWS_ACCESS_KEY_ID": server.access_key,
                "AWS_SECRET_ACCESS_KEY": server.secret_key})
    if server.ca:
        env["AWS_CA_BUNDLE"] = str(server.ca)
    env.update(env_extra or {})
    argv = [run, "-np", str(np_), *flags, str(exe), op, name, str(outdir), *hints]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def results(proc, timeout=120) -> list[dict]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"mpirun hung (killed after {timeout}s)\n{out}\n{err}")
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0, f"mpirun exited {proc.returncode}\n{out}\n{err}"
    return sorted(lines, key=lambda r: (r["rank"], r.get("offset", 0)))


def run(mpi, server, op, name, outdir, *hints, **kw) -> list[dict]:
    return results(launch(mpi, server, op, name, outdir, *hints, **kw))


def served(server, op: str = "GetObject") -> int:
    text = server.access_log.read_text() if server.access_log.exists() else ""
    return sum(1 for ln in text.splitlines() if ln and json.loads(ln).get("operation") == op)


def settled_count(server, op: str) -> int:
    """The access log is written as responses finish: wait until the count stops moving."""
    last, stable = -1, 0
    for _ in range(100):
        n = served(server, op)
        stable = stable + 1 if n == last else 0
        if stable >= 3:
            return n
        last = n
        time.sleep(0.03)
    return last


def put(s3, key: str, data: bytes):
    s3.put_object(Bucket="mpi", Key=key, Body=data)


def block(size: int, r: int, np_: int = NP) -> tuple[int, int]:
    return size * r // np_, size * (r + 1) // np_


@pytest.mark.parametrize("path", ["direct", "http", "auto"])
def test_read_at_all_byte_for_byte(mpi, mpi_server, tmp_path, path):
    server, s3 = mpi_server
    data = os.urandom(9 * MIB + 12345)
    key = f"ds/{mpi[0]}-{path}/shard.bin"
    put(s3, key, data)
    hints = [f"strait_path={path}", "cb_buffer_size=1048576", "cb_nodes=2", "strait_http_streams=3"]
    if path == "http":
        hints.append("romio_cb_read=enable")  # the ranks' ranges do not overlap: else each reads its own
    before = settled_count(server, "GetObject")
    res = run(mpi, server, "read_at_all", f"s3://mpi/{key}", tmp_path, *hints)
    gets = settled_count(server, "GetObject") - before
    # http: 2 aggregators own [0, 5 MiB) and [5 MiB, end), read in 1 MiB rounds: 5 + 5 GETs.
    # direct (and auto, which finds the file on every rank): the file is read, no GET at all.
    assert gets == (10 if path == "http" else 0), gets
    assert [r["rank"] for r in res] == list(range(NP)), res
    want_path = 2 if path == "http" else 1  # auto: every rank sees the file, so direct
    for r in res:
        assert r["rc"] == 0, r
        assert r["path"] == want_path, r
        assert r["size"] == len(data)
        s, e = block(len(data), r["rank"])
        assert (r["offset"], r["nread"]) == (s, e - s)  # the last rank asked past the end: clamped
        assert (tmp_path / f"rank{r['rank']}.bin").read_bytes() == data[s:e]
    etag = s3.head_object(Bucket="mpi", Key=key)["ETag"]
    assert all(r["etag"] == etag for r in res)


def test_read_at_all_http_disjoint_ranges_read_alone(mpi, mpi_server, tmp_path):
    """romio_cb_read=automatic (ROMIO's rule): ranges that do not overlap are read by their own
    ranks, GETs of at most cb_buffer_size straight into each rank's buffer, with no exchange."""
    server, s3 = mpi_server
    data = os.urandom(9 * MIB + 12345)
    key = f"ds/{mpi[0]}-alone/shard.bin"
    put(s3, key, data)
    before = settled_count(server, "GetObject")
    res = run(mpi, server, "read_at_all", f"s3://mpi/{key}", tmp_path, "strait_path=http",
              "cb_buffer_size=1048576", "strait_http_streams=2")
    gets = settled_count(server, "GetObject") - before
    # Each rank's block is about 2.25 MiB (the last one clamped at the end): 3 GETs each.
    assert gets == 4 * 3, gets
    for r in res:
        assert r["rc"] == 0 and r["path"] == 2, r
        s, e = block(len(data), r["rank"])
        assert (r["offset"], r["nread"]) == (s, e - s)
        assert (tmp_path / f"rank{r['rank']}.bin").read_bytes() == data[s:e]


def test_overlapping_ranges_and_independent_reads(mpi, mpi_server, tmp_path):
    server, s3 = mpi_server
    data = os.urandom(5 * MIB + 999)
    key = f"ds/{mpi[0]}-overlap.bin"
    put(s3, key, data)
    for op, hints in [("overlap", ["strait_path=http", "cb_buffer_size=262144"]),
                      ("overlap", ["strait_path=http", "romio_cb_read=disable", "cb_buffer_size=262144"]),
                      ("overlap", ["strait_path=direct", "romio_cb_read=enable", "cb_buffer_size=262144"]),
                      ("read_at", ["strait_path=http"]),
                      ("read_at", ["strait_path=direct"])]:
        out = tmp_path / f"{op}-{len(hints)}-{hints[0]}"
        res = run(mpi, server, op, f"s3://mpi/{key}", out, *hints)
        for r in res:
            assert r["rc"] == 0, (op, hints, r)
            s = len(data) * r["rank"] // NP
            e = len(data) * (r["rank"] + (2 if op == "overlap" else 1)) // NP
            assert (out / f"rank{r['rank']}.bin").read_bytes() == data[s:min(e, len(data))], (op, hints, r)


def test_read_all_same_reads_once_and_broadcasts(mpi, mpi_server, tmp_path):
    """Every rank needs the whole object: read once (4x fewer GETs than each rank reading it
    all), identical bytes everywhere."""
    server, s3 = mpi_server
    data = os.urandom(8 * MIB + 777)
    key = f"ds/{mpi[0]}-same.bin"
    put(s3, key, data)
    hints = ["strait_path=http", "cb_buffer_size=1048576", "strait_http_streams=1"]
    counts = {}
    for op in ("same", "naive"):
        before = settled_count(server, "GetObject")
        out = tmp_path / op
        res = run(mpi, server, op, f"s3://mpi/{key}", out, *hints)
        counts[op] = settled_count(server, "GetObject") - before
        for r in res:
            assert r["rc"] == 0 and r["path"] == 2, r
            assert (out / f"rank{r['rank']}.bin").read_bytes() == data
    # 1 MiB rounds over 4 aggregator domains of 3, 3, 3 and 0 MiB (+777 B): 9 GETs in all.
    assert counts["same"] == 9, counts
    assert counts["naive"] == NP * counts["same"], counts


def test_open_many_is_one_lease_request(mpi, mpi_server, tmp_path):
    server, s3 = mpi_server
    objs = {f"many/{mpi[0]}/{i}.bin": os.urandom(1000 * (i + 1)) for i in range(3)}
    for k, v in objs.items():
        put(s3, k, v)
    names = ",".join(f"s3://mpi/{k}" for k in objs)
    before = settled_count(server, "StraitLease")
    res = run(mpi, server, "open_many", names, tmp_path)
    assert settled_count(server, "StraitLease") - before == 1
    assert len(res) == NP * 3
    for r in res:
        assert r["rc"] == 0, r
        key = list(objs)[r["offset"]]
        assert r["size"] == len(objs[key])
        assert r["path"] == 1
        assert r["fs_type"] == "posix" and r["stripe_size"] >= 4096
    # Only rank 0 talked to the gateway.
    assert [r["requests"] > 0 for r in res if r["offset"] == 0] == [True, False, False, False]


def test_errors_are_the_same_on_every_rank(mpi, mpi_server, tmp_path):
    server, s3 = mpi_server
    put(s3, "err/ok.bin", b"x" * 100)
    put(s3, "secret/hidden.bin", b"y" * 100)
    s3.put_bucket_policy(Bucket="mpi", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::mpi/secret/*"}]}))
    try:
        cases = [
            ("open", "s3://mpi/err/missing.bin", [], 3),
            ("open", "s3://nosuchbucket-mpi/k", [], 2),
            ("open", "s3://mpi/secret/hidden.bin", [], 4),
            ("open", "mpi/no-scheme", [], 1),
            ("open", "s3://mpi/err/ok.bin", ["strait_path=sideways"], 1),
        ]
        for i, (op, name, hints, code) in enumerate(cases):
            res = run(mpi, server, op, name, tmp_path / str(i), *hints)
            assert len(res) == NP, (name, res)
            assert {r["rc"] for r in res} == {code}, (name, res)
            assert len({r["error"] for r in res}) == 1, res  # the same message too
        # A wrong secret: refused on every rank.
        res = run(mpi, server, "open", "s3://mpi/err/ok.bin", tmp_path / "auth",
                  env_extra={"AWS_SECRET_ACCESS_KEY": "wrong" * 8})
        assert {r["rc"] for r in res} == {6}, res
        # One bad name among several: the same error and index everywhere, nothing left open.
        names = "s3://mpi/err/ok.bin,s3://mpi/err/missing.bin,s3://mpi/err/ok.bin"
        res = run(mpi, server, "open_many", names, tmp_path / "many")
        assert [(r["rc"], r["failed"]) for r in res] == [(3, 1)] * NP, res
    finally:
        s3.delete_bucket_policy(Bucket="mpi")


@pytest.mark.parametrize("path", ["http", "direct"])
def test_object_replaced_during_the_read(mpi, mpi_server, tmp_path, path):
    """http: the pinned ETag fails If-Match, so every rank gets STRAIT_ERR_CHANGED; direct: the
    open file is the old version, read whole by every rank — never a mix of versions."""
    server, s3 = mpi_server
    old, new = os.urandom(3 * MIB + 5), os.urandom(3 * MIB + 5)
    key = f"ds/{mpi[0]}-replaced-{path}.bin"
    put(s3, key, old)
    proc = launch(mpi, server, "changed", f"s3://mpi/{key}", tmp_path, f"strait_path={path}",
                  "cb_buffer_size=1048576")
    line = proc.stdout.readline()
    assert line.strip() == "READY", line + proc.stderr.read()
    put(s3, key, new)
    (tmp_path / "go").touch()
    res = results(proc)
    if path == "http":
        assert [r["rc"] for r in res] == [5] * NP, res
    else:
        assert [r["rc"] for r in res] == [0] * NP, res
        for r in res:
            s, e = block(len(old), r["rank"])
            assert (tmp_path / f"rank{r['rank']}.bin").read_bytes() == old[s:e]


def pattern(n: int) -> bytes:
    return bytes(((i * 2654435761) >> 13) & 0xFF for i in range(n))


def test_collective_write_through_multipart(mpi, mpi_server, tmp_path):
    server, s3 = mpi_server
    size = 11 * MIB + 5
    key = f"out/{mpi[0]}/result.bin"
    res = run(mpi, server, "write", f"s3://mpi/{key}", tmp_path, f"size={size}", "strait_part_size=5242880")
    assert [r["rc"] for r in res] == [0] * NP, res
    head = s3.head_object(Bucket="mpi", Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"].endswith('-3"'), head["ETag"]  # 5 + 5 + 1 MiB parts
    assert all(r["etag"] == head["ETag"] and r["size"] == size for r in res), res
    assert s3.get_object(Bucket="mpi", Key=key)["Body"].read() == pattern(size)
    assert not s3.list_multipart_uploads(Bucket="mpi").get("Uploads")


def test_tls_endpoint(mpi, tls_server, s3_tls, tmp_path):
    """The http path over HTTPS with a private CA (AWS_CA_BUNDLE)."""
    bucket = f"mpi-tls-{mpi[0]}"
    s3_tls.create_bucket(Bucket=bucket)
    data = os.urandom(2 * MIB + 1)
    s3_tls.put_object(Bucket=bucket, Key="t.bin", Body=data)
    res = run(mpi, tls_server, "read_at_all", f"s3://{bucket}/t.bin", tmp_path, "strait_path=http")
    for r in res:
        assert r["rc"] == 0 and r["path"] == 2, r
        s, e = block(len(data), r["rank"])
        assert (tmp_path / f"rank{r['rank']}.bin").read_bytes() == data[s:e]


def test_example_program(mpi, mpi_server, tmp_path):
    server, s3 = mpi_server
    put(s3, f"era5/{mpi[0]}/2020.bin", os.urandom(3 * MIB + 17))
    put(s3, f"era5/{mpi[0]}/header.json", b'{"variables": ["t2m"]}')
    _, run_, flags, env_mpi = MPIS[mpi[0]]
    env = dict(os.environ, **env_mpi, STRAIT_ENDPOINT=server.url, AWS_ACCESS_KEY_ID=server.access_key,
               AWS_SECRET_ACCESS_KEY=server.secret_key)
    exe = mpi[1].parent / "read_dataset"
    out = subprocess.run([run_, "-np", str(NP), *flags, str(exe), f"s3://mpi/era5/{mpi[0]}/2020.bin",
                          f"s3://mpi/era5/{mpi[0]}/header.json"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{3 * MIB + 17} bytes" in out.stdout and "direct" in out.stdout and "header 22 bytes" in out.stdout, \
        out.stdout
