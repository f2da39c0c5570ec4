//! Authentication (secret lookup) and the coarse access check s3s runs before each operation.
//!
//! s3s 0.14 verifies SigV4 (headers, presigned URLs, streaming chunks, clock skew) but leaves
//! gaps that this module closes, before any operation runs:
//! - anonymous requests are refused unless a bucket policy or a canned ACL allows them;
//! - SigV2 is refused unless enabled in the config;
//! - every `x-amz-*` header must be covered by the signature, so an unsigned
//!   `x-amz-copy-source` can never turn a PUT into a copy;
//! - presigned URLs may not live longer than 7 days (`X-Amz-Expires` ≤ 604800).

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A failure of the identity store, answered 500 and logged.
fn internal(e: String) -> S3Error {
    tracing::error!(error = %e, "identity store");
    S3Error::with_message(S3ErrorCode::InternalError, "identity store error")
}

/// Longest presigned-URL lifetime, as AWS.
pub const PRESIGN_EXPIRES_SECS_MAX: u64 = 604_800;

/// Credentials known to the gateway: the administrator's (root) pair, held in memory, and the
/// tenants' access keys, read from the metadata store on every request (so a revoked key fails
/// its next request).
pub struct KeyStore {
    keys: HashMap<String, String>,
    iam: Option<Arc<crate::iam::Iam>>,
}

impl KeyStore {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>, iam: Option<Arc<crate::iam::Iam>>) -> Self {
        Self { keys: pairs.into_iter().collect(), iam }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // Compare every stored key in constant time so timing does not reveal valid key ids.
        let mut found: Option<&String> = None;
        for (k, v) in &self.keys {
            if bool::from(k.as_bytes().ct_eq(access_key.as_bytes())) {
                found = Some(v);
            }
        }
        if let Some(secret) = found {
            return Ok(SecretKey::from(secret.clone()));
        }
        if let Some(iam) = &self.iam {
            if let Some(secret) = iam.secret(access_key).map_err(internal)? {
                return Ok(SecretKey::from(secret));
            }
        }
        Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
    }
}

/// The access check run for every request after signature verification.
#[derive(Clone)]
pub struct Gate {
    pub allow_sigv2: bool,
    /// Where bucket policies are read from.
    pub store: strait_connectors::PosixStore,
    /// Recently read bucket policies (shared with the policy operations, which invalidate it).
    pub policies: std::sync::Arc<crate::s3::policy::PolicyCache>,
    /// The administrator's access key (every other key is a tenant's).
    pub root_key: String,
    pub iam: Arc<crate::iam::Iam>,
}

/// Who sent a request.
#[derive(Clone)]
pub enum Caller {
    Anonymous,
    /// The administrator (root credentials).
    Admin,
    Tenant(Arc<crate::iam::Principal>),
}

/// The connection a request came on (set by the front service): policy condition keys
/// `aws:SourceIp` (the TCP peer, never X-Forwarded-For) and `aws:SecureTransport`.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: Option<std::net::SocketAddr>,
    pub secure: bool,
}

/// The account every principal belongs to until tenants exist (policy `Principal` values
/// `"000000000000"` or `"arn:aws:iam::000000000000:root"` name the administrator).
pub const ACCOUNT_ID: &str = "000000000000";

/// Operations the bucket owner can always perform, so that no policy locks it out (AWS).
const OWNER_ALWAYS: [&str; 3] = ["GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"];

/// What the access decision reads of a request: an S3 operation's (from s3s's access context)
/// or a custom route's (the lease route), so both are judged by the same code.
#[derive(Clone, Copy)]
pub struct ReqView<'a> {
    pub headers: &'a http::HeaderMap,
    pub uri: &'a http::Uri,
    pub credentials: Option<&'a s3s::auth::Credentials>,
}

impl<'a> ReqView<'a> {
    fn of(cx: &'a S3AccessContext<'_>) -> Self {
        Self { headers: cx.headers(), uri: cx.uri(), credentials: cx.credentials() }
    }
}

