//! `POST /?strait-lease`: leases for the MPI shim's collective open (mpi-shim/).
//!
//! One signed request names many objects; the answer says, for each, whether the caller may read
//! it (the same bucket-policy decision as GetObject), and for a readable object what a reader
//! on the same file system needs to read it directly: the absolute path, the file identity
//! (`dev`, `ino`, size, mtime), the ETag and the stripe layout — or the S3 error a GET would
//! have answered. Rank 0 of an MPI job asks once and broadcasts the answer.
//!
//! A lease grants nothing by itself: a direct reader opens the path with its own POSIX identity,
//! so the kernel decides; the gateway only refuses to tell a caller where an object lives when
//! the policy would refuse the GET. Published files are never written in place, so a reader that
//! opens the path and finds the leased `ino` reads exactly the leased version (see
//! `Bucket::lease`). Request body: `{"objects": [{"bucket": "b", "key": "k"}, ...]}` (at most
//! [`LEASE_OBJECTS_MAX`]); the body's SHA-256 must match a signed `x-amz-content-sha256`.

use crate::auth::{ConnInfo, Gate, ReqView};
use s3s::route::S3Route;
use s3s::{s3_error, Body, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};
use strait_connectors::{ObjectKey, PosixStore};

/// Most objects one lease request may name.
pub const LEASE_OBJECTS_MAX: usize = 10_000;
/// Largest lease request body.
const LEASE_BODY_MAX: usize = 4 << 20;

/// Lease settings (`[lease]` in the config file).
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Whether leases carry file-system paths (false: clients always use ranged GETs).
    pub direct: bool,
    /// How long a lease is valid, in seconds.
    pub ttl_secs: u64,
}

pub struct LeaseRoute {
    pub gate: Gate,
    pub store: PosixStore,
    pub settings: LeaseSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseRequest {
    objects: Vec<Named>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    bucket: String,
    key: String,
}

#[derive(Serialize, Default)]
struct LeaseOut {
    bucket: String,
    key: String,
    /// HTTP status a GET would have answered: 200, or the error's.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    size: u64,
    dev: u64,
    ino: u64,
    mtime_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fs_type: Option<&'static str>,
    stripe_size: u64,
    stripe_count: u32,
}

#[derive(Serialize)]
struct LeaseResponse {
    /// Unix seconds after which the leases must not be used to open files.
    expires_unix: i64,
    direct: bool,
    leases: Vec<LeaseOut>,
}

fn body_too_large(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    // s3s's BodySizeLimitExceeded is not exported; it is the error of an in-memory body.
    e.to_string().contains("exceeds limit")
}

fn is_lease_query(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "strait-lease" || kv == "strait-lease="))
}

