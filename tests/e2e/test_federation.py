"""OIDC federation: STS AssumeRoleWithWebIdentity and GetCallerIdentity on the S3 port, against a
real OpenID provider (panva/node-oidc-provider, tests/oidc-provider) started here.

Valid tokens come from the provider's real authorization-code flow (login, consent, token
endpoint). The negative cases are tokens the provider would never issue, signed with the
provider's own key (handed to it by this test) or with none: alg none, HS256 keyed with the
provider's public key, wrong iss, wrong aud, expired, not yet valid, unknown kid, a tampered
signature; and a session used after its role's sessions were revoked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from helpers import boto_client, error_of
from test_tenants import admin_url, allow, api, ok, tenant, user_with_key

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="POSIX identities need root")

REDIRECT = "http://127.0.0.1:9/cb"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def int_b64u(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def private_jwk(key, kid):
    pn, pub = key.private_numbers(), key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": int_b64u(pub.n), "e": int_b64u(pub.e),
            "d": int_b64u(pn.d), "p": int_b64u(pn.p), "q": int_b64u(pn.q), "dp": int_b64u(pn.dmp1),
            "dq": int_b64u(pn.dmq1), "qi": int_b64u(pn.iqmp)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Idp:
    """The OpenID provider process and what the tests do with it."""

    def __init__(self, tmp: Path):
        d = os.environ.get("STRAIT_OIDC_PROVIDER", os.path.expanduser("~/.cache/strait/oidc-provider"))
        self.dir = Path(d)
        if not (self.dir / "node_modules" / "oidc-provider").is_dir():
            pytest.fail(f"the OpenID provider is not installed in {self.dir} (scripts/install-oidc-provider.sh)",
                        pytrace=False)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "oidc-provider.log"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"
        self.proc = None

    def start(self):
        env = {**os.environ, "OIDC_JWKS": json.dumps({"keys": [private_jwk(self.key, self.kid)]}),
               "OIDC_GROUPS": json.dumps({"ann": ["climate-readers", "staff"], "bob": ["staff"]})}
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(["node", str(self.dir / "server.mjs"), str(self.port)], cwd=self.dir,
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while "listening on" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("oidc-provider did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def login(self, user: str, client_id: str = "strait") -> str:
        """A real ID token: the authorization-code flow with the provider's login and consent pages."""
        s = requests.Session()
        r = s.get(f"{self.issuer}/auth", params={
            "client_id": client_id, "response_type": "code", "scope": "openid email groups",
            "redirect_uri": REDIRECT, "nonce": os.urandom(8).hex(), "state": "st"}, allow_redirects=True, timeout=10)
        code = None
        for _ in range(8):
            m = re.search(r'<form[^>]*action="([^"]+)"', r.text)
            assert m, f"no form at {r.url}: {r.text[:500]}"
            prompt = re.search(r'name="prompt" value="([^"]+)"', r.text)
            data = {"prompt": prompt.group(1) if prompt else "consent"}
            if data["prompt"] == "login":
                data.update(login=user, password="any")
            r = s.post(urljoin(r.url, m.group(1)), data=data, allow_redirects=False, timeout=10)
            while r.status_code in (302, 303):
                loc = urljoin(r.url, r.headers["Location"])
                if loc.startswith(REDIRECT):
                    code = parse_qs(urlparse(loc).query)["code"][0]
                    break
                r = s.get(loc, allow_redirects=False, timeout=10)
            if code:
                break
        assert code, "the flow did not reach the redirect URI"
        t = requests.post(f"{self.issuer}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client_id, "client_secret": f"{client_id}-secret"}, timeout=10)
        assert t.status_code == 200, t.text
        return t.json()["id_token"]

    def sign(self, claims: dict, kid: str | None = None, alg: str = "RS256", key=None, hmac_key: bytes | None = None):
        """A token signed with the provider's key (or another), for the negative cases."""
        header = {"alg": alg, "typ": "JWT"}
        if kid is not False:
            header["kid"] = kid or self.kid
        signing = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}".encode()
        if alg == "none":
            return signing.decode() + "."
        if alg == "HS256":
            return signing.decode() + "." + b64u(hmac.new(hmac_key, signing, hashlib.sha256).digest())
        sig = (key or self.key).sign(signing, padding.PKCS1v15(), hashes.SHA256())
        return signing.decode() + "." + b64u(sig)

    def claims(self, **over):
        now = int(time.time())
        c = {"iss": self.issuer, "sub": "ann", "aud": "strait", "iat": now, "exp": now + 300,
             "email": "ann@example.org", "groups": ["climate-readers"]}
        c.update(over)
        return c


@pytest.fixture
def idp(tmp_path):
    p = Idp(tmp_path).start()
    yield p
    p.stop()