impl Gate {
    /// The bucket policy's decision for this request, if the bucket has a (valid) policy.
    pub async fn policy_decision(
        &self,
        cx: &ReqView<'_>,
        op: &str,
        bucket: &str,
        key: Option<&str>,
        conn: Option<ConnInfo>,
    ) -> S3Result<Option<strait_policy::Decision>> {
        Ok(self.policy_explain(cx, op, bucket, key, conn).await?.map(|(d, _)| d))
    }

    /// Whether the caller may read a copy's source (`x-amz-copy-source`): `s3:GetObject` on it,
    /// decided as for a GetObject of that object by the same caller.
    async fn check_copy_source(
        &self,
        rv: &ReqView<'_>,
        conn: Option<ConnInfo>,
        dest_bucket: &str,
    ) -> Result<(), (S3Error, String)> {
        let denied = |why: String| (s3_error!(AccessDenied, "Access Denied"), why);
        let err = |e: S3Error| (e, "error while deciding".to_owned());
        let Some(raw) = rv.headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()) else {
            return Ok(()); // s3s answers the missing header itself
        };
        let Ok(s3s::dto::CopySource::Bucket { bucket, key, .. }) = s3s::dto::CopySource::parse(raw) else {
            return Ok(()); // and a malformed one
        };
        let (bucket, key) = (bucket.to_string(), key.to_string());
        match self.caller(rv).map_err(err)? {
            Caller::Tenant(p) => {
                let (ok, why) =
                    self.tenant_decision(rv, "GetObject", Some(&bucket), Some(&key), conn, &p).await.map_err(err)?;
                if !ok {
                    return Err(denied(format!("copy source {bucket}/{key}: {why}")));
                }
            }
            Caller::Admin => {
                let d = self.policy_explain(rv, "GetObject", &bucket, Some(&key), conn).await.map_err(err)?;
                if let Some((strait_policy::Decision::ExplicitDeny, label)) = d {
                    return Err(denied(format!(
                        "copy source {bucket}/{key}: explicit Deny in the bucket policy of {bucket}: {}",
                        label.unwrap_or_default()
                    )));
                }
            }
            Caller::Anonymous => {
                let d = self.policy_decision(rv, "GetObject", &bucket, Some(&key), conn).await.map_err(err)?;
                let ok = match d {
                    Some(strait_policy::Decision::Allow) => true,
                    Some(strait_policy::Decision::ExplicitDeny) => false,
                    _ => self.acl_allows("GetObject", &bucket, Some(&key)).await.map_err(err)?.0,
                };
                // Anonymous work runs as the destination's owner (or the gateway): the source
                // must belong to the same owner, or the kernel would not be the one deciding.
                let src = self.policies.owner(&self.store, &bucket).await.map_err(err)?;
                let dst = self.policies.owner(&self.store, dest_bucket).await.map_err(err)?;
                if !ok || src != dst {
                    return Err(denied(format!(
                        "copy source {bucket}/{key}: anonymous, and nothing allows reading it"
                    )));
                }
            }
        }
        Ok(())
    }

    /// An anonymous request a policy or ACL lets into a tenant's bucket runs as the owning
    /// tenant's POSIX identity: the kernel then refuses what the owner itself could not read.
    async fn bind_owner(&self, bucket: &str) -> S3Result<()> {
        let crate::s3::policy::Owner::Account(acct) = self.policies.owner(&self.store, bucket).await? else {
            return Ok(());
        };
        let tenant = self.iam.meta.tenant_by_account(&acct).map_err(S3Error::internal_error)?;
        let Some(t) = tenant else {
            // An owner that is no tenant (deleted): nobody's identity to run as.
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        if strait_connectors::ident::available().is_err()
            || !crate::s3::io::set_request_identity(crate::iam::posix_of(&t.posix))
        {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(())
    }

    /// Whether the caller may do `op` on `bucket`/`key` (for routes that judge several objects
    /// in one request, such as the lease route). For a tenant's user it also binds the
    /// request's file-system work to the user's POSIX identity.
    pub async fn may(
        &self,
        rv: &ReqView<'_>,
        op: &str,
        bucket: &str,
        key: Option<&str>,
        conn: Option<ConnInfo>,
    ) -> S3Result<bool> {
        match self.caller(rv)? {
            Caller::Tenant(p) => {
                let (ok, _) = self.tenant_decision(rv, op, Some(bucket), key, conn, &p).await?;
                if strait_connectors::ident::available().is_err()
                    || !crate::s3::io::set_request_identity(p.posix.clone())
                {
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
                Ok(ok)
            }
            _ => {
                Ok(self.policy_decision(rv, op, bucket, key, conn).await?
                    != Some(strait_policy::Decision::ExplicitDeny))
            }
        }
    }

    /// Who sent the request: anonymous, the administrator, or a tenant's user (read from the
    /// metadata store now, so a key revoked since the signature check is refused).
    pub fn caller(&self, cx: &ReqView<'_>) -> S3Result<Caller> {
        let Some(c) = cx.credentials else { return Ok(Caller::Anonymous) };
        if bool::from(c.access_key.as_bytes().ct_eq(self.root_key.as_bytes())) {
            return Ok(Caller::Admin);
        }
        let token =
            cx.headers.get("x-amz-security-token").and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| {
                let q = query_param(cx.uri.query()?, "X-Amz-Security-Token")?;
                urlencoding::decode(q).ok().map(|c| c.into_owned())
            });
        use crate::iam::Refusal;
        let bad = |code: &'static str, status: http::StatusCode, msg: &str| {
            let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg.to_owned());
            e.set_status_code(status);
            e
        };
        match self.iam.principal(&c.access_key, token.as_deref()).map_err(internal)? {
            Ok(p) => Ok(Caller::Tenant(Arc::new(p))),
            Err(Refusal::UnknownKey) => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
            Err(Refusal::Expired) => {
                Err(bad("ExpiredToken", http::StatusCode::BAD_REQUEST, "The provided token has expired."))
            }
            Err(Refusal::BadToken) => Err(bad(
                "InvalidToken",
                http::StatusCode::BAD_REQUEST,
                "The provided token is malformed or otherwise invalid.",
            )),
            Err(Refusal::Revoked) => Err(s3_error!(AccessDenied, "The session was revoked")),
        }
    }

    /// [`Gate::policy_decision`] with the statement that decided (for the audit log).
    pub async fn policy_explain(
        &self,
        cx: &ReqView<'_>,
        op: &str,
        bucket: &str,
        key: Option<&str>,
        conn: Option<ConnInfo>,
    ) -> S3Result<Option<(strait_policy::Decision, Option<String>)>> {
        let caller = self.caller(cx)?;
        let Some(action) = crate::s3::policy::action_for(op) else { return Ok(None) };
        // No policy, or no such bucket (the operation answers NoSuchBucket itself).
        let Some(cached) = self.policies.get(&self.store, bucket).await? else { return Ok(None) };
        let req = self.request_for(cx, action, (bucket, key), conn, &caller, cached.uses_object_tags).await?;
        let (d, i) = cached.policy.explain(&req);
        Ok(Some((d, i.map(|i| cached.policy.label(i)))))
    }

    /// The policy-language view of a request: action, resource, the caller's principal
    /// identifiers and the condition keys.
    pub async fn request_for(
        &self,
        cx: &ReqView<'_>,
        action: &str,
        (bucket, key): (&str, Option<&str>),
        conn: Option<ConnInfo>,
        caller: &Caller,
        object_tags: bool,
    ) -> S3Result<strait_policy::Request> {
        let mut req = strait_policy::Request {
            action: action.to_owned(),
            resource: crate::s3::policy::resource_arn(bucket, key),
            ..Default::default()
        };
        let signed = cx.credentials.is_some();
        match caller {
            Caller::Admin => {
                let ak = cx.credentials.map(|c| c.access_key.clone()).unwrap_or_default();
                req.principals = vec![format!("arn:aws:iam::{ACCOUNT_ID}:root"), ACCOUNT_ID.to_owned(), ak];
                req = req.with("aws:userid", ACCOUNT_ID).with("aws:PrincipalType", "Account");
                req = req.with("aws:PrincipalAccount", ACCOUNT_ID);
            }
            Caller::Tenant(p) => {
                let acct = p.account().to_owned();
                req.principals = vec![p.arn(), acct.clone(), format!("arn:aws:iam::{acct}:root"), p.access_key.clone()];
                req = req.with("aws:userid", p.user.user_id.clone()).with("aws:username", p.user.name.clone());
                req = req.with("aws:PrincipalType", "User").with("aws:PrincipalAccount", acct);
                req = req.with("aws:PrincipalArn", p.arn());
                for (k, v) in &p.user.tags {
                    req = req.with(&format!("aws:PrincipalTag/{k}"), v.clone());
                }
            }
            Caller::Anonymous => req = req.with("aws:PrincipalType", "Anonymous"),
        }
        if let Some(ci) = conn {
            if let Some(p) = ci.peer {
                req = req.with("aws:SourceIp", p.ip().to_string());
            }
            req = req.with("aws:SecureTransport", ci.secure.to_string());
        }
        let now = time::OffsetDateTime::now_utc();
        let rfc = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        req = req.with("aws:CurrentTime", rfc).with("aws:EpochTime", now.unix_timestamp().to_string());
        for (h, k) in [("user-agent", "aws:UserAgent"), ("referer", "aws:Referer")] {
            if let Some(v) = cx.headers.get(h).and_then(|v| v.to_str().ok()) {
                req = req.with(k, v);
            }
        }
        if signed {
            let query = presign_expires(cx.uri).is_some();
            req = req.with("s3:authType", if query { "REST-QUERY-STRING" } else { "REST-HEADER" });
            let v2 = is_sigv2_request(cx.headers, cx.uri);
            req = req.with("s3:signatureversion", if v2 { "AWS" } else { "AWS4-HMAC-SHA256" });
        }
        if action == "s3:ListBucket" {
            let q = cx.uri.query().unwrap_or("");
            for (param, k) in [("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"), ("max-keys", "s3:max-keys")] {
                if let Some(v) = query_param(q, param) {
                    let v = urlencoding::decode(v).map(|c| c.into_owned()).unwrap_or_default();
                    req = req.with(k, v);
                }
            }
        }
        // s3:ExistingObjectTag/<key>: the object's current tags, read only when a policy asks.
        if let Some(k) = key {
            if object_tags {
                let (store, name, k) = (self.store.clone(), bucket.to_owned(), k.to_owned());
                let tags = crate::s3::io::submit(move || {
                    let key = strait_connectors::ObjectKey::parse(&k)?;
                    store.bucket(&name)?.open_object(&key).map(|o| o.meta.tags)
                })
                .await
                .map_err(S3Error::internal_error)?
                .unwrap_or_default();
                for (tk, tv) in tags {
                    req = req.with(&format!("s3:ExistingObjectTag/{tk}"), tv);
                }
            }
        }
        Ok(req)
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// Whether `name` (lower case) is among the signed headers of a SigV4 request.
pub fn header_is_signed(headers: &http::HeaderMap, uri: &http::Uri, name: &str) -> bool {
    signed_header_list(headers, uri).is_some_and(|l| l.iter().any(|h| h == name))
}

fn signed_header_list(headers: &http::HeaderMap, uri: &http::Uri) -> Option<Vec<String>> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let sh = auth.split(',').find_map(|part| part.trim().strip_prefix("SignedHeaders="))?;
        return Some(sh.split(';').map(|s| s.trim().to_ascii_lowercase()).collect());
    }
    let sh = query_param(uri.query()?, "X-Amz-SignedHeaders")?;
    let sh = urlencoding::decode(sh).ok()?;
    Some(sh.split(';').map(|s| s.trim().to_ascii_lowercase()).collect())
}

