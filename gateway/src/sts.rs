//! STS on the S3 port: `AssumeRoleWithWebIdentity` (unsigned; an OpenID Connect ID token buys
//! temporary credentials for a role) and `GetCallerIdentity` (signed), as the AWS Query API:
//! `POST /` with a form body (`Action=...&Version=2011-06-15&...`), XML answers, errors as
//! `<ErrorResponse>`. boto3 / aws-cli `sts` clients with `endpoint_url` pointing at the gateway
//! work unchanged.
//!
//! A role (tenant-scoped, `arn:aws:iam::<account>:role/<name>`) has a trust policy over the
//! token's claims: principal `{"Federated": "arn:aws:iam::<account>:oidc-provider/<name>"}` (or the
//! issuer URL), action `sts:AssumeRoleWithWebIdentity`, conditions on `<provider>:sub`,
//! `<provider>:aud`, `<provider>:email`, `<provider>:groups`... (`<provider>` is the provider's
//! name, or its issuer URL without the scheme, as AWS writes it). The session's credentials are
//! an access key (`ASIA...`), a secret and a session token, stored like any key (the secret
//! sealed, only a hash of the token) with an expiry; every request must present the token.

use crate::auth::{Gate, ReqView};
use crate::iam::{self, Iam};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use std::sync::Arc;
use strait_metadata::{KeyRecord, SessionRecord};

/// Largest STS request body.
const STS_BODY_MAX: usize = 64 << 10;
const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

#[derive(Clone)]
pub struct StsRoute {
    pub gate: Gate,
    pub iam: Arc<Iam>,
    pub verifier: Arc<crate::oidc::Verifier>,
}

/// Whether a request is an STS Query API call (`POST /` with a form body).
pub fn is_sts(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    method == http::Method::POST
        && uri.path() == "/"
        && uri.query().is_none_or(|q| q.is_empty())
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn xml(status: http::StatusCode, body: String) -> S3Response<Body> {
    let mut r = S3Response::with_status(Body::from(body), status);
    r.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/xml"));
    r
}

/// An STS error (`<ErrorResponse>`), as AWS sends it.
fn sts_error(status: u16, code: &str, msg: &str) -> S3Response<Body> {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"{NS}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error>\
         <RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(msg),
        uuid::Uuid::new_v4()
    );
    xml(http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST), body)
}

/// The condition keys a token's claims give a trust policy: `<prefix>:<claim>` for each string,
/// number, boolean or list-of-strings claim.
fn claim_context(
    mut req: strait_policy::Request,
    prefixes: &[String],
    claims: &serde_json::Map<String, serde_json::Value>,
) -> strait_policy::Request {
    for (k, v) in claims {
        let values: Vec<String> = match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Number(n) => vec![n.to_string()],
            serde_json::Value::Bool(b) => vec![b.to_string()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => continue,
        };
        for p in prefixes {
            for val in &values {
                req = req.with(&format!("{p}:{k}"), val.clone());
            }
        }
    }
    req
}

