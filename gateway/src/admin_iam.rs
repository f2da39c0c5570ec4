//! The identity administration API on the admin listener (JSON), under `/admin/tenants`:
//!
//! | method and path | action (for a tenant's user) |
//! |---|---|
//! | `GET /admin/tenants` | administrator only |
//! | `PUT /admin/tenants/{t}` `{"uid", "gid", "groups"?, "account_id"?, "policies"?}` | administrator only |
//! | `GET /admin/tenants/{t}` | `iam:GetAccountSummary` |
//! | `DELETE /admin/tenants/{t}` (with its users, groups, keys, policies) | administrator only |
//! | `GET /admin/tenants/{t}/users` | `iam:ListUsers` |
//! | `PUT /admin/tenants/{t}/users/{u}` `{"groups"?, "policies"?, "tags"?, "posix"?}` | `iam:CreateUser` / `iam:UpdateUser` (`posix`: administrator only) |
//! | `GET`, `DELETE /admin/tenants/{t}/users/{u}` | `iam:GetUser`, `iam:DeleteUser` |
//! | `POST /admin/tenants/{t}/users/{u}/keys` → the secret, once | `iam:CreateAccessKey` |
//! | `GET /admin/tenants/{t}/users/{u}/keys` | `iam:ListAccessKeys` |
//! | `PUT /admin/tenants/{t}/users/{u}/keys/{ak}` `{"status": "Active" \| "Inactive"}` | `iam:UpdateAccessKey` |
//! | `POST /admin/tenants/{t}/users/{u}/keys/{ak}/rotate` → a new key; the old one inactive | `iam:CreateAccessKey` |
//! | `DELETE /admin/tenants/{t}/users/{u}/keys/{ak}` | `iam:DeleteAccessKey` |
//! | `GET /admin/tenants/{t}/groups`, `GET`, `PUT` `{"policies"}`, `DELETE .../groups/{g}` | `iam:ListGroups`, `iam:GetGroup`, `iam:CreateGroup`, `iam:DeleteGroup` |
//! | `GET /admin/tenants/{t}/policies` | `iam:ListPolicies` |
//! | `PUT /admin/tenants/{t}/policies/{p}` (the document) → a new version, in force | `iam:CreatePolicyVersion` |
//! | `GET /admin/tenants/{t}/policies/{p}[?version=N]` | `iam:GetPolicy` |
//! | `GET /admin/tenants/{t}/policies/{p}/versions` | `iam:ListPolicyVersions` |
//! | `GET /admin/tenants/{t}/policies/{p}/diff?from=N&to=M` (unified diff) | `iam:GetPolicyVersion` |
//! | `POST /admin/tenants/{t}/policies/{p}/rollback?version=N` | `iam:SetDefaultPolicyVersion` |
//! | `DELETE /admin/tenants/{t}/policies/{p}` (and detach it everywhere) | `iam:DeletePolicy` |
//! | `GET /admin/tenants/{t}/roles`, `GET`, `DELETE .../roles/{r}` | `iam:ListRoles`, `iam:GetRole`, `iam:DeleteRole` |
//! | `PUT /admin/tenants/{t}/roles/{r}` `{"trust_policy", "policies"?, "max_session_secs"?, "posix"?}` | `iam:CreateRole` / `iam:UpdateRole` (`posix`: administrator only) |
//! | `POST /admin/tenants/{t}/roles/{r}/revoke-sessions` (every session issued so far) | `iam:RevokeSessions` |
//! | `GET /admin/oidc`, `PUT`, `GET`, `DELETE /admin/oidc/{name}` `{"issuer", "audiences", "algorithms"?}` | administrator only |
//!
//! Callers authenticate with `Authorization: Basic` (access key : secret key) or `Bearer`
//! (`STRAIT_ADMIN_TOKEN`). The root credentials and the token are the administrator. A tenant's
//! user may act on its own tenant only, where its identity policies allow the action on the
//! resource (`arn:aws:iam::<account>:user/<name>`, `:group/<name>`, `:policy/<name>`,
//! `:root` for the tenant itself). Every change and every refusal goes to the audit log.

use crate::admin::{error, json_resp, text, Admin, ApiError, Resp};
use crate::iam::{self, Principal};
use base64::Engine;
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use strait_metadata::{GroupRecord, MetaError, PolicyRecord, PolicyVersion, PosixRecord, TenantRecord, UserRecord};

/// Largest identity policy document.
const POLICY_BYTES_MAX: usize = 20 << 10;
/// Versions kept per policy (the oldest that is not in force goes first).
const POLICY_VERSIONS_MAX: usize = 100;

/// Who is calling the admin API.
pub enum AdminCaller {
    /// The administrator: root credentials or the admin token.
    System(String),
    Tenant(Box<Principal>),
}

impl AdminCaller {
    fn name(&self) -> String {
        match self {
            AdminCaller::System(w) => w.clone(),
            AdminCaller::Tenant(p) => p.arn(),
        }
    }
}