@pytest.fixture
def fed(spawn_server, tmp_path, idp):
    """A gateway trusting the provider; tenant climate with a read-only role for climate-readers."""
    log = tmp_path / "audit.jsonl"
    s = spawn_server(extra_args=("--admin-listen", "127.0.0.1:0", "--audit-log", str(log)))
    s.audit = log
    base = admin_url(s)
    ok(api(base, "PUT", "/admin/oidc/idp", {"issuer": idp.issuer, "audiences": ["strait"]}))
    t = tenant(base, "climate", 6101)
    acct = t["account_id"]
    ok(api(base, "PUT", "/admin/tenants/climate/policies/rw", allow(
        {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::climate-*", "arn:aws:s3:::climate-*/*"]})))
    ok(api(base, "PUT", "/admin/tenants/climate/policies/read", allow(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::climate-*", "arn:aws:s3:::climate-*/*"]})))
    ok(api(base, "PUT", "/admin/tenants/climate/roles/reader", {
        "policies": ["read"], "max_session_secs": 3600,
        "trust_policy": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{acct}:oidc-provider/idp"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"idp:aud": "strait"},
                          "ForAnyValue:StringEquals": {"idp:groups": "climate-readers"}}}]}}))
    k = user_with_key(base, "climate", "steward", policies=["rw"])
    owner = boto_client(s, access_key=k[0], secret_key=k[1])
    owner.create_bucket(Bucket="climate-data")
    owner.put_object(Bucket="climate-data", Key="era5/t2m.nc", Body=b"t2m" * 100)
    return s, base, f"arn:aws:iam::{acct}:role/reader", acct


def sts_client(s, **creds):
    return boto3.client("sts", endpoint_url=s.url, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}), **creds)


def assume(s, role, token, **kw):
    return sts_client(s).assume_role_with_web_identity(RoleArn=role, RoleSessionName="job-42",
                                                       WebIdentityToken=token, **kw)


