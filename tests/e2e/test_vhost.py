"""Virtual-hosted-style addressing (`--domain`): raw signed requests and boto3, next to path style.

The server listens on 127.0.0.1; the raw requests connect there and send (and sign) a
`Host: <bucket>.s3.strait.test[:PORT]` header. boto3 resolves `*.strait.test` through a patched
`socket.getaddrinfo` (scoped to one test by monkeypatch), so /etc/hosts is never touched.
"""

from __future__ import annotations

import os
import socket

import pytest

from helpers import Raw, Server, boto_client, md5_hex, s3_error, unique

DOMAIN = "s3.strait.test"


@pytest.fixture(scope="module")
def vserver(strait_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("strait-vhost")
    s = Server(binary=strait_bin, root=d / "root", state_dir=d / "state", log_path=d / "strait.log",
               extra_args=("--domain", DOMAIN)).start()
    yield s
    s.stop()
    assert not s.panics(), s.panics()


@pytest.fixture(scope="module")
def vraw(vserver) -> Raw:
    return Raw(vserver)


def vhost(server: Server, bucket: str, with_port: bool = True) -> str:
    return f"{bucket}.{DOMAIN}:{server.port}" if with_port else f"{bucket}.{DOMAIN}"


def list_keys(resp) -> list[str]:
    root = resp.xml
    assert root.tag == "ListBucketResult", resp
    return [c.findtext("Key") for c in root.findall("Contents")]


@pytest.mark.parametrize("with_port", [True, False], ids=["host-with-port", "host-without-port"])
def test_vhost_raw_crud(vserver, vraw, with_port):
    bucket = unique("vh")
    host = {"Host": vhost(vserver, bucket, with_port)}
    r = vraw.put("/", headers=host)
    assert r.status == 200, r
    assert (vserver.root / bucket).is_dir()

    body = os.urandom(4096)
    r = vraw.put("/dir/obj.bin", body=body, headers=host)
    assert r.status == 200, r
    assert r.header("ETag") == f'"{md5_hex(body)}"'
    assert (vserver.root / bucket / "dir" / "obj.bin").read_bytes() == body

    r = vraw.get("/dir/obj.bin", headers=host)
    assert r.status == 200, r
    assert r.body == body

    r = vraw.get("/", query={"list-type": "2"}, headers=host)
    assert r.status == 200, r
    assert list_keys(r) == ["dir/obj.bin"]
    assert r.xml.findtext("Name") == bucket


def test_vhost_raw_missing_key_and_bucket(vserver, vraw):
    bucket = unique("vh")
    host = {"Host": vhost(vserver, bucket, with_port=False)}
    r = vraw.get("/nope", headers=host)
    assert r.status == 404, r
    assert r.code == "NoSuchBucket", r
    assert vraw.put("/", headers=host).status == 200
    r = vraw.get("/nope", headers=host)
    assert r.status == 404, r
    assert r.code == "NoSuchKey", r


def test_vhost_signature_covers_host(vserver, vraw):
    """A request signed for one bucket's host and sent with another's is refused."""
    a, b = unique("vha"), unique("vhb")
    for name in (a, b):
        assert vraw.put("/", headers={"Host": vhost(vserver, name, with_port=False)}).status == 200
    target, hdrs, _ = vraw.sign("GET", "/", {"list-type": "2"}, {"Host": vhost(vserver, a, with_port=False)})
    hdrs["Host"] = vhost(vserver, b, with_port=False)
    r = vraw.send("GET", target, hdrs)
    assert r.status == 403, r
    assert r.code == "SignatureDoesNotMatch", r


def test_path_style_same_server(vserver, vraw):
    """Path style keeps working next to virtual-hosted style, on the same objects."""
    bucket = unique("ps")
    s3 = boto_client(vserver)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"path style")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"path style"
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    host = {"Host": vhost(vserver, bucket, with_port=False)}
    r = vraw.get("/k", headers=host)
    assert r.status == 200, r
    assert r.body == b"path style"
    r = vraw.put("/v", body=b"virtual", headers=host)
    assert r.status == 200, r
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"virtual"


@pytest.mark.parametrize("host", ["{domain}:{port}", "{domain}", "localhost:{port}", "localhost"],
                         ids=["domain-with-port", "domain", "localhost-with-port", "localhost"])
def test_path_style_named_host(vserver, vraw, host):
    """Path style through a host name (the base domain itself, or localhost), not an IP."""
    host = host.format(domain=DOMAIN, port=vserver.port)
    bucket = unique("pn")
    r = vraw.put(f"/{bucket}", headers={"Host": host})
    assert r.status == 200, r
    r = vraw.put(f"/{bucket}/x/y", body=b"named host", headers={"Host": host})
    assert r.status == 200, r
    r = vraw.get(f"/{bucket}/x/y", headers={"Host": host})
    assert r.status == 200, r
    assert r.body == b"named host"
    r = vraw.get(f"/{bucket}", query={"list-type": "2"}, headers={"Host": host})
    assert r.status == 200, r
    assert list_keys(r) == ["x/y"]


@pytest.fixture
def resolve_test_domain(monkeypatch):
    """Resolve every name under strait.test to 127.0.0.1, in this process, for one test."""
    real = socket.getaddrinfo

    def fake(host, *args, **kw):
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_vhost_boto3(vserver, resolve_test_domain):
    from botocore.config import Config
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=f"http://{DOMAIN}:{vserver.port}", region_name="us-east-1",
        aws_access_key_id=vserver.access_key, aws_secret_access_key=vserver.secret_key,
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=60),
    )
    sent_hosts: list[str] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: sent_hosts.append(request.url))

    bucket = unique("vb")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(10_000)
    put = s3.put_object(Bucket=bucket, Key="a/b.bin", Body=body)
    assert put["ETag"] == f'"{md5_hex(body)}"'
    assert s3.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [c["Key"] for c in listed["Contents"]] == ["a/b.bin"]
    with s3_error(404, "NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="missing")
    # Every request really went virtual-hosted style.
    assert sent_hosts and all(u.startswith(f"http://{bucket}.{DOMAIN}:{vserver.port}/") for u in sent_hosts), \
        sent_hosts
    assert (vserver.root / bucket / "a" / "b.bin").read_bytes() == body