impl StsRoute {
    fn assume_role_with_web_identity(&self, params: &[(String, String)]) -> S3Response<Body> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (Some(role_arn), Some(session), Some(token)) =
            (get("RoleArn"), get("RoleSessionName"), get("WebIdentityToken"))
        else {
            return sts_error(400, "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required");
        };
        let session_ok = (2..=64).contains(&session.len())
            && session.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !session_ok {
            return sts_error(400, "ValidationError", "RoleSessionName: 2-64 of A-Z a-z 0-9 + = , . @ _ -");
        }
        let Some((acct, role_name)) = role_arn
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.split_once(":role/"))
            .filter(|(a, n)| a.len() == 12 && !n.is_empty())
        else {
            return sts_error(400, "ValidationError", "RoleArn: expected arn:aws:iam::<account>:role/<name>");
        };
        let m = &self.iam.meta;
        let db = |e: strait_metadata::MetaError| {
            tracing::error!(error = %e, "identity store");
            sts_error(500, "InternalFailure", "identity store error")
        };
        let tenant = match m.tenant_by_account(acct) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
            }
            Err(e) => return db(e),
        };
        let role = match m.role(&tenant.name, role_name) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
            }
            Err(e) => return db(e),
        };
        // Which provider: the one whose issuer the token names (read before verification only
        // to pick the keys; everything is checked against that provider's configuration).
        let iss = token
            .split('.')
            .nth(1)
            .and_then(|p| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()
            })
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| v["iss"].as_str().map(str::to_owned));
        let Some(iss) = iss else {
            return sts_error(400, "InvalidIdentityToken", "The web identity token is not a JWT with an iss claim");
        };
        let providers = match m.oidc_providers() {
            Ok(p) => p,
            Err(e) => return db(e),
        };
        let Some(provider) = providers.into_iter().find(|p| p.issuer == iss) else {
            return sts_error(
                400,
                "InvalidIdentityToken",
                &format!("No OpenID Connect provider is trusted for issuer {iss}"),
            );
        };
        let claims = match self.verifier.verify(&provider, token) {
            Ok(c) => c,
            Err(e) if e.contains("expired") => {
                return sts_error(400, "ExpiredTokenException", &format!("Token expired: {e}"))
            }
            Err(e) if e.contains("discovery") || e.contains("JWKS of") => {
                return sts_error(400, "IDPCommunicationError", &e)
            }
            Err(e) => return sts_error(400, "InvalidIdentityToken", &e),
        };
        // The trust policy.
        let trust = match strait_policy::Policy::parse(&role.trust_policy) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(role = %role_arn, error = %e, "stored trust policy does not parse");
                return sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
            }
        };
        let provider_arn = format!("arn:aws:iam::{}:oidc-provider/{}", tenant.account_id, provider.name);
        let bare = provider.issuer.split_once("://").map_or(provider.issuer.as_str(), |(_, r)| r).to_owned();
        let req = strait_policy::Request {
            principals: vec![provider_arn, provider.issuer.clone(), provider.name.clone()],
            action: "sts:AssumeRoleWithWebIdentity".into(),
            resource: role_arn.to_owned(),
            ..Default::default()
        }
        .with("aws:FederatedProvider", provider.issuer.clone())
        .with("aws:CurrentTime", crate::access_log::now_rfc3339());
        let req = claim_context(req, &[provider.name.clone(), bare], &claims);
        let (decision, _) = trust.explain(&req);
        if decision != strait_policy::Decision::Allow {
            return sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
        }
        // The session.
        let max = i64::from(role.max_session_secs.max(900));
        let duration = match get("DurationSeconds").map(str::parse::<i64>) {
            None => 3600.min(max),
            Some(Ok(d)) if (900..=max).contains(&d) => d,
            Some(_) => {
                return sts_error(
                    400,
                    "ValidationError",
                    &format!("DurationSeconds: expected 900 to {max} for this role"),
                )
            }
        };
        let session_policy = match get("Policy") {
            Some(doc) => match iam::parse_identity_policy(doc) {
                Ok(_) => Some(doc.to_owned()),
                Err(e) => return sts_error(400, "MalformedPolicyDocument", &e),
            },
            None => None,
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let access_key = format!("ASIA{}", iam::random_upper(16));
        let secret = iam::random_secret();
        let token_out = {
            use base64::Engine;
            let mut b = [0u8; 48];
            rand::Rng::fill(&mut rand::rngs::OsRng, &mut b[..]);
            base64::engine::general_purpose::STANDARD.encode(b)
        };
        let subject = claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let rec = KeyRecord {
            v: strait_metadata::FORMAT_VERSION,
            secret_sealed: self.iam.master.seal(&access_key, &secret),
            access_key: access_key.clone(),
            tenant: tenant.name.clone(),
            user: format!("role/{}", role.name),
            status: "Active".into(),
            created_unix_s: now,
            extra: Default::default(),
            session: Some(SessionRecord {
                role: role.name.clone(),
                session_name: session.to_owned(),
                token_sha256: iam::sha256_hex(&token_out),
                issued_unix_s: now,
                expires_unix_s: now + duration,
                issuer: provider.issuer.clone(),
                subject: subject.clone(),
                session_policy,
            }),
        };
        if let Err(e) = m.put_key(&rec) {
            return db(e);
        }
        let expires = time::OffsetDateTime::from_unix_timestamp(now + duration)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let aud = claims
            .get("aud")
            .map(|a| a.as_str().map(str::to_owned).unwrap_or_else(|| a.to_string()))
            .unwrap_or_default();
        tracing::info!(role = %role_arn, subject = %subject, access_key = %access_key, "web identity session issued");
        let body = format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"{NS}\"><AssumeRoleWithWebIdentityResult>\
             <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken><Audience>{}</Audience>\
             <AssumedRoleUser><Arn>arn:aws:sts::{acct}:assumed-role/{}/{}</Arn><AssumedRoleId>{}:{}</AssumedRoleId></AssumedRoleUser>\
             <Credentials><AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
             <SessionToken>{}</SessionToken><Expiration>{expires}</Expiration></Credentials>\
             <Provider>{}</Provider></AssumeRoleWithWebIdentityResult>\
             <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>",
            xml_escape(&subject),
            xml_escape(&aud),
            xml_escape(&role.name),
            xml_escape(session),
            role.role_id,
            xml_escape(session),
            xml_escape(&secret),
            xml_escape(&token_out),
            xml_escape(&provider.issuer),
            uuid::Uuid::new_v4(),
        );
        xml(http::StatusCode::OK, body)
    }

    fn get_caller_identity(&self, req: &S3Request<Body>) -> S3Response<Body> {
        let rv = ReqView { headers: &req.headers, uri: &req.uri, credentials: req.credentials.as_ref() };
        let (arn, user_id, account) = match self.gate.caller(&rv) {
            Ok(crate::auth::Caller::Admin) => {
                let a = crate::auth::ACCOUNT_ID;
                (format!("arn:aws:iam::{a}:root"), a.to_owned(), a.to_owned())
            }
            Ok(crate::auth::Caller::Tenant(p)) => (p.arn(), p.user.user_id.clone(), p.account().to_owned()),
            Ok(crate::auth::Caller::Anonymous) => {
                return sts_error(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
            }
            Err(e) => {
                let code = e.code().as_str().to_owned();
                let status = e.status_code().map_or(403, |s| s.as_u16());
                return sts_error(status, &code, e.message().unwrap_or("refused"));
            }
        };
        let body = format!(
            "<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId>\
             <Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId>\
             </ResponseMetadata></GetCallerIdentityResponse>",
            xml_escape(&arn),
            xml_escape(&user_id),
            uuid::Uuid::new_v4()
        );
        xml(http::StatusCode::OK, body)
    }

    pub async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let body = match req.input.store_all_limited(STS_BODY_MAX).await {
            Ok(b) => b,
            Err(_) => {
                return Ok(sts_error(400, "ValidationError", "the request body is larger than 64 KiB or unreadable"))
            }
        };
        // A form body is encoded as a query string.
        let params = crate::admin::query_params(Some(&String::from_utf8_lossy(&body)));
        let action = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
        if let Some(info) = req.extensions.get::<Arc<crate::access_log::ReqInfo>>() {
            let _ = info.operation.set(action.clone());
        }
        match action.as_str() {
            "AssumeRoleWithWebIdentity" => {
                let me = self.clone();
                let out = crate::s3::io::submit(move || me.assume_role_with_web_identity(&params))
                    .await
                    .map_err(s3s::S3Error::internal_error)?;
                Ok(out)
            }
            "GetCallerIdentity" => Ok(self.get_caller_identity(&req)),
            "" => Ok(sts_error(400, "MissingAction", "Action is required")),
            other => Ok(sts_error(400, "InvalidAction", &format!("Could not find operation {other} (Strait's STS implements AssumeRoleWithWebIdentity and GetCallerIdentity)"))),
        }
    }
}

/// The custom routes on the S3 port: leases (MPI shim) and STS.
pub struct Routes {
    pub lease: crate::lease::LeaseRoute,
    pub sts: StsRoute,
}

#[derive(Clone, Copy)]
enum Which {
    Lease,
    Sts,
}

#[async_trait::async_trait]
impl S3Route for Routes {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        ext: &mut http::Extensions,
    ) -> bool {
        if self.lease.is_match(method, uri, headers, ext) {
            ext.insert(Which::Lease);
            return true;
        }
        if is_sts(method, uri, headers) {
            ext.insert(Which::Sts);
            return true;
        }
        false
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        match req.extensions.get::<Which>() {
            Some(Which::Lease) => self.lease.check_access(req).await,
            // AssumeRoleWithWebIdentity is unsigned (the token is the credential);
            // GetCallerIdentity checks its caller itself.
            _ => Ok(()),
        }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        match req.extensions.get::<Which>() {
            Some(Which::Lease) => self.lease.call(req).await,
            _ => self.sts.call(req).await,
        }
    }
}
