"""OpenTelemetry: traces and metrics exported over OTLP/HTTP to a real OTLP receiver.

The receiver is tests/otlp-receiver: the OpenTelemetry Collector's own otlpreceiver, writing
every batch it accepts as OTLP JSON lines. It is built (or found up to date) by
scripts/build-otlp-receiver.sh.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import boto_client

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def receiver_bin() -> str:
    if os.environ.get("STRAIT_OTLP_RECEIVER"):  # built by scripts/test.sh
        return os.environ["STRAIT_OTLP_RECEIVER"]
    r = subprocess.run(["bash", str(REPO / "scripts" / "build-otlp-receiver.sh")],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"cannot build the OTLP receiver:\n{r.stderr[-3000:]}", pytrace=False)
    return r.stdout.strip().splitlines()[-1]


class Receiver:
    def __init__(self, binary: str, out: Path, log: Path):
        self.out = out
        self.log = log
        self.proc = subprocess.Popen([binary, "-http", "127.0.0.1:0", "-out", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            m = re.search(r"otlp-receiver: http on (127\.0\.0\.1:\d+)", log.read_text())
            if m:
                self.endpoint = f"http://{m.group(1)}"
                return
            assert self.proc.poll() is None, f"receiver exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.05)

    def batches(self, signal_name: str) -> list[dict]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            rec = json.loads(line)
            if rec["signal"] == signal_name:
                out.append(rec["data"])
        return out

    def spans(self) -> list[dict]:
        """Every span received, with its resource attributes under "_resource"."""
        out = []
        for b in self.batches("traces"):
            for rs in b.get("resourceSpans", []):
                res = attrs(rs.get("resource", {}).get("attributes", []))
                for ss in rs.get("scopeSpans", []):
                    for sp in ss.get("spans", []):
                        out.append({**sp, "_resource": res, "_attrs": attrs(sp.get("attributes", []))})
        return out

    def metrics(self) -> dict[str, list[dict]]:
        """Metric name → every data point received (with "_attrs" and "_resource")."""
        out: dict[str, list[dict]] = {}
        for b in self.batches("metrics"):
            for rm in b.get("resourceMetrics", []):
                res = attrs(rm.get("resource", {}).get("attributes", []))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        kind = next(k for k in ("sum", "gauge", "histogram") if k in m)
                        for dp in m[kind].get("dataPoints", []):
                            out.setdefault(m["name"], []).append(
                                {**dp, "_kind": kind, "_unit": m.get("unit"), "_resource": res,
                                 "_attrs": attrs(dp.get("attributes", []))})
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        return self.proc.returncode


def attrs(kvs: list[dict]) -> dict:
    """OTLP JSON attributes → plain dict (64-bit ints arrive as strings)."""
    out = {}
    for kv in kvs:
        v = kv.get("value", {})
        if "stringValue" in v:
            out[kv["key"]] = v["stringValue"]
        elif "intValue" in v:
            out[kv["key"]] = int(v["intValue"])
        elif "boolValue" in v:
            out[kv["key"]] = v["boolValue"]
        elif "doubleValue" in v:
            out[kv["key"]] = v["doubleValue"]
        else:
            out[kv["key"]] = v
    return out


def wait_for(pred, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.1)


@pytest.fixture
def receiver(receiver_bin, tmp_path):
    r = Receiver(receiver_bin, tmp_path / "otlp.jsonl", tmp_path / "receiver.log")
    yield r
    assert r.stop() == 0, r.log.read_text()[-2000:]


OTEL_ENV = {
    "OTEL_SERVICE_NAME": "strait-e2e",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_METRIC_EXPORT_INTERVAL": "300",
}


def request_span(spans: list[dict], request_id: str) -> dict | None:
    found = [s for s in spans if s["_attrs"].get("aws.request_id") == request_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def children(spans: list[dict], parent: dict) -> list[dict]:
    """Descendants of `parent` (fs spans may nest, e.g. fs.xattr.get inside fs.open)."""
    out, frontier = [], {parent["spanId"]}
    while frontier:
        level = [s for s in spans if s.get("parentSpanId") in frontier and s["traceId"] == parent["traceId"]]
        out += level
        frontier = {s["spanId"] for s in level}
    return out


def test_request_spans_with_fs_and_index_children_reach_the_receiver(spawn_server, receiver):
    s = spawn_server(extra_env={**OTEL_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    c = boto_client(s)
    c.create_bucket(Bucket="otel")
    body = b"x" * (4 << 20)
    put = c.put_object(Bucket="otel", Key="dir/obj.bin", Body=body)
    put_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    got = c.get_object(Bucket="otel", Key="dir/obj.bin")
    assert got["Body"].read() == body
    get_id = got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    with pytest.raises(c.exceptions.NoSuchKey) as missing:
        c.get_object(Bucket="otel", Key="nope")
    miss_id = missing.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    mpu = c.create_multipart_upload(Bucket="otel", Key="mp")
    mpu_id = mpu["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]

    spans = wait_for(lambda: (sp := receiver.spans()) and all(request_span(sp, i) for i in
                                                              (put_id, get_id, miss_id, mpu_id)) and sp,
                     "the request spans")

    p = request_span(spans, put_id)
    a = p["_attrs"]
    assert p["name"] == "PutObject" and p["kind"] == 2, p  # SPAN_KIND_SERVER
    assert p["_resource"]["service.name"] == "strait-e2e"
    assert a["rpc.method"] == "PutObject" and a["rpc.system"] == "aws-api"
    assert a["aws.s3.bucket"] == "otel" and a["aws.s3.key"] == "dir/obj.bin"
    assert a["strait.principal"] == s.access_key and a["strait.tenant"] == "default"
    assert a["http.request.method"] == "PUT" and a["http.response.status_code"] == 200
    assert a["http.request.body.size"] == len(body)
    assert a["client.address"] == "127.0.0.1"
    assert "aws.s3.error_code" not in a
    names = {k["name"] for k in children(spans, p)}
    # A new key: its unnamed staging file is published by a link (an overwrite renames).
    for want in ("fs.create", "fs.write", "fs.xattr.set", "fs.fsync", "fs.link", "index.write"):
        assert want in names, (want, names)
    write = next(k for k in children(spans, p) if k["name"] == "fs.write")
    assert write["_attrs"]["bytes"] == len(body)
    assert write["_attrs"]["busy_ns"] > 0  # the time spent writing, apart from waiting for the client

    g = request_span(spans, get_id)
    assert g["name"] == "GetObject"
    assert g["_attrs"]["http.response.body.size"] == len(body) and "strait.body_aborted" not in g["_attrs"]
    gnames = {k["name"] for k in children(spans, g)}
    # The body is read (fs.read) or, on plaintext HTTP/1.1, sent by sendfile (fs.sendfile).
    assert {"fs.open", "fs.xattr.get"} <= gnames and gnames & {"fs.read", "fs.sendfile"}, gnames
    # The span covers the body, not only the response head: it ends after the body was read
    # (copied path) or after its last region was queued for sendfile (zero-copy path, where the
    # kernel may still be sending when the span ends; the fs.sendfile span times the send).
    read = next(k for k in children(spans, g) if k["name"] in ("fs.read", "fs.sendfile"))
    assert read["_attrs"]["busy_ns"] > 0
    if read["name"] == "fs.read":
        # (busy_ns comes from a monotonic clock, the span times from the wall clock: allow 50 us.)
        assert int(g["endTimeUnixNano"]) + 50_000 >= int(read["startTimeUnixNano"]) + read["_attrs"]["busy_ns"]
    else:
        assert int(g["endTimeUnixNano"]) > int(read["startTimeUnixNano"])
        assert int(read["endTimeUnixNano"]) - int(read["startTimeUnixNano"]) >= read["_attrs"]["busy_ns"] - 50_000

    m = request_span(spans, miss_id)
    assert m["_attrs"]["http.response.status_code"] == 404
    assert m["_attrs"]["aws.s3.error_code"] == "NoSuchKey" and m["_attrs"]["error.type"] == "NoSuchKey"
    assert m.get("status", {}).get("code") != 2, "a client error is not a server span error"

    u = request_span(spans, mpu_id)
    assert u["name"] == "CreateMultipartUpload"
    assert "index.write" in {k["name"] for k in children(spans, u)}


def test_metrics_reach_the_receiver(spawn_server, receiver):
    s = spawn_server(extra_env={**OTEL_ENV, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receiver.endpoint + "/v1/metrics"})
    c = boto_client(s)
    c.create_bucket(Bucket="otelm")
    c.put_object(Bucket="otelm", Key="k", Body=b"12345")
    assert c.get_object(Bucket="otelm", Key="k")["Body"].read() == b"12345"
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="otelm", Key="missing")

    def ready():
        ms = receiver.metrics()
        reqs = ms.get("strait.requests", [])
        return ms if any(dp["_attrs"] == {"operation": "GetObject", "status": 404} for dp in reqs) else None

    ms = wait_for(ready, "strait.requests for the 404")
    last = lambda name, pred=lambda dp: True: [dp for dp in ms[name] if pred(dp)][-1]  # noqa: E731
    put = last("strait.requests", lambda dp: dp["_attrs"] == {"operation": "PutObject", "status": 200})
    assert int(put["asInt"]) == 1 and put["_kind"] == "sum" and put["_resource"]["service.name"] == "strait-e2e"
    err = last("strait.errors", lambda dp: dp["_attrs"] == {"code": "NoSuchKey"})
    assert int(err["asInt"]) == 1
    lat = last("strait.request.duration", lambda dp: dp["_attrs"] == {"operation": "GetObject"})
    assert lat["_kind"] == "histogram" and lat["_unit"] == "s" and int(lat["count"]) == 2
    assert int(last("strait.received.bytes")["asInt"]) >= 5
    assert int(last("strait.sent.bytes")["asInt"]) >= 5
    assert "strait.requests.in_flight" in ms
    depth = last("strait.io.queue_depth")
    assert depth["_kind"] == "gauge" and int(depth["asInt"]) >= 0
    # Traces were not asked for: only the metrics endpoint was set.
    assert receiver.batches("traces") == []


def test_spans_are_flushed_at_shutdown(spawn_server, receiver):
    """A span still in the batch when SIGTERM arrives is exported before the process exits."""
    s = spawn_server(extra_env={"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_TRACES_EXPORTER": "otlp",
                                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint + "/v1/traces"})
    c = boto_client(s)
    r = c.list_buckets()
    rid = r["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    time.sleep(0.5)
    assert receiver.spans() == []
    assert s.stop() == 0
    sp = request_span(receiver.spans(), rid)
    assert sp is not None and sp["name"] == "ListBuckets"
    assert sp["_resource"]["service.name"] == "strait"


@pytest.mark.parametrize("env, message", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: only http/protobuf is supported"),
    ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER=jaeger: expected otlp or none"),
])
def test_unsupported_otel_settings_are_refused_at_start(spawn_server, env, message):
    with pytest.raises(RuntimeError) as e:
        spawn_server(extra_env=env)
    assert message in str(e.value)