/// Refusals that must happen before s3s parses the signature, answered with AWS's codes.
pub fn precheck(headers: &http::HeaderMap, uri: &http::Uri, allow_sigv2: bool) -> Option<S3Error> {
    let bad = |code: &'static str, status: http::StatusCode, msg: &str| {
        let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg.to_owned());
        e.set_status_code(status);
        Some(e)
    };
    if !allow_sigv2 && is_sigv2_request(headers, uri) {
        return Some(s3_error!(
            InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        ));
    }
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let query = uri.query().unwrap_or("");
    let query_auth =
        query_param(query, "X-Amz-Signature").is_some() || query_param(query, "X-Amz-Credential").is_some();
    if auth.is_some() && query_auth {
        return Some(s3_error!(InvalidArgument, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified"));
    }
    if let Some(a) = auth.and_then(|a| a.strip_prefix("AWS4-HMAC-SHA256")) {
        let has = |k: &str| a.split(',').any(|p| p.trim().strip_prefix(k).is_some_and(|v| !v.is_empty()));
        let cred_ok =
            a.split(',').find_map(|p| p.trim().strip_prefix("Credential=")).is_some_and(|c| c.split('/').count() == 5);
        if !cred_ok || !has("SignedHeaders=") || !has("Signature=") {
            return bad(
                "AuthorizationHeaderMalformed",
                http::StatusCode::BAD_REQUEST,
                "The authorization header is malformed; it must have Credential=<key>/<date>/<region>/<service>/aws4_request, SignedHeaders= and Signature=.",
            );
        }
        if !headers.contains_key("x-amz-date") && !headers.contains_key(http::header::DATE) {
            return Some(s3_error!(AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"));
        }
    }
    if let Some(v) = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
        let known = matches!(
            v,
            "UNSIGNED-PAYLOAD"
                | "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
                | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
                | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
                | "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
                | "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"
        );
        let sha = v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
        if !known && !sha {
            return Some(s3_error!(
                InvalidArgument,
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER, or a valid sha256 value."
            ));
        }
    }
    None
}

/// Whether a request is signed with SigV2 (header `AWS key:sig` or presigned `AWSAccessKeyId`).
pub fn is_sigv2_request(headers: &http::HeaderMap, uri: &http::Uri) -> bool {
    let header =
        headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|a| a.starts_with("AWS "));
    let query = uri
        .query()
        .is_some_and(|q| query_param(q, "AWSAccessKeyId").is_some() && query_param(q, "Signature").is_some());
    header || query
}

fn presign_expires(uri: &http::Uri) -> Option<&str> {
    uri.query().and_then(|q| query_param(q, "X-Amz-Expires"))
}

impl Gate {
    /// The checks of a signed request that s3s leaves to us (see the module comment).
    pub fn check_request(&self, cx: &ReqView<'_>) -> S3Result<()> {
        if cx.credentials.is_none() {
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed"));
        }
        if is_sigv2_request(cx.headers, cx.uri) {
            if self.allow_sigv2 {
                return Ok(());
            }
            return Err(s3_error!(
                InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
            ));
        }
        let presigned = presign_expires(cx.uri).is_some();
        if let Some(exp) = presign_expires(cx.uri) {
            let ok = exp.parse::<u64>().is_ok_and(|e| e <= PRESIGN_EXPIRES_SECS_MAX);
            if !ok {
                let mut e = S3Error::with_message(
                    S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
                    "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds",
                );
                e.set_status_code(http::StatusCode::BAD_REQUEST);
                return Err(e);
            }
        }
        let signed = signed_header_list(cx.headers, cx.uri).unwrap_or_default();
        for name in cx.headers.keys() {
            let n = name.as_str();
            if !n.starts_with("x-amz-") || signed.iter().any(|s| s == n) {
                continue;
            }
            // A presigned URL's payload hash header is checked against the body by s3s.
            if presigned && n == "x-amz-content-sha256" {
                continue;
            }
            return Err(s3_error!(
                AccessDenied,
                "There were headers present in the request which were not signed: {}",
                n
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl S3Access for Gate {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        let principal = cx.credentials().map(|c| c.access_key.clone());
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        if let Some(info) = cx.extensions_mut().get::<std::sync::Arc<crate::access_log::ReqInfo>>() {
            let _ = info.operation.set(op);
            if let Some(b) = &bucket {
                let _ = info.bucket.set(b.clone());
            }
            if let Some(k) = &key {
                let _ = info.key.set(k.clone());
            }
            if let Some(p) = principal {
                let _ = info.principal.set(p);
            }
        }
        let conn = cx.extensions_mut().get::<ConnInfo>().copied();
        let rv = ReqView::of(cx);
        // A copy reads its source: the caller must be allowed to GetObject it, as AWS requires
        // (the destination is judged below).
        if matches!(cx.s3_op().name(), "CopyObject" | "UploadPartCopy") {
            if let Err((e, why)) = self.check_copy_source(&rv, conn, bucket.as_deref().unwrap_or("")).await {
                set_decided_by(cx, why);
                return Err(e);
            }
        }
        let rv = ReqView::of(cx);
        if let Caller::Tenant(p) = self.caller(&rv)? {
            let op = cx.s3_op().name();
            let r = self.check_tenant(&rv, op, bucket.as_deref(), key.as_deref(), conn, &p).await;
            match r {
                Ok(hide_missing) => {
                    if let Some(info) = cx.extensions_mut().get::<std::sync::Arc<crate::access_log::ReqInfo>>() {
                        let _ = info.principal.set(p.arn());
                        if hide_missing {
                            let _ = info.hide_missing.set(());
                        }
                    }
                    cx.extensions_mut().insert(p);
                    return Ok(());
                }
                Err((e, why)) => {
                    set_decided_by(cx, why);
                    return Err(e);
                }
            }
        }
        if let Some(b) = bucket.as_deref() {
            let op = cx.s3_op().name();
            match self.policy_explain(&rv, op, b, key.as_deref(), conn).await? {
                Some((strait_policy::Decision::ExplicitDeny, label)) if !OWNER_ALWAYS.contains(&op) => {
                    let why = format!("explicit Deny in the bucket policy of {b}: {}", label.unwrap_or_default());
                    set_decided_by(cx, why);
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
                // Anonymous requests pass only where the bucket policy allows them.
                Some((strait_policy::Decision::Allow, _)) if rv.credentials.is_none() => {
                    let reads = ["GetObject", "HeadObject", "GetObjectAttributes", "GetObjectTagging"];
                    if reads.contains(&op) {
                        let list = self.policy_decision(&rv, "ListObjectsV2", b, None, conn).await?;
                        if list != Some(strait_policy::Decision::Allow) {
                            if let Some(info) = cx.extensions_mut().get::<std::sync::Arc<crate::access_log::ReqInfo>>()
                            {
                                let _ = info.hide_missing.set(());
                            }
                        }
                    }
                    self.bind_owner(b).await?;
                    return Ok(());
                }
                _ => {}
            }
            // No policy decided: a canned ACL may still let an anonymous caller in.
            let (allowed, acl_listable) = match rv.credentials {
                None => self.acl_allows(op, b, key.as_deref()).await?,
                Some(_) => (false, false),
            };
            if allowed {
                if matches!(op, "GetObject" | "HeadObject") {
                    let list = self.policy_decision(&rv, "ListObjectsV2", b, None, conn).await?;
                    let listable = list == Some(strait_policy::Decision::Allow)
                        || (list != Some(strait_policy::Decision::ExplicitDeny) && acl_listable);
                    if !listable {
                        if let Some(info) = cx.extensions_mut().get::<std::sync::Arc<crate::access_log::ReqInfo>>() {
                            let _ = info.hide_missing.set(());
                        }
                    }
                }
                self.bind_owner(b).await?;
                return Ok(());
            }
        }
        let r = self.check_request(&rv);
        if let Err(e) = &r {
            let why = if rv.credentials.is_none() {
                "anonymous, and no bucket policy statement or ACL allows it".to_owned()
            } else {
                e.message().unwrap_or("refused").to_owned()
            };
            set_decided_by(cx, why);
        }
        r
    }
}

/// Whether a policy's conditions read `s3:ExistingObjectTag/...`.
pub fn uses_object_tags(p: &strait_policy::Policy) -> bool {
    p.statements
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.key.get(..21).is_some_and(|k| k.eq_ignore_ascii_case("s3:ExistingObjectTag/")))
}

/// The IAM action of an operation a tenant's user may call: [`crate::s3::policy::action_for`],
/// `s3:ListAllMyBuckets` for ListBuckets, else `s3:<Operation>` (so that `s3:*` reaches the
/// operations Strait answers 501 NotImplemented).
fn tenant_action(op: &str) -> String {
    match crate::s3::policy::action_for(op) {
        Some(a) => a.to_owned(),
        None if op == "ListBuckets" => "s3:ListAllMyBuckets".to_owned(),
        None => format!("s3:{op}"),
    }
}

impl Gate {
    /// The access decision for a tenant's user, as AWS decides it: an explicit Deny in the
    /// user's identity policies or the bucket policy refuses; within the bucket owner's account
    /// an Allow from either suffices; across accounts both must allow. Then the request's file-
    /// system work is bound to the user's POSIX identity, so the kernel has the last word.
    /// Returns whether a missing key must be answered 403 (the user may not list the bucket).
    async fn check_tenant(
        &self,
        rv: &ReqView<'_>,
        op: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        conn: Option<ConnInfo>,
        p: &Arc<crate::iam::Principal>,
    ) -> Result<bool, (S3Error, String)> {
        let denied = |why: String| (s3_error!(AccessDenied, "Access Denied"), why);
        self.check_request(rv).map_err(|e| {
            let why = e.message().unwrap_or("refused").to_owned();
            (e, why)
        })?;
        let (ok, why) = self
            .tenant_decision(rv, op, bucket, key, conn, p)
            .await
            .map_err(|e| (e, "error while deciding".to_owned()))?;
        if !ok {
            return Err(denied(why));
        }
        if let Err(e) = strait_connectors::ident::available() {
            return Err(denied(format!("cannot run as {}'s POSIX identity: {e}", p.arn())));
        }
        if !crate::s3::io::set_request_identity(p.posix.clone()) {
            return Err(denied("no request scope to bind the POSIX identity to".into()));
        }
        let mut hide = false;
        if matches!(op, "GetObject" | "HeadObject" | "GetObjectAttributes" | "GetObjectTagging") {
            let (list, _) = self
                .tenant_decision(rv, "ListObjectsV2", bucket, None, conn, p)
                .await
                .map_err(|e| (e, "error while deciding".to_owned()))?;
            hide = !list;
        }
        Ok(hide)
    }

    /// Whether a tenant's user may do `op` (see [`Gate::check_tenant`]), and why.
    async fn tenant_decision(
        &self,
        rv: &ReqView<'_>,
        op: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        conn: Option<ConnInfo>,
        p: &Arc<crate::iam::Principal>,
    ) -> S3Result<(bool, String)> {
        let caller = Caller::Tenant(p.clone());
        let action = tenant_action(op);
        let bucket_name = bucket.unwrap_or("");
        let cached = match bucket {
            Some(b) if op != "CreateBucket" => self.policies.get(&self.store, b).await?,
            _ => None,
        };
        let tags = cached.as_ref().is_some_and(|c| c.uses_object_tags)
            || p.policies.iter().any(|(_, pol)| uses_object_tags(pol));
        let mut req = self.request_for(rv, &action, (bucket_name, key), conn, &caller, tags).await?;
        if bucket.is_none() {
            req.resource = "*".into();
        }
        let (idd, idwhy) = p.explain(&req);
        let (bpd, bpwhy) = match &cached {
            Some(c) => {
                let (d, i) = c.policy.explain(&req);
                (d, i.map(|i| format!("bucket policy of {bucket_name}, {}", c.policy.label(i))))
            }
            None => (strait_policy::Decision::ImplicitDeny, None),
        };
        use strait_policy::Decision::*;
        if idd == ExplicitDeny {
            return Ok((false, format!("explicit Deny in {}", idwhy.unwrap_or_default())));
        }
        if bpd == ExplicitDeny {
            return Ok((false, format!("explicit Deny in the {}", bpwhy.unwrap_or_default())));
        }
        use crate::s3::policy::Owner;
        let owner = match bucket {
            Some(b) if op != "CreateBucket" => self.policies.owner(&self.store, b).await?,
            _ => Owner::Account(p.account().to_owned()),
        };
        if owner == Owner::Missing {
            // Let the operation answer NoSuchBucket, under the user's identity.
            return Ok((true, format!("no bucket {bucket_name}")));
        }
        let same = owner == Owner::Account(p.account().to_owned());
        let ok = if same { idd == Allow || bpd == Allow } else { idd == Allow && bpd == Allow };
        let why = if ok {
            idwhy.or(bpwhy).unwrap_or_default()
        } else if same || idd != Allow {
            format!("no statement of {}'s identity policies or the bucket policy allows {action}", p.arn())
        } else {
            format!("{action} across accounts needs the bucket policy of {bucket_name} to allow it too")
        };
        Ok((ok, why))
    }
}

/// Record why a request was refused (the audit log's `decided_by`).
fn set_decided_by(cx: &mut S3AccessContext<'_>, why: String) {
    if let Some(info) = cx.extensions_mut().get::<std::sync::Arc<crate::access_log::ReqInfo>>() {
        let _ = info.decided_by.set(why);
    }
}

impl Gate {
    /// Whether the bucket's (or, for object reads, the object's) canned ACL lets an anonymous
    /// caller do `op` (see `s3/acl.rs`). A missing bucket or object grants nothing, except that a
    /// missing object of a listable bucket is let through to its 404. Also says whether the
    /// bucket's ACL lets anonymous callers list it (one file-system read for both).
    async fn acl_allows(&self, op: &str, bucket: &str, key: Option<&str>) -> S3Result<(bool, bool)> {
        let object = matches!(op, "GetObject" | "HeadObject");
        let (store, name, key) = (self.store.clone(), bucket.to_owned(), key.map(str::to_owned));
        let (bucket_acl, object_acl, missing) = crate::s3::io::submit(move || {
            let Ok(b) = store.bucket(&name) else { return (None, None, false) };
            let bucket_acl = b.acl().ok().flatten();
            let (object_acl, missing) = match key.filter(|_| object).map(|k| strait_connectors::ObjectKey::parse(&k)) {
                Some(Ok(k)) => match b.open_object(&k) {
                    Ok(o) => (o.meta.acl, false),
                    Err(strait_connectors::ConnectorError::NotFound(_)) => (None, true),
                    Err(_) => (None, false),
                },
                _ => (None, false),
            };
            (bucket_acl, object_acl, missing)
        })
        .await
        .map_err(S3Error::internal_error)?;
        // A missing object in a bucket the caller may list: let the operation answer 404 (AWS
        // answers 404 to whoever may list; the listing would show the key is absent anyway).
        let listable = crate::s3::acl::anonymous_allows("ListObjectsV2", bucket_acl.as_deref(), None);
        let allowed =
            (missing && listable) || crate::s3::acl::anonymous_allows(op, bucket_acl.as_deref(), object_acl.as_deref());
        Ok((allowed, listable))
    }
}

/// Virtual-hosted-style addressing: `bucket.DOMAIN[:port]` names a bucket; `DOMAIN[:port]`, an IP
/// address or any other host is path-style (clients that address the gateway by another name,
/// such as `localhost`, keep working).
pub struct Domains {
    pub domains: Vec<String>,
}

impl s3s::host::S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        for d in &self.domains {
            if name.eq_ignore_ascii_case(d) {
                return Ok(s3s::host::VirtualHost::new(d.as_str()));
            }
            if let Some(bucket) = name.strip_suffix(d.as_str()).and_then(|b| b.strip_suffix('.')) {
                if !bucket.is_empty() {
                    return Ok(s3s::host::VirtualHost::new(d.as_str()).with_bucket(bucket));
                }
            }
        }
        Ok(s3s::host::VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::host::S3Host;

    #[test]
    fn virtual_hosts() {
        let d = Domains { domains: vec!["s3.example.test".into()] };
        let b = |h: &str| d.parse_host_header(h).unwrap().bucket().map(str::to_owned);
        assert_eq!(b("bkt.s3.example.test"), Some("bkt".into()));
        assert_eq!(b("bkt.s3.example.test:9000"), Some("bkt".into()));
        assert_eq!(b("my.dotted.bkt.s3.example.test"), Some("my.dotted.bkt".into()));
        assert_eq!(b("s3.example.test:9000"), None);
        assert_eq!(b("localhost:9000"), None);
        assert_eq!(b("127.0.0.1:9000"), None);
        assert_eq!(b("evil-s3.example.test"), None);
    }
}
