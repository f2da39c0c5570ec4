//! The safe I/O core of the MPI shim: SigV4-signed requests to one gateway (aws-sigv4), keep-alive
//! connections (ureq), leases, ranged GETs straight into caller buffers with several in flight,
//! and multipart uploads. No MPI here: the C layer (`src/strait_mpi.c`) decides which rank calls
//! what and agrees on errors.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Error codes shared with `include/strait_mpi.h` (`STRAIT_ERR_*`). Collective calls agree on
/// the largest code any rank saw.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Arg = 1,
    NoSuchBucket = 2,
    NoSuchKey = 3,
    AccessDenied = 4,
    Changed = 5,
    Auth = 6,
    Http = 7,
    Io = 8,
    Mpi = 9,
    NoMem = 10,
    Expired = 11,
    DirectUnavailable = 12,
    Range = 13,
    State = 14,
    Network = 15,
}

/// An error: its code and a message for `strait_strerror`'s detail (`strait_last_error`).
#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One range of a parallel read, taken by whichever worker gets to it first.
type Slot<'a> = std::sync::Mutex<Option<(u64, &'a mut [u8])>>;

/// Characters of a key left unencoded in a URL path (S3's rule: unreserved and `/`).
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
/// Characters of a query value left unencoded (unreserved only).
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port` or `https://host:port` (no path).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub region: String,
    /// PEM file of CA certificates to trust (TLS endpoints with a private CA).
    pub ca_file: Option<String>,
}

/// One gateway client; cheap to share between threads.
pub struct Client {
    agent: ureq::Agent,
    /// Ranged GETs of a plain-HTTP endpoint (see [`crate::plain`]); `None` for https.
    plain: Option<crate::plain::Pool>,
    endpoint: String,
    host: String,
    identity: Identity,
    region: String,
    /// HTTP requests sent (for tests and benchmarks).
    requests: AtomicU64,
}

/// One object of a lease answer (`POST /?strait-lease`, see gateway/src/lease.rs).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct LeaseEntry {
    pub bucket: String,
    pub key: String,
    pub status: u16,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub dev: u64,
    #[serde(default)]
    pub ino: u64,
    #[serde(default)]
    pub mtime_ns: i64,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub fs_type: Option<String>,
    #[serde(default)]
    pub stripe_size: u64,
    #[serde(default)]
    pub stripe_count: u32,
}

/// A lease answer.
#[derive(Debug, Clone, Deserialize)]
pub struct LeaseAnswer {
    pub expires_unix: i64,
    pub direct: bool,
    pub leases: Vec<LeaseEntry>,
}

/// The code for an S3 error answer.
pub fn code_of(status: u16, s3_code: &str) -> Code {
    match s3_code {
        "NoSuchBucket" => Code::NoSuchBucket,
        "NoSuchKey" => Code::NoSuchKey,
        "AccessDenied" => Code::AccessDenied,
        "PreconditionFailed" => Code::Changed,
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" | "RequestTimeTooSkewed" => {
            Code::Auth
        }
        "InvalidRange" => Code::Range,
        _ => match status {
            403 => Code::AccessDenied,
            404 => Code::NoSuchKey,
            412 => Code::Changed,
            416 => Code::Range,
            _ => Code::Http,
        },
    }
}

/// The `<Code>` and `<Message>` of an S3 XML error body.
fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(&body[start..end])
}

fn s3_failure(resp: http::Response<ureq::Body>, what: &str) -> Error {
    let status = resp.status().as_u16();
    let mut text = String::new();
    let _ = resp.into_body().into_reader().take(64 << 10).read_to_string(&mut text);
    s3_failure_text(status, &text, what)
}

fn s3_failure_text(status: u16, text: &str, what: &str) -> Error {
    let code = xml_field(text, "Code").unwrap_or("").to_owned();
    let msg = xml_field(text, "Message").unwrap_or("").to_owned();
    Error::new(code_of(status, &code), format!("{what}: HTTP {status} {code} {msg}").trim_end().to_owned())
}

