"""Fixtures: the real `strait` binary (plain HTTP and TLS), boto3 clients, fresh buckets.

STRAIT_BIN selects the binary (default /root/.cache/strait/target/debug/strait, or
$CARGO_TARGET_DIR/debug/strait). A missing binary fails the session: nothing is skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from helpers import ACCESS_KEY, SECRET_KEY, Raw, Server, boto_client, make_tls_material

_SERVERS: list[Server] = []


def _default_bin() -> str:
    if os.environ.get("STRAIT_BIN"):
        return os.environ["STRAIT_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", "/root/.cache/strait/target")
    return os.path.join(target, "debug", "strait")


@pytest.fixture(scope="session")
def strait_bin() -> str:
    path = _default_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"strait binary not found or not executable at {path} (set STRAIT_BIN)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("strait-e2e")


def _finish(server: Server) -> None:
    server.stop()
    panics = server.panics()
    if panics:
        pytest.fail(f"strait server log {server.log_path} shows a Rust panic:\n" + "\n".join(panics[:20]),
                    pytrace=False)


@pytest.fixture(scope="session")
def server(strait_bin, workdir):
    """The plain-HTTP server: temp root, explicit state dir, fixed credentials."""
    s = Server(binary=strait_bin, root=workdir / "root", state_dir=workdir / "state",
               log_path=workdir / "strait.log").start()
    _SERVERS.append(s)
    yield s
    _finish(s)


@pytest.fixture(scope="session")
def tls_material(workdir):
    return make_tls_material(workdir / "tls")


@pytest.fixture(scope="session")
def tls_server(strait_bin, workdir, tls_material):
    """The HTTPS server: its own root, state dir left to the default (<root>/.strait)."""
    chain, key, ca = tls_material
    s = Server(binary=strait_bin, root=workdir / "tls-root", state_dir=None,
               log_path=workdir / "strait-tls.log", tls_cert=chain, tls_key=key, ca=ca).start()
    assert s.scheme == "https", f"TLS server announced {s.url}"
    _SERVERS.append(s)
    yield s
    _finish(s)


@pytest.fixture
def spawn_server(strait_bin, tmp_path):
    """Start extra servers for one test (generated credentials, restarts); stopped after it."""
    started: list[Server] = []

    def spawn(**kw) -> Server:
        kw.setdefault("root", tmp_path / "root")
        kw.setdefault("state_dir", tmp_path / "state")
        kw.setdefault("log_path", tmp_path / f"strait-{len(started)}.log")
        s = Server(binary=strait_bin, **kw).start()
        started.append(s)
        return s

    yield spawn
    problems = []
    for s in started:
        s.stop()
        problems += s.panics()
    if problems:
        pytest.fail("extra strait server panicked:\n" + "\n".join(problems[:20]), pytrace=False)


@pytest.fixture(autouse=True)
def _servers_still_running():
    """Fail fast, with the log tail, if a session server died during the previous test."""
    for s in _SERVERS:
        if not s.alive():
            pytest.fail(f"strait server {s.url} exited ({s.proc.returncode}); log tail:\n"
                        + s.log_text()[-3000:], pytrace=False)
    yield


@pytest.fixture(scope="session")
def s3(server):
    return boto_client(server)


@pytest.fixture(scope="session")
def s3_tls(tls_server):
    return boto_client(tls_server)


@pytest.fixture(scope="session")
def raw(server) -> Raw:
    return Raw(server)


@pytest.fixture(scope="session")
def raw_tls(tls_server) -> Raw:
    return Raw(tls_server)


def _bucket_name(request) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    base = base.removeprefix("test-")[:40].strip("-") or "b"
    return f"{base}-{os.urandom(5).hex()}"


@pytest.fixture
def bucket(request, s3) -> str:
    """A fresh, uniquely named bucket on the plain server."""
    name = _bucket_name(request)
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def tls_bucket(request, s3_tls) -> str:
    name = _bucket_name(request)
    s3_tls.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket_dir(server, bucket) -> Path:
    return server.root / bucket


@pytest.fixture
def outside_dir(workdir, request) -> Path:
    """A directory outside every server root, with a secret file in it."""
    d = workdir / "outside" / re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)
    d.mkdir(parents=True, exist_ok=True)
    (d / "secret.txt").write_bytes(b"top secret")
    return d


@pytest.fixture(scope="session")
def cli_env(server, workdir) -> dict:
    """Environment for aws-cli and other subprocess clients: creds and an isolated config."""
    cfg = workdir / "aws-config"
    cfg.write_text(
        "[default]\n"
        "region = us-east-1\n"
        "s3 =\n"
        "  addressing_style = path\n"
        "  multipart_threshold = 5MB\n"
        "  multipart_chunksize = 5MB\n"
        "  max_concurrent_requests = 4\n"
    )
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_") or k.startswith("RCLONE_"):
            del env[k]
    env.update({
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(cfg),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "aws-credentials-none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    })
    return env