#[async_trait::async_trait]
impl S3Route for LeaseRoute {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        _headers: &http::HeaderMap,
        _ext: &mut http::Extensions,
    ) -> bool {
        method == http::Method::POST && uri.path() == "/" && is_lease_query(uri)
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        if let Some(info) = req.extensions.get::<std::sync::Arc<crate::access_log::ReqInfo>>() {
            let _ = info.operation.set("StraitLease".to_owned());
            if let Some(c) = &req.credentials {
                let _ = info.principal.set(c.access_key.clone());
            }
        }
        let rv = ReqView { headers: &req.headers, uri: &req.uri, credentials: req.credentials.as_ref() };
        self.gate.check_request(&rv)
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let body = req.input.store_all_limited(LEASE_BODY_MAX).await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() || body_too_large(&*e) {
                s3_error!(MaxMessageLengthExceeded, "lease request body is larger than 4 MiB")
            } else {
                // The body's own failures: a payload hash that does not match, truncation...
                crate::s3::error::body_err(&*e)
            }
        })?;
        if let Some(want) = req.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
            if want.len() == 64 {
                use sha2::Digest;
                if !hex::encode(sha2::Sha256::digest(&body)).eq_ignore_ascii_case(want) {
                    return Err(crate::s3::error::custom(
                        "XAmzContentSHA256Mismatch",
                        http::StatusCode::BAD_REQUEST,
                        "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
                    ));
                }
            }
        }
        let parsed: LeaseRequest = serde_json::from_slice(&body).map_err(|e| {
            s3_error!(
                MalformedPOSTRequest,
                "lease request: {e} (expected {{\"objects\": [{{\"bucket\": ..., \"key\": ...}}]}})"
            )
        })?;
        if parsed.objects.is_empty() || parsed.objects.len() > LEASE_OBJECTS_MAX {
            return Err(s3_error!(
                InvalidArgument,
                "a lease request names 1 to {LEASE_OBJECTS_MAX} objects, not {}",
                parsed.objects.len()
            ));
        }
        let conn = req.extensions.get::<ConnInfo>().copied();
        let rv = ReqView { headers: &req.headers, uri: &req.uri, credentials: req.credentials.as_ref() };
        // Authorization first (async, cached policies), then all file-system work in one
        // blocking call.
        let mut allowed = Vec::with_capacity(parsed.objects.len());
        for n in &parsed.objects {
            allowed.push(self.gate.may(&rv, "GetObject", &n.bucket, Some(&n.key), conn).await?);
        }
        let store = self.store.clone();
        let direct = self.settings.direct;
        let leases = crate::s3::io::submit(move || {
            parsed.objects.into_iter().zip(allowed).map(|(n, ok)| lease_one(&store, n, ok, direct)).collect::<Vec<_>>()
        })
        .await
        .map_err(s3s::S3Error::internal_error)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(self.settings.ttl_secs).unwrap_or(i64::MAX / 2);
        let out = LeaseResponse { expires_unix: now.saturating_add(ttl), direct, leases };
        let json = serde_json::to_vec(&out).map_err(s3s::S3Error::internal_error)?;
        let mut resp = S3Response::new(Body::from(bytes::Bytes::from(json)));
        resp.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        Ok(resp)
    }
}

fn lease_one(store: &PosixStore, n: Named, allowed: bool, direct: bool) -> LeaseOut {
    let mut out = LeaseOut { bucket: n.bucket, key: n.key, ..Default::default() };
    let fail = |mut o: LeaseOut, status: u16, code: &str, msg: String| {
        o.status = status;
        o.code = Some(code.to_owned());
        o.message = Some(msg);
        o
    };
    if !allowed {
        return fail(out, 403, "AccessDenied", "Access Denied".into());
    }
    let lease = ObjectKey::parse(&out.key).and_then(|key| store.bucket(&out.bucket)?.lease(&key));
    match lease {
        Ok(l) => {
            out.status = 200;
            out.size = l.size;
            out.etag = Some(format!("\"{}\"", l.etag));
            out.mtime_ns = i64::try_from(l.mtime_ns).unwrap_or(0);
            if direct {
                out.path = l.path.map(|p| p.to_string_lossy().into_owned());
                out.dev = l.dev;
                out.ino = l.ino;
            }
            if let Some(layout) = l.layout {
                out.fs_type = Some(layout.fs_type);
                out.stripe_size = layout.stripe_size;
                out.stripe_count = layout.stripe_count;
            }
            out
        }
        // The same code and status a GetObject of the key would answer.
        Err(e) => {
            let e = crate::s3::error::obj_err(e);
            let status = e.status_code().map_or(500, |s| s.as_u16());
            let msg = e.message().unwrap_or("").to_owned();
            fail(out, status, e.code().as_str(), msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lease_query_matches() {
        let u = |s: &str| s.parse::<http::Uri>().unwrap();
        assert!(is_lease_query(&u("/?strait-lease")));
        assert!(is_lease_query(&u("/?x=1&strait-lease=")));
        assert!(!is_lease_query(&u("/?strait-leases")));
        assert!(!is_lease_query(&u("/")));
        assert!(!is_lease_query(&u("/?uploads")));
    }

    #[test]
    fn requests_are_validated() {
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"objects":[{"bucket":"b","key":"k"}]}"#).is_ok());
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"objects":[{"bucket":"b"}]}"#).is_err());
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"objects":[],"extra":1}"#).is_err());
    }
}