fn net(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::Network, format!("{what}: {e}"))
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let endpoint = cfg.endpoint.trim_end_matches('/').to_owned();
        let uri: http::Uri =
            endpoint.parse().map_err(|e| Error::new(Code::Arg, format!("endpoint {endpoint}: {e}")))?;
        let host = match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(a)) if uri.path() == "/" || uri.path().is_empty() => a.as_str().to_owned(),
            _ => return Err(Error::new(Code::Arg, format!("endpoint {endpoint}: expected http(s)://host[:port]"))),
        };
        if cfg.access_key.is_empty() || cfg.secret_key.is_empty() {
            return Err(Error::new(
                Code::Arg,
                "no credentials: pass them or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            ));
        }
        let mut b = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(64)
            .user_agent("strait-mpi/0.1");
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::new(Code::Arg, format!("CA file {ca}: {e}")))?;
            let mut certs = Vec::new();
            for c in rustls_pemfile::certs(&mut &pem[..]) {
                let c = c.map_err(|e| Error::new(Code::Arg, format!("CA file {ca}: {e}")))?;
                certs.push(ureq::tls::Certificate::from_der(c.as_ref()).to_owned());
            }
            if certs.is_empty() {
                return Err(Error::new(Code::Arg, format!("CA file {ca}: no certificates")));
            }
            let tls =
                ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs))).build();
            b = b.tls_config(tls);
        }
        let identity: Identity =
            Credentials::new(cfg.access_key, cfg.secret_key, cfg.session_token, None, "strait-mpi").into();
        let plain = (uri.scheme_str() == Some("http")).then(|| crate::plain::Pool::new(&host, uri.port_u16()));
        Ok(Self {
            agent: b.build().into(),
            plain,
            endpoint,
            host,
            identity,
            region: cfg.region,
            requests: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn object_path(bucket: &str, key: &str) -> String {
        format!("/{}/{}", utf8_percent_encode(bucket, KEY_SET), utf8_percent_encode(key, KEY_SET))
    }

    /// Send a signed request. `query` is already encoded (`a=b&c`).
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: &[u8],
        unsigned_payload: bool,
    ) -> Result<http::Response<ureq::Body>> {
        let req = self.signed(method, path, query, headers, body, unsigned_payload)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.agent.run(req).map_err(|e| net(&format!("{method} {path}"), e))
    }

    /// A request signed with SigV4 (the `host` header included). `query` is already encoded.
    fn signed<'b>(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: &'b [u8],
        unsigned_payload: bool,
    ) -> Result<http::Request<&'b [u8]>> {
        let url = if query.is_empty() {
            format!("{}{}", self.endpoint, path)
        } else {
            format!("{}{}?{}", self.endpoint, path, query)
        };
        let mut req = http::Request::builder().method(method).uri(&url).header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut req = req.body(body).map_err(|e| Error::new(Code::Arg, format!("request {url}: {e}")))?;
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Error::new(Code::Arg, format!("signing: {e}")))?
            .into();
        let hdrs: Vec<(&str, &str)> =
            req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
        let signable_body = if unsigned_payload { SignableBody::UnsignedPayload } else { SignableBody::Bytes(body) };
        let signable = SignableRequest::new(method, url.as_str(), hdrs.into_iter(), signable_body)
            .map_err(|e| Error::new(Code::Arg, format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Error::new(Code::Arg, format!("signing: {e}")))?.into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    /// Leases for many objects in one request.
    pub fn lease(&self, objects: &[(String, String)]) -> Result<LeaseAnswer> {
        let list: Vec<_> = objects.iter().map(|(b, k)| serde_json::json!({"bucket": b, "key": k})).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "objects": list })).expect("JSON of strings");
        let ct = [("content-type", "application/json".to_owned())];
        let resp = self.send("POST", "/", "strait-lease", &ct, &body, false)?;
        if !resp.status().is_success() {
            return Err(s3_failure(resp, "lease"));
        }
        let mut text = Vec::new();
        resp.into_body().into_reader().take(256 << 20).read_to_end(&mut text).map_err(|e| net("lease", e))?;
        let a: LeaseAnswer =
            serde_json::from_slice(&text).map_err(|e| Error::new(Code::Http, format!("lease answer: {e}")))?;
        if a.leases.len() != objects.len() {
            return Err(Error::new(Code::Http, "lease answer does not match the request"));
        }
        Ok(a)
    }

    /// Read `buf.len()` bytes at `offset` with one ranged GET, `If-Match: etag` when given.
    /// Fills the whole buffer or fails (the caller clamps ranges to the object's size).
    pub fn get_range(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let last = offset + buf.len() as u64 - 1;
        let mut h = vec![("range", format!("bytes={offset}-{last}"))];
        if let Some(e) = if_match {
            h.push(("if-match", e.to_owned()));
        }
        let path = Self::object_path(bucket, key);
        if let Some(pool) = &self.plain {
            let req = self.signed("GET", &path, "", &h, &[], false)?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let what = format!("GET {bucket}/{key} bytes={offset}-{last}");
            return match pool.get(&req, buf) {
                Ok(crate::plain::Answer::Body) => Ok(()),
                Ok(crate::plain::Answer::Whole) if offset > 0 => {
                    Err(Error::new(Code::Http, "the gateway ignored the Range header"))
                }
                Ok(crate::plain::Answer::Whole) => Ok(()),
                Ok(crate::plain::Answer::Failure(status, text)) => Err(s3_failure_text(status, &text, &what)),
                Err(e) => Err(e.into_error(&what)),
            };
        }
        let resp = self.send("GET", &path, "", &h, &[], false)?;
        if resp.status().as_u16() != 206 && resp.status().as_u16() != 200 {
            return Err(s3_failure(resp, &format!("GET {bucket}/{key} bytes={offset}-{last}")));
        }
        let whole = resp.status().as_u16() == 200;
        let mut r = resp.into_body().into_reader();
        if whole && offset > 0 {
            return Err(Error::new(Code::Http, "the gateway ignored the Range header"));
        }
        let mut done = 0;
        while done < buf.len() {
            match r.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(Error::new(
                        Code::Range,
                        format!("GET {bucket}/{key}: {} of {} bytes before the end of the body", done, buf.len()),
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(net(&format!("GET {bucket}/{key}"), e)),
            }
        }
        Ok(())
    }

    /// Read many ranges of one object, `streams` GETs in flight (each on its own connection).
    /// Returns the first error (by range order) if any range failed.
    pub fn get_ranges(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
        ranges: Vec<(u64, &mut [u8])>,
        streams: usize,
    ) -> Result<()> {
        let streams = streams.clamp(1, 64).min(ranges.len().max(1));
        if streams == 1 {
            for (off, buf) in ranges {
                self.get_range(bucket, key, if_match, off, buf)?;
            }
            return Ok(());
        }
        let n = ranges.len();
        let work: Vec<Slot<'_>> = ranges.into_iter().map(|r| std::sync::Mutex::new(Some(r))).collect();
        let next = AtomicUsize::new(0);
        let errors: std::sync::Mutex<Vec<(usize, Error)>> = Default::default();
        std::thread::scope(|s| {
            for _ in 0..streams {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || !errors.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                        return;
                    }
                    let Some((off, buf)) = work[i].lock().unwrap_or_else(|p| p.into_inner()).take() else { continue };
                    if let Err(e) = self.get_range(bucket, key, if_match, off, buf) {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push((i, e));
                    }
                });
            }
        });
        let mut errs = errors.into_inner().unwrap_or_else(|p| p.into_inner());
        errs.sort_by_key(|(i, _)| *i);
        match errs.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Start a multipart upload; returns its upload id.
    pub fn mpu_create(&self, bucket: &str, key: &str) -> Result<String> {
        let resp = self.send("POST", &Self::object_path(bucket, key), "uploads", &[], &[], false)?;
        if !resp.status().is_success() {
            return Err(s3_failure(resp, &format!("CreateMultipartUpload {bucket}/{key}")));
        }
        let mut text = String::new();
        resp.into_body().into_reader().take(1 << 20).read_to_string(&mut text).map_err(|e| net("create", e))?;
        xml_field(&text, "UploadId")
            .map(str::to_owned)
            .ok_or_else(|| Error::new(Code::Http, "CreateMultipartUpload answer without UploadId"))
    }

    /// Upload one part; returns its ETag (with quotes, as the gateway sent it).
    pub fn mpu_upload(&self, bucket: &str, key: &str, upload_id: &str, part: u32, data: &[u8]) -> Result<String> {
        let q = format!("partNumber={part}&uploadId={}", utf8_percent_encode(upload_id, QUERY_SET));
        let resp = self.send("PUT", &Self::object_path(bucket, key), &q, &[], data, false)?;
        if !resp.status().is_success() {
            return Err(s3_failure(resp, &format!("UploadPart {part} of {bucket}/{key}")));
        }
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        etag.ok_or_else(|| Error::new(Code::Http, "UploadPart answer without ETag"))
    }

    /// Complete a multipart upload from (part number, ETag) pairs in order; returns the ETag.
    pub fn mpu_complete(&self, bucket: &str, key: &str, upload_id: &str, parts: &[(u32, String)]) -> Result<String> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, e) in parts {
            let e = e.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
            xml.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let q = format!("uploadId={}", utf8_percent_encode(upload_id, QUERY_SET));
        let ct = [("content-type", "application/xml".to_owned())];
        let resp = self.send("POST", &Self::object_path(bucket, key), &q, &ct, xml.as_bytes(), false)?;
        let ok = resp.status().is_success();
        if !ok {
            return Err(s3_failure(resp, &format!("CompleteMultipartUpload {bucket}/{key}")));
        }
        // An error can also arrive inside a 200 answer.
        let mut text = String::new();
        resp.into_body().into_reader().take(1 << 20).read_to_string(&mut text).map_err(|e| net("complete", e))?;
        if let Some(code) = xml_field(&text, "Code") {
            return Err(Error::new(code_of(200, code), format!("CompleteMultipartUpload: {code}")));
        }
        let etag = xml_field(&text, "ETag").unwrap_or("").replace("&quot;", "\"");
        Ok(etag)
    }

    /// Abort a multipart upload (best effort for cleanup after a collective failure).
    pub fn mpu_abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let q = format!("uploadId={}", utf8_percent_encode(upload_id, QUERY_SET));
        let resp = self.send("DELETE", &Self::object_path(bucket, key), &q, &[], &[], false)?;
        if !resp.status().is_success() {
            return Err(s3_failure(resp, &format!("AbortMultipartUpload {bucket}/{key}")));
        }
        Ok(())
    }
}