def session_s3(s, c):
    return boto3.client("s3", endpoint_url=s.url, region_name="us-east-1",
                        aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                        aws_session_token=c["SessionToken"],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def sts_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the call succeeded")


def test_a_real_token_buys_a_session_that_works_within_its_role(fed, idp):
    s, base, role, acct = fed
    token = idp.login("ann")
    out = assume(s, role, token, DurationSeconds=900)
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and c["SessionToken"]
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{acct}:assumed-role/reader/job-42"
    assert out["SubjectFromWebIdentityToken"] == "ann" and out["Provider"] == idp.issuer
    left = (c["Expiration"] - __import__("datetime").datetime.now(c["Expiration"].tzinfo)).total_seconds()
    assert 800 < left <= 900
    s3 = session_s3(s, c)
    assert s3.get_object(Bucket="climate-data", Key="era5/t2m.nc")["Body"].read() == b"t2m" * 100
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="climate-data")["Contents"]] == ["era5/t2m.nc"]
    assert error_of(lambda: s3.put_object(Bucket="climate-data", Key="x", Body=b"x")) == ("AccessDenied", 403)
    who = sts_client(s, aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                     aws_session_token=c["SessionToken"]).get_caller_identity()
    assert who["Arn"] == f"arn:aws:sts::{acct}:assumed-role/reader/job-42" and who["Account"] == acct
    root = sts_client(s, aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key).get_caller_identity()
    assert root["Arn"] == "arn:aws:iam::000000000000:root"
    # The session token is part of the credential.
    no_token = boto3.client("s3", endpoint_url=s.url, region_name="us-east-1",
                            aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    assert error_of(lambda: no_token.list_objects_v2(Bucket="climate-data")) == ("InvalidToken", 400)
    # A session policy can only narrow the role.
    narrow = assume(s, role, token, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::climate-data"}]}))
    n3 = session_s3(s, narrow["Credentials"])
    n3.list_objects_v2(Bucket="climate-data")
    assert error_of(lambda: n3.get_object(Bucket="climate-data", Key="era5/t2m.nc")) == ("AccessDenied", 403)
    # The session runs as the tenant's POSIX identity: a file its uid cannot read is refused.
    f = s.root / "climate-data" / "era5" / "t2m.nc"
    os.chown(f, 0, 0)
    os.chmod(f, 0o600)
    assert error_of(lambda: s3.get_object(Bucket="climate-data", Key="era5/t2m.nc")) == ("AccessDenied", 403)


def test_trust_policy_decides_who_may_assume(fed, idp):
    s, base, role, acct = fed
    # bob is not in climate-readers.
    assert sts_code(lambda: assume(s, role, idp.login("bob"))) == ("AccessDenied", 403)
    # A real token issued to another client: wrong audience.
    code, status = sts_code(lambda: assume(s, role, idp.login("ann", client_id="other-app")))
    assert (code, status) == ("InvalidIdentityToken", 400)
    # No such role, or a role in no tenant.
    assert sts_code(lambda: assume(s, role + "x", idp.login("ann")))[1] == 403
    assert sts_code(lambda: assume(s, "arn:aws:iam::999999999999:role/reader", idp.login("ann")))[1] == 403
    assert sts_code(lambda: assume(s, "arn:aws:iam::123:role/reader", idp.login("ann")))[1] == 400
    # The provider, deleted: its tokens buy nothing.
    ok(api(base, "DELETE", "/admin/oidc/idp"))
    assert sts_code(lambda: assume(s, role, idp.login("ann"))) == ("InvalidIdentityToken", 400)


def test_forged_and_broken_tokens_are_refused(fed, idp):
    s, base, role, acct = fed
    assume(s, role, idp.sign(idp.claims()))  # sanity: a well-formed token signed with the key works
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = idp.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    good = idp.sign(idp.claims())
    head, body, sig = good.split(".")
    tampered_body = b64u(json.dumps(idp.claims(sub="mallory", groups=["climate-readers"])).encode())
    now = int(time.time())
    cases = {
        "alg none": idp.sign(idp.claims(), alg="none"),
        "HS256 keyed with the public key": idp.sign(idp.claims(), alg="HS256", hmac_key=public_pem),
        "wrong iss": idp.sign(idp.claims(iss="http://127.0.0.1:1")),
        "wrong aud": idp.sign(idp.claims(aud="someone-else")),
        "expired": idp.sign(idp.claims(iat=now - 7200, exp=now - 3600)),
        "not yet valid": idp.sign(idp.claims(nbf=now + 3600)),
        "unknown kid": idp.sign(idp.claims(), kid="k-unknown", key=other_key),
        "other key, known kid": idp.sign(idp.claims(), key=other_key),
        "tampered payload": f"{head}.{tampered_body}.{sig}",
        "not a JWT": "garbage",
    }
    got = {name: sts_code(lambda t=t: assume(s, role, t)) for name, t in cases.items()}
    want_expired = ("ExpiredTokenException", 400)
    for name, (code, status) in got.items():
        if name == "expired":
            assert (code, status) == want_expired, got
        else:
            assert (code, status) == ("InvalidIdentityToken", 400), (name, got)
    # None of them produced credentials.
    keys = ok(api(base, "GET", "/admin/tenants/climate/users/steward/keys"))["keys"]
    assert len(keys) == 1


def test_revoked_sessions_cannot_be_replayed(fed, idp):
    s, base, role, acct = fed
    c = assume(s, role, idp.login("ann"))["Credentials"]
    s3 = session_s3(s, c)
    s3.list_objects_v2(Bucket="climate-data")
    ok(api(base, "POST", "/admin/tenants/climate/roles/reader/revoke-sessions"))
    assert error_of(lambda: s3.list_objects_v2(Bucket="climate-data")) == ("AccessDenied", 403)
    assert error_of(lambda: s3.get_object(Bucket="climate-data", Key="era5/t2m.nc"))[1] == 403
    time.sleep(1.1)
    # A new token after the revocation works again; the old session stays dead.
    fresh = session_s3(s, assume(s, role, idp.login("ann"))["Credentials"])
    fresh.list_objects_v2(Bucket="climate-data")
    assert error_of(lambda: s3.list_objects_v2(Bucket="climate-data")) == ("AccessDenied", 403)
    # Deleting the role ends every session of it.
    ok(api(base, "DELETE", "/admin/tenants/climate/roles/reader"))
    assert error_of(lambda: fresh.list_objects_v2(Bucket="climate-data")) == ("InvalidAccessKeyId", 403)
    audit = [json.loads(x) for x in s.audit.read_text().splitlines()]
    assert any(r.get("operation") == "iam:RevokeSessions" for r in audit)


def test_provider_key_rotation_is_followed(fed, idp, tmp_path):
    s, base, role, acct = fed
    assume(s, role, idp.login("ann"))  # the gateway now holds the JWKS with k1
    idp.stop()
    idp.key, idp.kid = rsa.generate_private_key(public_exponent=65537, key_size=2048), "k2"
    idp.start()
    time.sleep(5.5)  # the gateway fetches a provider's keys at most every 5 s
    out = assume(s, role, idp.login("ann"))
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    # Tokens signed with the retired key no longer verify.
    old = Idp.sign(idp, idp.claims(), kid="k1", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert sts_code(lambda: assume(s, role, old)) == ("InvalidIdentityToken", 400)


def test_sts_answers_what_it_does_not_implement(fed):
    s, base, role, acct = fed
    r = requests.post(s.url + "/", data={"Action": "AssumeRole", "Version": "2011-06-15"}, timeout=10)
    assert r.status_code == 400 and "<Code>InvalidAction</Code>" in r.text
    r = requests.post(s.url + "/", data={"Action": "GetCallerIdentity", "Version": "2011-06-15"}, timeout=10)
    assert r.status_code == 403 and "MissingAuthenticationToken" in r.text
    assert sts_code(lambda: sts_client(s).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="xy", WebIdentityToken="a.b.c"))[1] == 400
