"""Operator-facing behaviour: access log (JSON lines carrying the client's request id),
Prometheus metrics and health endpoints on the admin listener."""

import json
import re
import time
import urllib.request

import pytest

from helpers import boto_client, s3_error, unique

ADMIN_RE = re.compile(r"strait: admin on http://([0-9.]+):(\d+)")


def admin_url(server) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = ADMIN_RE.search(server.log_text())
        if m:
            return f"http://{m.group(1)}:{m.group(2)}"
        time.sleep(0.05)
    raise AssertionError("no admin listening line:\n" + server.log_text()[-2000:])


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def ops_server(spawn_server, tmp_path):
    log = tmp_path / "access.jsonl"
    s = spawn_server(extra_args=["--access-log", str(log), "--admin-listen", "127.0.0.1:0"])
    return s, log


def read_log(path, want: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_access_log_carries_request_id_operation_and_error_code(ops_server):
    server, log = ops_server
    s3 = boto_client(server)
    b = unique("acclog")
    r1 = s3.create_bucket(Bucket=b)
    r2 = s3.put_object(Bucket=b, Key="k", Body=b"hello")
    with s3_error(404, "NoSuchKey") as ei:
        s3.get_object(Bucket=b, Key="missing")
    ids = [r1["ResponseMetadata"]["RequestId"], r2["ResponseMetadata"]["RequestId"],
           ei.value.response["ResponseMetadata"]["RequestId"]]
    assert all(ids) and len(set(ids)) == 3, ids
    lines = read_log(log, 3)
    by_id = {ln["request_id"]: ln for ln in lines}
    assert by_id[ids[0]]["operation"] == "CreateBucket" and by_id[ids[0]]["status"] == 200
    put = by_id[ids[1]]
    assert (put["operation"], put["method"], put["status"], put["bytes_in"]) == ("PutObject", "PUT", 200, 5)
    assert put["principal"] == server.access_key
    assert put["remote"].startswith("127.0.0.1:")
    miss = by_id[ids[2]]
    assert (miss["operation"], miss["status"], miss["error_code"]) == ("GetObject", 404, "NoSuchKey")
    assert miss["path"] == f"/{b}/missing"
    # A HEAD declares the object's length but sends nothing; a GET sends it.
    h = s3.head_object(Bucket=b, Key="k")["ResponseMetadata"]["RequestId"]
    g = s3.get_object(Bucket=b, Key="k")
    g["Body"].read()
    by_id = {ln["request_id"]: ln for ln in read_log(log, 5)}
    assert by_id[h]["bytes_out"] == 0 and by_id[h]["method"] == "HEAD"
    assert by_id[g["ResponseMetadata"]["RequestId"]]["bytes_out"] == 5
    # A listing streams its XML without a Content-Length: the bytes actually sent are logged.
    lst = s3.list_objects_v2(Bucket=b)["ResponseMetadata"]
    line = {ln["request_id"]: ln for ln in read_log(log, 6)}[lst["RequestId"]]
    assert line["operation"] == "ListObjectsV2" and line["bytes_out"] == int(lst["HTTPHeaders"].get(
        "content-length", line["bytes_out"])) and line["bytes_out"] > 100


def test_error_body_carries_the_same_request_id(ops_server):
    server, _ = ops_server
    s3 = boto_client(server)
    with s3_error(404, "NoSuchBucket") as ei:
        s3.list_objects_v2(Bucket=unique("nobucket"))
    resp = ei.value.response
    header_id = resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert resp["ResponseMetadata"]["RequestId"] == header_id  # botocore reads <RequestId> from the body


def test_metrics_count_requests_and_errors(ops_server):
    server, _ = ops_server
    url = admin_url(server)
    s3 = boto_client(server)
    b = unique("metrics")
    s3.create_bucket(Bucket=b)
    for i in range(3):
        s3.put_object(Bucket=b, Key=f"k{i}", Body=b"x" * 10)
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=b, Key="nope")
    status, text = fetch(url + "/metrics")
    assert status == 200
    assert re.search(r'strait_requests_total\{operation="PutObject",status="200"\} 3\b', text), text
    assert re.search(r'strait_errors_total\{code="NoSuchKey"\} 1\b', text), text
    assert re.search(r"strait_received_bytes_total 30\b", text), text
    assert 'strait_request_duration_seconds_bucket{le="+Inf",operation="PutObject"} 3' in text
    assert re.search(r"strait_requests_in_flight 0\b", text), text


def test_health_endpoints(ops_server):
    server, _ = ops_server
    url = admin_url(server)
    assert fetch(url + "/health/live") == (200, "ok\n")
    assert fetch(url + "/health/ready")[0] == 200
    assert fetch(url + "/nope")[0] == 404
    # Readiness follows the state of the storage: remove the served root and it turns 503.
    import shutil
    shutil.rmtree(server.root)
    status, body = fetch(url + "/health/ready")
    assert status == 503 and "root" in body, body


def test_refusals_before_signature_checks_are_logged_and_counted(ops_server):
    server, log = ops_server
    url = admin_url(server)
    req = urllib.request.Request(f"{server.url}/", headers={"Authorization": "AWS AKIDEXAMPLE:c2lnbmF0dXJl"})
    status, body = fetch_req(req)
    assert status == 400 and "<Code>InvalidRequest</Code>" in body, body
    lines = read_log(log, 1)
    assert any(ln["status"] == 400 and ln["error_code"] == "InvalidRequest" for ln in lines), lines
    _, text = fetch(url + "/metrics")
    assert re.search(r'strait_errors_total\{code="InvalidRequest"\} 1\b', text), text


def fetch_req(req) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