/// Split `s3://bucket/key` into its parts.
pub fn parse_name(name: &str) -> Result<(String, String)> {
    let rest =
        name.strip_prefix("s3://").ok_or_else(|| Error::new(Code::Arg, format!("{name}: expected s3://bucket/key")))?;
    match rest.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_owned(), k.to_owned())),
        _ => Err(Error::new(Code::Arg, format!("{name}: expected s3://bucket/key"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("s3://b/k/x y").unwrap(), ("b".into(), "k/x y".into()));
        assert_eq!(parse_name("s3://b/").unwrap_err().code, Code::Arg);
        assert_eq!(parse_name("b/k").unwrap_err().code, Code::Arg);
        assert_eq!(Client::object_path("b", "a b/c+d%"), "/b/a%20b/c%2Bd%25");
    }

    #[test]
    fn error_codes() {
        assert_eq!(code_of(404, "NoSuchKey"), Code::NoSuchKey);
        assert_eq!(code_of(412, "PreconditionFailed"), Code::Changed);
        assert_eq!(code_of(403, "SignatureDoesNotMatch"), Code::Auth);
        assert_eq!(code_of(403, ""), Code::AccessDenied);
        assert_eq!(code_of(503, "SlowDown"), Code::Http);
        let body = "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(xml_field(body, "Code"), Some("NoSuchKey"));
        assert_eq!(xml_field(body, "Message"), Some("gone"));
    }

    #[test]
    fn endpoints_are_checked() {
        let cfg = |e: &str| ClientConfig {
            endpoint: e.into(),
            access_key: "a".into(),
            secret_key: "s".into(),
            session_token: None,
            region: "us-east-1".into(),
            ca_file: None,
        };
        assert!(Client::new(cfg("http://127.0.0.1:9000")).is_ok());
        assert_eq!(Client::new(cfg("ftp://x")).err().unwrap().code, Code::Arg);
        assert_eq!(Client::new(cfg("http://h:1/path")).err().unwrap().code, Code::Arg);
    }
}