fn db(e: MetaError) -> ApiError {
    match e {
        MetaError::Conflict(m) => error(409, m),
        e => error(500, format!("metadata store: {e}")),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn tenant_json(t: &TenantRecord) -> Value {
    json!({"name": t.name, "account_id": t.account_id, "posix": t.posix, "policies": t.policies,
           "created_unix_s": t.created_unix_s})
}

fn user_json(t: &TenantRecord, u: &UserRecord) -> Value {
    json!({"tenant": u.tenant, "name": u.name, "user_id": u.user_id,
           "arn": format!("arn:aws:iam::{}:user/{}", t.account_id, u.name),
           "groups": u.groups, "policies": u.policies, "tags": u.tags,
           "posix": u.posix.as_ref().unwrap_or(&t.posix), "posix_override": u.posix.is_some(),
           "created_unix_s": u.created_unix_s})
}

fn policy_json(p: &PolicyRecord, version: Option<u32>) -> Result<Value, ApiError> {
    let want = version.unwrap_or(p.default_version);
    let v = p.versions.iter().find(|v| v.version == want).ok_or_else(|| error(404, format!("no version {want}")))?;
    let doc: Value = serde_json::from_str(&v.document).unwrap_or(Value::String(v.document.clone()));
    Ok(json!({"name": p.name, "default_version": p.default_version, "version": v.version,
              "document": doc, "created_unix_s": v.created_unix_s, "author": v.author}))
}

async fn body(req: http::Request<hyper::body::Incoming>, max: usize) -> Result<bytes::Bytes, ApiError> {
    Ok(Limited::new(req.into_body(), max)
        .collect()
        .await
        .map_err(|e| error(413, format!("body: {e} (at most {max} bytes)")))?
        .to_bytes())
}

fn parse<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> Result<T, ApiError> {
    let b = if b.is_empty() { b"{}".as_slice() } else { b };
    serde_json::from_slice(b).map_err(|e| error(400, format!("{what}: {e}")))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    uid: u32,
    gid: u32,
    #[serde(default)]
    groups: Vec<u32>,
    account_id: Option<String>,
    #[serde(default)]
    policies: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    groups: Option<Vec<String>>,
    policies: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
    /// `null` removes the override.
    #[serde(default, with = "double_option")]
    posix: Option<Option<PosixRecord>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    /// The trust policy (a JSON object, or the document as a string).
    trust_policy: Value,
    #[serde(default)]
    policies: Vec<String>,
    max_session_secs: Option<u32>,
    #[serde(default, with = "double_option")]
    posix: Option<Option<PosixRecord>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcBody {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Vec<String>,
}

fn role_json(t: &TenantRecord, r: &strait_metadata::RoleRecord) -> Value {
    let trust: Value = serde_json::from_str(&r.trust_policy).unwrap_or(Value::String(r.trust_policy.clone()));
    json!({"name": r.name, "arn": format!("arn:aws:iam::{}:role/{}", t.account_id, r.name), "role_id": r.role_id,
           "trust_policy": trust, "policies": r.policies, "posix": r.posix.as_ref().unwrap_or(&t.posix),
           "max_session_secs": r.max_session_secs, "revoked_before_unix_s": r.revoked_before_unix_s,
           "created_unix_s": r.created_unix_s})
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    #[serde(default)]
    policies: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    status: String,
}

fn check_posix(p: &PosixRecord) -> Result<(), ApiError> {
    if p.uid == 0 || p.gid == 0 || p.groups.contains(&0) {
        return Err(error(400, "posix: uid, gid and groups must not be 0 (root would bypass the kernel's checks)"));
    }
    if p.groups.len() > 64 {
        return Err(error(400, "posix: at most 64 supplementary groups"));
    }
    Ok(())
}

impl Admin {
    /// Authenticate an admin API request.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<AdminCaller, ApiError> {
        let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let ct = |a: &str, b: &str| bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()));
        if let Some(t) = auth.strip_prefix("Bearer ") {
            if self.token.as_deref().is_some_and(|want| ct(t.trim(), want)) {
                return Ok(AdminCaller::System("admin-token".into()));
            }
            return Err(error(401, "bad bearer token"));
        }
        if let Some(b) = auth.strip_prefix("Basic ") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|r| String::from_utf8(r).ok())
                .ok_or_else(|| error(401, "Basic credentials: expected base64 of ACCESS_KEY:SECRET_KEY"))?;
            let (ak, sk) =
                raw.split_once(':').ok_or_else(|| error(401, "Basic credentials: expected ACCESS_KEY:SECRET_KEY"))?;
            let (rak, rsk) = &self.root_credentials;
            if ct(ak, rak) && ct(sk, rsk) {
                return Ok(AdminCaller::System(format!("arn:aws:iam::{}:root", crate::auth::ACCOUNT_ID)));
            }
            let secret = self.iam.secret(ak).map_err(|e| error(500, e))?;
            if secret.as_deref().is_some_and(|s| ct(sk, s)) {
                // Temporary credentials cannot carry their session token here: not accepted.
                if let Ok(p) = self.iam.principal(ak, None).map_err(|e| error(500, e))? {
                    return Ok(AdminCaller::Tenant(Box::new(p)));
                }
            }
            return Err(error(401, "unknown access key or wrong secret"));
        }
        Err(error(
            401,
            "the identity API needs Authorization: Basic base64(ACCESS_KEY:SECRET_KEY) or Bearer <STRAIT_ADMIN_TOKEN>",
        ))
    }

    fn audit(&self, kind: &str, who: &AdminCaller, action: &str, resource: &str, status: u16, why: Option<&str>) {
        if let Some(a) = &self.audit_log {
            a.write(&crate::access_log::AuditRecord {
                time: crate::access_log::now_rfc3339(),
                kind,
                request_id: "",
                remote: None,
                principal: Some(&who.name()),
                operation: Some(action),
                bucket: None,
                key: None,
                resource: Some(resource),
                status,
                error_code: None,
                decided_by: why,
            });
        }
    }

    /// May `who` do `action` on `resource` of tenant `tenant`? (`system_only`: the
    /// administrator alone.)
    fn authorize(
        &self,
        who: &AdminCaller,
        tenant: &str,
        action: &str,
        resource: &str,
        system_only: bool,
    ) -> Result<(), ApiError> {
        let p = match who {
            AdminCaller::System(_) => return Ok(()),
            AdminCaller::Tenant(p) => p,
        };
        let refuse = |why: String| {
            self.audit("denied", who, action, resource, 403, Some(&why));
            Err(error(403, format!("{action} on {resource}: {why}")))
        };
        if system_only {
            return refuse("only the administrator may do this".into());
        }
        if p.tenant.name != tenant {
            return refuse(format!("{} belongs to tenant {}", p.arn(), p.tenant.name));
        }
        let req = strait_policy::Request {
            principals: vec![p.arn()],
            action: action.to_owned(),
            resource: resource.to_owned(),
            ..Default::default()
        }
        .with("aws:username", p.user.name.clone())
        .with("aws:userid", p.user.user_id.clone())
        .with("aws:PrincipalAccount", p.account().to_owned())
        .with("aws:PrincipalType", "User")
        .with("aws:CurrentTime", crate::access_log::now_rfc3339());
        match p.explain(&req) {
            (strait_policy::Decision::Allow, _) => Ok(()),
            (strait_policy::Decision::ExplicitDeny, why) => {
                refuse(format!("explicit Deny in {}", why.unwrap_or_default()))
            }
            _ => refuse("no identity policy statement allows it".into()),
        }
    }

    /// `POST /admin/simulate` `{"principal": "arn:aws:iam::<account>:user/<name>", "action",
    /// "resource", "context"?: {key: value}}`: the decision the gateway would make for that user,
    /// with the identity policies' and the bucket policy's parts and the statements that decided.
    pub async fn simulate_api(self, req: http::Request<hyper::body::Incoming>) -> Result<Resp, ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Sim {
            principal: String,
            action: String,
            resource: String,
            #[serde(default)]
            context: BTreeMap<String, String>,
        }
        let who = self.authenticate(req.headers())?;
        let b: Sim = parse(&body(req, 64 << 10).await?, "simulation")?;
        let (acct, user) = b
            .principal
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.split_once(":user/"))
            .ok_or_else(|| error(400, "principal: expected arn:aws:iam::<account>:user/<name>"))?;
        let m = &self.iam.meta;
        let t = m
            .tenant_by_account(acct)
            .map_err(db)?
            .ok_or_else(|| error(404, format!("no tenant has account {acct}")))?;
        self.authorize(&who, &t.name, "iam:SimulatePrincipalPolicy", &b.principal, false)?;
        let u = m
            .user(&t.name, user)
            .map_err(db)?
            .ok_or_else(|| error(404, format!("no user {user} in tenant {}", t.name)))?;
        let p = self.iam.user_principal(t, u, "").map_err(|e| error(500, e))?;
        let mut r = strait_policy::Request {
            principals: vec![p.arn(), p.account().to_owned(), format!("arn:aws:iam::{}:root", p.account())],
            action: b.action.clone(),
            resource: b.resource.clone(),
            ..Default::default()
        }
        .with("aws:username", p.user.name.clone())
        .with("aws:userid", p.user.user_id.clone())
        .with("aws:PrincipalAccount", p.account().to_owned())
        .with("aws:PrincipalArn", p.arn())
        .with("aws:PrincipalType", "User");
        for (k, v) in &p.user.tags {
            r = r.with(&format!("aws:PrincipalTag/{k}"), v.clone());
        }
        for (k, v) in &b.context {
            r = r.with(k, v.clone());
        }
        let name = |d: strait_policy::Decision| match d {
            strait_policy::Decision::Allow => "allowed",
            strait_policy::Decision::ExplicitDeny => "explicitDeny",
            strait_policy::Decision::ImplicitDeny => "implicitDeny",
        };
        let (idd, idwhy) = p.explain(&r);
        // For an S3 resource: the bucket's policy and owner, read as the gateway reads them.
        let bucket = b.resource.strip_prefix("arn:aws:s3:::").map(|r| r.split('/').next().unwrap_or("").to_owned());
        let bucket_part = match bucket.filter(|b| !b.is_empty() && !b.contains('*')) {
            None => None,
            Some(bn) => {
                let bn2 = bn.clone();
                let (doc, owner) = self
                    .blocking(move |a| match a.store.bucket(&bn2) {
                        Ok(bk) => Ok((bk.policy().ok().flatten(), Some(bk.owner().ok().flatten()))),
                        Err(_) => Ok((None, None)),
                    })
                    .await?;
                let (bpd, bpwhy) = match doc.as_deref().map(strait_policy::Policy::parse) {
                    Some(Ok(pol)) => {
                        let (d, i) = pol.explain(&r);
                        (d, i.map(|i| pol.label(i)))
                    }
                    _ => (strait_policy::Decision::ImplicitDeny, None),
                };
                Some((bn, bpd, bpwhy, owner))
            }
        };
        use strait_policy::Decision::*;
        let (decision, by, same) = match &bucket_part {
            None => (idd, idwhy.clone().map(|w| format!("identity: {w}")), true),
            Some((bn, bpd, bpwhy, owner)) => {
                let same = owner.as_ref().is_none_or(|o| o.as_deref() == Some(p.account()));
                let bp = |w: &Option<String>| w.clone().map(|w| format!("bucket policy of {bn}: {w}"));
                let id = |w: &Option<String>| w.clone().map(|w| format!("identity: {w}"));
                if idd == ExplicitDeny {
                    (ExplicitDeny, id(&idwhy), same)
                } else if *bpd == ExplicitDeny {
                    (ExplicitDeny, bp(bpwhy), same)
                } else if same && (idd == Allow || *bpd == Allow) {
                    (Allow, id(&idwhy).or(bp(bpwhy)), same)
                } else if !same && idd == Allow && *bpd == Allow {
                    (Allow, id(&idwhy).map(|i| format!("{i}; and {}", bp(bpwhy).unwrap_or_default())), same)
                } else {
                    let why = if same || idd != Allow {
                        "no statement allows it".to_owned()
                    } else {
                        format!("across accounts the bucket policy of {bn} must allow it too")
                    };
                    (ImplicitDeny, Some(why), same)
                }
            }
        };
        let out = json!({
            "decision": name(decision),
            "decided_by": by,
            "identity": {"decision": name(idd), "statement": idwhy},
            "bucket_policy": bucket_part.as_ref().map(|(bn, d, w, owner)| json!({
                "bucket": bn, "decision": name(*d), "statement": w,
                "owner": owner.as_ref().map(|o| o.clone().unwrap_or_else(|| crate::auth::ACCOUNT_ID.to_owned())),
            })),
            "same_account": same,
            "note": "the kernel still checks the file system permissions of the principal's POSIX identity",
        });
        Ok(json_resp(200, &out))
    }

    /// `/admin/oidc[/{name}]`: trusted OpenID providers (administrator only).
    pub async fn oidc_api(self, req: http::Request<hyper::body::Incoming>) -> Result<Resp, ApiError> {
        let who = self.authenticate(req.headers())?;
        let path = req.uri().path().trim_start_matches("/admin/oidc").trim_matches('/').to_owned();
        let m = &self.iam.meta;
        let p_json = |p: &strait_metadata::OidcProviderRecord| json!({"name": p.name, "issuer": p.issuer, "audiences": p.audiences, "algorithms": p.algorithms});
        use http::Method as M;
        let method = req.method().clone();
        let res = format!("oidc-provider/{path}");
        self.authorize(&who, "", "iam:ManageOpenIDConnectProvider", &res, true)?;
        match (method, path.as_str()) {
            (M::GET, "") => {
                let all: Vec<Value> = m.oidc_providers().map_err(db)?.iter().map(p_json).collect();
                Ok(json_resp(200, &json!({ "providers": all })))
            }
            (_, "") => Err(error(405, "method not allowed")),
            (M::PUT, name) => {
                iam::valid_name("provider", name).map_err(|e| error(400, e))?;
                let b: OidcBody = parse(&body(req, 16 << 10).await?, "provider")?;
                let url = b.issuer.parse::<http::Uri>().map_err(|e| error(400, format!("issuer: {e}")))?;
                if !matches!(url.scheme_str(), Some("https") | Some("http")) || url.host().is_none() {
                    return Err(error(400, "issuer: expected an http(s) URL"));
                }
                if b.audiences.is_empty() {
                    return Err(error(400, "audiences: at least one client id"));
                }
                let algorithms = if b.algorithms.is_empty() { vec!["RS256".to_owned()] } else { b.algorithms };
                for a in &algorithms {
                    crate::oidc::parse_alg(a).map_err(|e| error(400, format!("algorithms: {e}")))?;
                }
                let old = m.oidc_provider(name).map_err(db)?;
                let rec = strait_metadata::OidcProviderRecord {
                    v: strait_metadata::FORMAT_VERSION,
                    name: name.to_owned(),
                    issuer: b.issuer.trim_end_matches('/').to_owned(),
                    audiences: b.audiences,
                    algorithms,
                    created_unix_s: old.as_ref().map_or_else(now, |o| o.created_unix_s),
                };
                m.put_oidc_provider(&rec).map_err(db)?;
                self.audit("change", &who, "iam:PutOpenIDConnectProvider", &res, 200, None);
                Ok(json_resp(if old.is_some() { 200 } else { 201 }, &p_json(&rec)))
            }
            (M::GET, name) => {
                let p = m.oidc_provider(name).map_err(db)?.ok_or_else(|| error(404, format!("no provider {name}")))?;
                Ok(json_resp(200, &p_json(&p)))
            }
            (M::DELETE, name) => {
                if !m.delete_oidc_provider(name).map_err(db)? {
                    return Err(error(404, format!("no provider {name}")));
                }
                self.audit("change", &who, "iam:DeleteOpenIDConnectProvider", &res, 200, None);
                Ok(text(204, String::new(), "application/json"))
            }
            _ => Err(error(405, "method not allowed")),
        }
    }

    /// `/admin/tenants...`
    pub async fn tenants_api(self, req: http::Request<hyper::body::Incoming>) -> Result<Resp, ApiError> {
        let who = self.authenticate(req.headers())?;
        let path = req.uri().path().to_owned();
        let query = crate::admin::query_params(req.uri().query());
        let qnum = |name: &str| -> Result<Option<u32>, ApiError> {
            match query.iter().find(|(k, _)| k == name) {
                None => Ok(None),
                Some((_, v)) => v.parse().map(Some).map_err(|_| error(400, format!("{name}: expected a number"))),
            }
        };
        let method = req.method().clone();
        let parts: Vec<String> = path
            .trim_start_matches("/admin/tenants")
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| urlencoding::decode(s).map(|c| c.into_owned()).unwrap_or_default())
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let m = &self.iam.meta;
        use http::Method as M;
        // The tenant named in the path, and its ARN prefix.
        let tenant = |name: &str| -> Result<TenantRecord, ApiError> {
            iam::valid_name("tenant", name).map_err(|e| error(400, e))?;
            m.tenant(name).map_err(db)?.ok_or_else(|| error(404, format!("no tenant {name}")))
        };
        let change = |action: &str, resource: &str| self.audit("change", &who, action, resource, 200, None);
        match (method, parts.as_slice()) {
            (M::GET, []) => {
                self.authorize(&who, "", "iam:ListAccounts", "*", true)?;
                let all: Vec<Value> = m.tenants().map_err(db)?.iter().map(tenant_json).collect();
                Ok(json_resp(200, &json!({ "tenants": all })))
            }
            (M::PUT, [t]) => {
                iam::valid_name("tenant", t).map_err(|e| error(400, e))?;
                let res = format!("tenant/{t}");
                self.authorize(&who, t, "iam:CreateAccount", &res, true)?;
                let b: TenantBody = parse(&body(req, 64 << 10).await?, "tenant")?;
                let posix = PosixRecord { uid: b.uid, gid: b.gid, groups: b.groups };
                check_posix(&posix)?;
                let old = m.tenant(t).map_err(db)?;
                let account_id = match (b.account_id, &old) {
                    (Some(a), _) if a.len() != 12 || !a.bytes().all(|c| c.is_ascii_digit()) => {
                        return Err(error(400, "account_id: expected 12 digits"))
                    }
                    (Some(a), Some(o)) if a != o.account_id => {
                        return Err(error(409, format!("tenant {t} has account {}; it cannot change", o.account_id)))
                    }
                    (Some(a), _) => a,
                    (None, Some(o)) => o.account_id.clone(),
                    (None, None) => iam::random_account_id(),
                };
                if account_id == crate::auth::ACCOUNT_ID {
                    return Err(error(400, "account_id: 000000000000 is the administrator's"));
                }
                for p in &b.policies {
                    iam::valid_name("policy", p).map_err(|e| error(400, e))?;
                }
                let rec = TenantRecord {
                    v: strait_metadata::FORMAT_VERSION,
                    name: (*t).to_owned(),
                    account_id,
                    posix,
                    policies: b.policies,
                    created_unix_s: old.as_ref().map_or_else(now, |o| o.created_unix_s),
                    extra: old.map(|o| o.extra).unwrap_or_default(),
                };
                let created = m.tenant(t).map_err(db)?.is_none();
                m.put_tenant(&rec).map_err(db)?;
                change(if created { "iam:CreateAccount" } else { "iam:UpdateAccount" }, &res);
                tracing::info!(tenant = %t, account = %rec.account_id, "tenant saved");
                Ok(json_resp(if created { 201 } else { 200 }, &tenant_json(&rec)))
            }
            (M::GET, [t]) => {
                let rec = tenant(t)?;
                self.authorize(
                    &who,
                    t,
                    "iam:GetAccountSummary",
                    &format!("arn:aws:iam::{}:root", rec.account_id),
                    false,
                )?;
                Ok(json_resp(200, &tenant_json(&rec)))
            }
            (M::DELETE, [t]) => {
                let res = format!("tenant/{t}");
                self.authorize(&who, t, "iam:DeleteAccount", &res, true)?;
                tenant(t)?;
                m.delete_tenant(t).map_err(db)?;
                change("iam:DeleteAccount", &res);
                Ok(text(204, String::new(), "application/json"))
            }
            (M::GET, [t, "users"]) => {
                let rec = tenant(t)?;
                self.authorize(&who, t, "iam:ListUsers", &format!("arn:aws:iam::{}:user/*", rec.account_id), false)?;
                let all: Vec<Value> = m.users(t).map_err(db)?.iter().map(|u| user_json(&rec, u)).collect();
                Ok(json_resp(200, &json!({ "users": all })))
            }
            (method, [t, "users", u, rest @ ..]) => {
                let rec = tenant(t)?;
                iam::valid_name("user", u).map_err(|e| error(400, e))?;
                let arn = format!("arn:aws:iam::{}:user/{u}", rec.account_id);
                let user = m.user(t, u).map_err(db)?;
                match (method, rest) {
                    (M::GET, []) => {
                        self.authorize(&who, t, "iam:GetUser", &arn, false)?;
                        let user = user.ok_or_else(|| error(404, format!("no user {u}")))?;
                        Ok(json_resp(200, &user_json(&rec, &user)))
                    }
                    (M::PUT, []) => {
                        let action = if user.is_some() { "iam:UpdateUser" } else { "iam:CreateUser" };
                        self.authorize(&who, t, action, &arn, false)?;
                        let b: UserBody = parse(&body(req, 64 << 10).await?, "user")?;
                        let mut next = user.clone().unwrap_or_else(|| UserRecord {
                            v: strait_metadata::FORMAT_VERSION,
                            tenant: (*t).to_owned(),
                            name: (*u).to_owned(),
                            user_id: format!("AIDA{}", iam::random_upper(17)),
                            created_unix_s: now(),
                            ..Default::default()
                        });
                        if let Some(g) = b.groups {
                            for name in &g {
                                if m.group(t, name).map_err(db)?.is_none() {
                                    return Err(error(400, format!("groups: no group {name} in tenant {t}")));
                                }
                            }
                            next.groups = g;
                        }
                        if let Some(p) = b.policies {
                            for name in &p {
                                iam::valid_name("policy", name).map_err(|e| error(400, e))?;
                            }
                            next.policies = p;
                        }
                        if let Some(tags) = b.tags {
                            next.tags = tags;
                        }
                        if let Some(posix) = b.posix {
                            // Which uid a user's files get is the site's decision.
                            self.authorize(&who, t, "strait:SetPosixIdentity", &arn, true)?;
                            if let Some(p) = &posix {
                                check_posix(p)?;
                            }
                            next.posix = posix;
                        }
                        m.put_user(&next).map_err(db)?;
                        change(action, &arn);
                        Ok(json_resp(if user.is_some() { 200 } else { 201 }, &user_json(&rec, &next)))
                    }
                    (M::DELETE, []) => {
                        self.authorize(&who, t, "iam:DeleteUser", &arn, false)?;
                        if !m.delete_user(t, u).map_err(db)? {
                            return Err(error(404, format!("no user {u}")));
                        }
                        change("iam:DeleteUser", &arn);
                        Ok(text(204, String::new(), "application/json"))
                    }
                    (method, ["keys", rest @ ..]) => {
                        if user.is_none() {
                            return Err(error(404, format!("no user {u}")));
                        }
                        let key_json = |k: &strait_metadata::KeyRecord| {
                            json!({"access_key": k.access_key, "status": k.status, "created_unix_s": k.created_unix_s,
                                   "user": k.user, "tenant": k.tenant})
                        };
                        match (method, rest) {
                            (M::GET, []) => {
                                self.authorize(&who, t, "iam:ListAccessKeys", &arn, false)?;
                                let keys: Vec<Value> =
                                    m.keys_of(t, Some(u)).map_err(db)?.iter().map(key_json).collect();
                                Ok(json_resp(200, &json!({ "keys": keys })))
                            }
                            (M::POST, []) => {
                                self.authorize(&who, t, "iam:CreateAccessKey", &arn, false)?;
                                let (k, secret) = self.iam.new_key(t, u);
                                m.put_key(&k).map_err(db)?;
                                change("iam:CreateAccessKey", &format!("{arn} key {}", k.access_key));
                                let mut v = key_json(&k);
                                v["secret_key"] = json!(secret);
                                Ok(json_resp(201, &v))
                            }
                            (method, [ak, rest @ ..]) => {
                                let mut k = m
                                    .key(ak)
                                    .map_err(db)?
                                    .filter(|k| k.tenant == *t && k.user == *u)
                                    .ok_or_else(|| error(404, format!("no key {ak} for user {u}")))?;
                                let res = format!("{arn} key {ak}");
                                match (method, rest) {
                                    (M::PUT, []) => {
                                        self.authorize(&who, t, "iam:UpdateAccessKey", &arn, false)?;
                                        let b: KeyBody = parse(&body(req, 4096).await?, "key")?;
                                        if b.status != "Active" && b.status != "Inactive" {
                                            return Err(error(400, "status: expected Active or Inactive"));
                                        }
                                        k.status = b.status;
                                        m.put_key(&k).map_err(db)?;
                                        change("iam:UpdateAccessKey", &res);
                                        Ok(json_resp(200, &key_json(&k)))
                                    }
                                    (M::POST, ["rotate"]) => {
                                        self.authorize(&who, t, "iam:CreateAccessKey", &arn, false)?;
                                        self.authorize(&who, t, "iam:UpdateAccessKey", &arn, false)?;
                                        let (new, secret) = self.iam.new_key(t, u);
                                        k.status = "Inactive".into();
                                        m.replace_key(&k, &new).map_err(db)?;
                                        change("iam:RotateAccessKey", &res);
                                        let mut v = key_json(&new);
                                        v["secret_key"] = json!(secret);
                                        v["replaces"] = json!(k.access_key);
                                        Ok(json_resp(201, &v))
                                    }
                                    (M::DELETE, []) => {
                                        self.authorize(&who, t, "iam:DeleteAccessKey", &arn, false)?;
                                        m.delete_key(ak).map_err(db)?;
                                        change("iam:DeleteAccessKey", &res);
                                        Ok(text(204, String::new(), "application/json"))
                                    }
                                    _ => Err(error(405, "method not allowed")),
                                }
                            }
                            _ => Err(error(405, "method not allowed")),
                        }
                    }
                    _ => Err(error(405, "method not allowed")),
                }
            }
            (M::GET, [t, "groups"]) => {
                let rec = tenant(t)?;
                self.authorize(&who, t, "iam:ListGroups", &format!("arn:aws:iam::{}:group/*", rec.account_id), false)?;
                let all: Vec<Value> = m
                    .groups(t)
                    .map_err(db)?
                    .iter()
                    .map(|g| json!({"name": g.name, "policies": g.policies, "created_unix_s": g.created_unix_s}))
                    .collect();
                Ok(json_resp(200, &json!({ "groups": all })))
            }
            (method, [t, "groups", g]) => {
                let rec = tenant(t)?;
                iam::valid_name("group", g).map_err(|e| error(400, e))?;
                let arn = format!("arn:aws:iam::{}:group/{g}", rec.account_id);
                let old = m.group(t, g).map_err(db)?;
                match method {
                    M::GET => {
                        self.authorize(&who, t, "iam:GetGroup", &arn, false)?;
                        let g = old.ok_or_else(|| error(404, format!("no group {g}")))?;
                        let members: Vec<String> = m
                            .users(t)
                            .map_err(db)?
                            .into_iter()
                            .filter(|u| u.groups.contains(&g.name))
                            .map(|u| u.name)
                            .collect();
                        Ok(json_resp(200, &json!({"name": g.name, "policies": g.policies, "members": members})))
                    }
                    M::PUT => {
                        self.authorize(&who, t, "iam:CreateGroup", &arn, false)?;
                        let b: GroupBody = parse(&body(req, 64 << 10).await?, "group")?;
                        for name in &b.policies {
                            iam::valid_name("policy", name).map_err(|e| error(400, e))?;
                        }
                        let rec = GroupRecord {
                            v: strait_metadata::FORMAT_VERSION,
                            tenant: (*t).to_owned(),
                            name: (*g).to_owned(),
                            policies: b.policies,
                            created_unix_s: old.as_ref().map_or_else(now, |o| o.created_unix_s),
                        };
                        m.put_group(&rec).map_err(db)?;
                        change("iam:PutGroup", &arn);
                        Ok(json_resp(
                            if old.is_some() { 200 } else { 201 },
                            &json!({"name": rec.name, "policies": rec.policies}),
                        ))
                    }
                    M::DELETE => {
                        self.authorize(&who, t, "iam:DeleteGroup", &arn, false)?;
                        if !m.delete_group(t, g).map_err(db)? {
                            return Err(error(404, format!("no group {g}")));
                        }
                        change("iam:DeleteGroup", &arn);
                        Ok(text(204, String::new(), "application/json"))
                    }
                    _ => Err(error(405, "method not allowed")),
                }
            }
            (M::GET, [t, "roles"]) => {
                let rec = tenant(t)?;
                self.authorize(&who, t, "iam:ListRoles", &format!("arn:aws:iam::{}:role/*", rec.account_id), false)?;
                let all: Vec<Value> = m.roles(t).map_err(db)?.iter().map(|r| role_json(&rec, r)).collect();
                Ok(json_resp(200, &json!({ "roles": all })))
            }
            (method, [t, "roles", r, rest @ ..]) => {
                let rec = tenant(t)?;
                iam::valid_name("role", r).map_err(|e| error(400, e))?;
                let arn = format!("arn:aws:iam::{}:role/{r}", rec.account_id);
                let old = m.role(t, r).map_err(db)?;
                match (method, rest) {
                    (M::GET, []) => {
                        self.authorize(&who, t, "iam:GetRole", &arn, false)?;
                        let role = old.ok_or_else(|| error(404, format!("no role {r}")))?;
                        Ok(json_resp(200, &role_json(&rec, &role)))
                    }
                    (M::PUT, []) => {
                        self.authorize(
                            &who,
                            t,
                            if old.is_some() { "iam:UpdateRole" } else { "iam:CreateRole" },
                            &arn,
                            false,
                        )?;
                        let b: RoleBody = parse(&body(req, 64 << 10).await?, "role")?;
                        let trust = match b.trust_policy {
                            Value::String(s) => s,
                            v => v.to_string(),
                        };
                        let tp = strait_policy::Policy::parse(&trust)
                            .map_err(|e| error(400, format!("trust_policy: {e}")))?;
                        for (i, st) in tp.statements.iter().enumerate() {
                            let acts = st.action.clone().unwrap_or_default();
                            if st.principal.is_none()
                                || !acts.iter().any(|a| a.eq_ignore_ascii_case("sts:AssumeRoleWithWebIdentity"))
                            {
                                return Err(error(400, format!(
                                    "trust_policy: {}: a trust statement names a Principal (Federated) and the action sts:AssumeRoleWithWebIdentity",
                                    tp.label(i)
                                )));
                            }
                        }
                        for name in &b.policies {
                            iam::valid_name("policy", name).map_err(|e| error(400, e))?;
                        }
                        let max = b.max_session_secs.unwrap_or(3600);
                        if !(900..=43_200).contains(&max) {
                            return Err(error(400, "max_session_secs: expected 900 to 43200"));
                        }
                        let mut next = old.clone().unwrap_or_else(|| strait_metadata::RoleRecord {
                            v: strait_metadata::FORMAT_VERSION,
                            tenant: (*t).to_owned(),
                            name: (*r).to_owned(),
                            role_id: format!("AROA{}", iam::random_upper(17)),
                            created_unix_s: now(),
                            ..Default::default()
                        });
                        next.trust_policy = trust;
                        next.policies = b.policies;
                        next.max_session_secs = max;
                        if let Some(posix) = b.posix {
                            self.authorize(&who, t, "strait:SetPosixIdentity", &arn, true)?;
                            if let Some(p) = &posix {
                                check_posix(p)?;
                            }
                            next.posix = posix;
                        }
                        m.put_role(&next).map_err(db)?;
                        change(if old.is_some() { "iam:UpdateRole" } else { "iam:CreateRole" }, &arn);
                        Ok(json_resp(if old.is_some() { 200 } else { 201 }, &role_json(&rec, &next)))
                    }
                    (M::POST, ["revoke-sessions"]) => {
                        self.authorize(&who, t, "iam:RevokeSessions", &arn, false)?;
                        let mut role = old.ok_or_else(|| error(404, format!("no role {r}")))?;
                        role.revoked_before_unix_s = now() + 1;
                        m.put_role(&role).map_err(db)?;
                        change("iam:RevokeSessions", &arn);
                        Ok(json_resp(200, &role_json(&rec, &role)))
                    }
                    (M::DELETE, []) => {
                        self.authorize(&who, t, "iam:DeleteRole", &arn, false)?;
                        if !m.delete_role(t, r).map_err(db)? {
                            return Err(error(404, format!("no role {r}")));
                        }
                        change("iam:DeleteRole", &arn);
                        Ok(text(204, String::new(), "application/json"))
                    }
                    _ => Err(error(405, "method not allowed")),
                }
            }
            (M::GET, [t, "policies"]) => {
                let rec = tenant(t)?;
                self.authorize(
                    &who,
                    t,
                    "iam:ListPolicies",
                    &format!("arn:aws:iam::{}:policy/*", rec.account_id),
                    false,
                )?;
                let all: Vec<Value> = m
                    .policies(t)
                    .map_err(db)?
                    .iter()
                    .map(
                        |p| json!({"name": p.name, "default_version": p.default_version, "versions": p.versions.len()}),
                    )
                    .collect();
                Ok(json_resp(200, &json!({ "policies": all })))
            }
            (method, [t, "policies", name, rest @ ..]) => {
                let rec = tenant(t)?;
                iam::valid_name("policy", name).map_err(|e| error(400, e))?;
                let arn = format!("arn:aws:iam::{}:policy/{name}", rec.account_id);
                let old = m.policy(t, name).map_err(db)?;
                let found = || old.clone().ok_or_else(|| error(404, format!("no policy {name}")));
                match (method, rest) {
                    (M::PUT, []) => {
                        self.authorize(&who, t, "iam:CreatePolicyVersion", &arn, false)?;
                        let doc = body(req, POLICY_BYTES_MAX).await?;
                        let doc = String::from_utf8(doc.to_vec()).map_err(|_| error(400, "policy: not UTF-8"))?;
                        iam::parse_identity_policy(&doc).map_err(|e| error(400, format!("policy {name}: {e}")))?;
                        let mut p = old.clone().unwrap_or_else(|| PolicyRecord {
                            v: strait_metadata::FORMAT_VERSION,
                            tenant: (*t).to_owned(),
                            name: (*name).to_owned(),
                            ..Default::default()
                        });
                        let version = p.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
                        p.versions.push(PolicyVersion {
                            version,
                            document: doc,
                            created_unix_s: now(),
                            author: who.name(),
                        });
                        p.default_version = version;
                        while p.versions.len() > POLICY_VERSIONS_MAX {
                            let Some(i) = p.versions.iter().position(|v| v.version != p.default_version) else { break };
                            p.versions.remove(i);
                        }
                        m.put_policy(&p).map_err(db)?;
                        change("iam:CreatePolicyVersion", &format!("{arn} v{version}"));
                        Ok(json_resp(if old.is_some() { 200 } else { 201 }, &policy_json(&p, None)?))
                    }
                    (M::GET, []) => {
                        self.authorize(&who, t, "iam:GetPolicy", &arn, false)?;
                        Ok(json_resp(200, &policy_json(&found()?, qnum("version")?)?))
                    }
                    (M::GET, ["versions"]) => {
                        self.authorize(&who, t, "iam:ListPolicyVersions", &arn, false)?;
                        let p = found()?;
                        let v: Vec<Value> = p
                            .versions
                            .iter()
                            .map(|v| {
                                json!({"version": v.version, "created_unix_s": v.created_unix_s, "author": v.author,
                                            "default": v.version == p.default_version})
                            })
                            .collect();
                        Ok(json_resp(
                            200,
                            &json!({"name": p.name, "default_version": p.default_version, "versions": v}),
                        ))
                    }
                    (M::GET, ["diff"]) => {
                        self.authorize(&who, t, "iam:GetPolicyVersion", &arn, false)?;
                        let p = found()?;
                        let to = qnum("to")?.unwrap_or(p.default_version);
                        let from = match qnum("from")? {
                            Some(f) => f,
                            None => p.versions.iter().map(|v| v.version).filter(|v| *v < to).max().unwrap_or(to),
                        };
                        let pretty = |n: u32| -> Result<String, ApiError> {
                            let v = p
                                .versions
                                .iter()
                                .find(|v| v.version == n)
                                .ok_or_else(|| error(404, format!("no version {n}")))?;
                            let doc: Value =
                                serde_json::from_str(&v.document).map_err(|e| error(500, e.to_string()))?;
                            Ok(format!("{doc:#}\n"))
                        };
                        let (a, b) = (pretty(from)?, pretty(to)?);
                        let diff = similar::TextDiff::from_lines(&a, &b)
                            .unified_diff()
                            .header(&format!("{name} v{from}"), &format!("{name} v{to}"))
                            .to_string();
                        Ok(text(200, diff, "text/x-diff"))
                    }
                    (M::POST, ["rollback"]) => {
                        self.authorize(&who, t, "iam:SetDefaultPolicyVersion", &arn, false)?;
                        let mut p = found()?;
                        let v = qnum("version")?.ok_or_else(|| error(400, "version: required"))?;
                        if !p.versions.iter().any(|x| x.version == v) {
                            return Err(error(404, format!("no version {v}")));
                        }
                        p.default_version = v;
                        m.put_policy(&p).map_err(db)?;
                        change("iam:SetDefaultPolicyVersion", &format!("{arn} v{v}"));
                        Ok(json_resp(200, &policy_json(&p, None)?))
                    }
                    (M::DELETE, []) => {
                        self.authorize(&who, t, "iam:DeletePolicy", &arn, false)?;
                        if !m.delete_policy(t, name).map_err(db)? {
                            return Err(error(404, format!("no policy {name}")));
                        }
                        change("iam:DeletePolicy", &arn);
                        Ok(text(204, String::new(), "application/json"))
                    }
                    _ => Err(error(405, "method not allowed")),
                }
            }
            _ => Err(error(404, "not found")),
        }
    }
}
