"""The state directory and configuration: generated root credentials, --state-dir, check-config.

README: "when STRAIT_ROOT_* are unset, a key pair is generated once, kept in the state directory
and printed at start"; docs/config.md: unknown keys are errors that name the key.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from botocore.credentials import Credentials

from helpers import ACCESS_KEY, SECRET_KEY, Raw, boto_client, s3_error

REPO = Path(__file__).resolve().parents[2]
ACCESS_LINE = re.compile(r"^strait: access key: (\S+)$", re.M)
SECRET_LINE = re.compile(r"^strait: secret key: (\S+)$", re.M)


def printed_keys(server) -> tuple[str, str]:
    """The key pair this server printed: exactly one access-key and one secret-key line."""
    text = server.log_text()
    access, secret = ACCESS_LINE.findall(text), SECRET_LINE.findall(text)
    assert len(access) == 1 and len(secret) == 1, f"want one key pair printed, log:\n{text[-2000:]}"
    return access[0], secret[0]


def base_env() -> dict:
    env = dict(os.environ)
    env.pop("STRAIT_ROOT_ACCESS_KEY", None)
    env.pop("STRAIT_ROOT_SECRET_KEY", None)
    return env


def run_strait(strait_bin, *args, env=None, timeout=30) -> subprocess.CompletedProcess:
    """Run strait to completion; a process still running after `timeout` is killed and fails."""
    p = subprocess.Popen([strait_bin, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env or base_env(), start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"strait {' '.join(args)} still running after {timeout}s; stderr:\n{err.decode()[-2000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(), err.decode())


# --- generated root credentials --------------------------------------------------------------


def test_generated_keys_printed_and_valid(spawn_server):
    s = spawn_server(env_creds=False)
    ak, sk = printed_keys(s)
    assert (ak, sk) == (s.access_key, s.secret_key)
    assert ak != ACCESS_KEY and sk != SECRET_KEY
    assert re.fullmatch(r"[A-Z0-9]{16,128}", ak), ak
    assert len(sk) >= 30, sk
    c = boto_client(s, access_key=ak, secret_key=sk)
    c.create_bucket(Bucket="gen")
    c.put_object(Bucket="gen", Key="k", Body=b"v")
    with s3_error(403, "SignatureDoesNotMatch"):
        boto_client(s, access_key=ak, secret_key=sk[::-1]).list_buckets()
    with s3_error(403, "InvalidAccessKeyId"):
        boto_client(s, access_key=ACCESS_KEY, secret_key=SECRET_KEY).list_buckets()


def test_generated_keys_same_after_restart(spawn_server):
    s = spawn_server(env_creds=False)
    first = printed_keys(s)
    boto_client(s).create_bucket(Bucket="kept")
    boto_client(s).put_object(Bucket="kept", Key="k", Body=b"kept")
    assert s.stop() == 0
    s2 = spawn_server(env_creds=False, root=s.root, state_dir=s.state_dir)
    assert printed_keys(s2) == first, "a restart printed a different key pair"
    c = boto_client(s2, access_key=first[0], secret_key=first[1])
    assert c.get_object(Bucket="kept", Key="k")["Body"].read() == b"kept"


def test_state_dir_elsewhere(spawn_server, tmp_path):
    root, state = tmp_path / "data", tmp_path / "var" / "lib" / "strait-state"
    s = spawn_server(env_creds=False, root=root, state_dir=state)
    ak, sk = printed_keys(s)
    c = boto_client(s)
    c.create_bucket(Bucket="bkt1")
    c.put_object(Bucket="bkt1", Key="k", Body=b"x")
    assert state.is_dir() and any(state.iterdir()), "nothing stored in --state-dir"
    assert sorted(p.name for p in root.iterdir()) == ["bkt1"], "state written into the served root"
    for p in root.rglob("*"):
        if p.is_file():
            assert sk.encode() not in p.read_bytes(), f"secret key stored in the served tree: {p}"
    assert s.stop() == 0
    # Same state dir: same keys. A fresh state dir over the same root: a new pair, the old refused.
    s2 = spawn_server(env_creds=False, root=root, state_dir=state)
    assert printed_keys(s2) == (ak, sk)
    assert boto_client(s2).get_object(Bucket="bkt1", Key="k")["Body"].read() == b"x"
    assert s2.stop() == 0
    s3 = spawn_server(env_creds=False, root=root, state_dir=tmp_path / "other-state")
    assert printed_keys(s3)[0] != ak
    assert boto_client(s3).get_object(Bucket="bkt1", Key="k")["Body"].read() == b"x"
    r = Raw(s3).get("/", creds=Credentials(ak, sk))
    assert r.status == 403 and r.code == "InvalidAccessKeyId", r


def test_env_secret_never_printed(spawn_server):
    s = spawn_server()
    assert s.secret_key not in s.log_text()
    assert not SECRET_LINE.search(s.log_text())
    assert boto_client(s).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("present", ["STRAIT_ROOT_ACCESS_KEY", "STRAIT_ROOT_SECRET_KEY"])
def test_only_one_env_credential_refused(strait_bin, tmp_path, present):
    env = base_env()
    env[present] = "STRAITHALFPAIR000000"
    r = run_strait(strait_bin, "serve", "--root", str(tmp_path / "root"), "--state-dir", str(tmp_path / "state"),
                   "--listen", "127.0.0.1:0", env=env)
    assert r.returncode != 0, r.stderr
    assert "listening on" not in r.stderr
    assert "STRAIT_ROOT_ACCESS_KEY" in r.stderr and "STRAIT_ROOT_SECRET_KEY" in r.stderr, r.stderr


# --- check-config ----------------------------------------------------------------------------


def documented_example() -> str:
    text = (REPO / "docs" / "config.md").read_text()
    m = re.search(r"```toml\n(.*?)```", text, re.S)
    assert m, "docs/config.md has no toml example"
    return m.group(1)


def test_check_config_documented_example(strait_bin, tmp_path):
    f = tmp_path / "strait.toml"
    f.write_text(documented_example())
    r = run_strait(strait_bin, "check-config", str(f))
    assert r.returncode == 0, r.stderr
    assert "shutdown_grace_secs: 30" in r.stdout, r.stdout


def test_check_config_prints_resulting_settings(strait_bin, tmp_path):
    f = tmp_path / "strait.toml"
    f.write_text('[server]\nregion = "eu-test-1"\n[limits]\nshutdown_grace_secs = 7\n')
    r = run_strait(strait_bin, "check-config", str(f))
    assert r.returncode == 0, r.stderr
    assert "eu-test-1" in r.stdout and "shutdown_grace_secs: 7" in r.stdout, r.stdout


@pytest.mark.parametrize("text, key", [
    ("[limits]\nconnection_max = 3\n", "connection_max"),
    ('[server]\nlisten_addr = "127.0.0.1:1"\n', "listen_addr"),
    ('[sever]\nroot = "/x"\n', "sever"),
    ("bogus_top_level = 1\n", "bogus_top_level"),
], ids=["limits", "server", "table", "top-level"])
def test_check_config_unknown_key_named(strait_bin, tmp_path, text, key):
    f = tmp_path / "strait.toml"
    f.write_text(text)
    r = run_strait(strait_bin, "check-config", str(f))
    assert r.returncode != 0, r.stdout
    assert key in r.stderr, r.stderr


def test_serve_refuses_unknown_config_key(strait_bin, tmp_path):
    f = tmp_path / "strait.toml"
    f.write_text("[limits]\nshutdown_grace = 5\n")
    env = base_env() | {"STRAIT_ROOT_ACCESS_KEY": ACCESS_KEY, "STRAIT_ROOT_SECRET_KEY": SECRET_KEY}
    r = run_strait(strait_bin, "serve", "--config", str(f), "--root", str(tmp_path / "root"),
                   "--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:0", env=env)
    assert r.returncode != 0
    assert "listening on" not in r.stderr
    assert "shutdown_grace" in r.stderr, r.stderr
