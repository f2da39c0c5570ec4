//! HTTP(S) serving: accept loop with a connection limit, TLS via rustls, graceful shutdown.

use http_body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::service::S3Service;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Build a TLS acceptor from PEM files (certificate chain and private key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(cert)?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut &read(key)?[..])
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key found", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Set by an operation in its response extensions: the HTTP status to answer with (s3s 0.14
/// ignores `S3Response::status` for typed operations).
#[derive(Clone, Copy, Debug)]
pub struct StatusOverride(pub http::StatusCode);

/// The front of the service: checks that must happen before s3s verifies a signature.
#[derive(Clone)]
pub struct Front {
    pub inner: S3Service,
    pub allow_sigv2: bool,
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// Denied requests and changes of buckets, policies and ACLs.
    pub audit_log: Option<Arc<crate::access_log::AccessLog>>,
    /// `limits.requests_in_flight_max` permits; a request holds one until its body ends.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The TCP peer of this connection (set per connection).
    pub peer: Option<std::net::SocketAddr>,
    /// Whether connections are TLS.
    pub secure: bool,
    /// The connection's zero-copy regions, when GET bodies may be sent by sendfile.
    pub regions: Option<crate::zerocopy::Regions>,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Front {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        // Refusals decided before s3s parses the signature, with the error AWS gives.
        let mut refusal = crate::auth::precheck(req.headers(), req.uri(), self.allow_sigv2);
        // Overload answers 503 SlowDown at once, as S3 does; clients back off and retry.
        let permit = self.in_flight.clone().try_acquire_owned().ok();
        if permit.is_none() {
            refusal = Some(s3s::s3_error!(SlowDown, "Please reduce your request rate."));
        }
        let mut req = req;
        // AWS ignores a Range header it cannot parse and serves the whole object; s3s would
        // refuse the request, so such a header is dropped here. A signed Range header cannot be
        // dropped without breaking the signature: that case keeps s3s's 400 InvalidArgument (a
        // documented deviation).
        if let Some(r) = req.headers().get(http::header::RANGE) {
            let malformed = r.to_str().map_or(true, |v| s3s::dto::Range::parse(v).is_err());
            if malformed && !crate::auth::header_is_signed(req.headers(), req.uri(), "range") {
                req.headers_mut().remove(http::header::RANGE);
            }
        }
        // botocore before 1.43.77 sends `Expect: 100-continue` on empty PUTs and, when the final
        // response comes without an interim 100, misparses the next response on that pooled
        // connection (a read-timeout stall; boto/botocore#3755). Closing such connections
        // after the response keeps older clients working at the cost of one reconnect.
        let close_after = is_empty_expect_continue(req.headers());
        let has_body = req.headers().contains_key(http::header::TRANSFER_ENCODING)
            || content_length(req.headers()).is_some_and(|n| n > 0);
        let request_id = RequestId::new();
        let info = Arc::new(crate::access_log::ReqInfo::default());
        req.extensions_mut().insert(request_id.clone());
        req.extensions_mut().insert(info.clone());
        req.extensions_mut().insert(crate::auth::ConnInfo { peer: self.peer, secure: self.secure });
        // HTTP/2 frames (h2c) are copied by hyper: zero-copy bodies are for HTTP/1.x only.
        if let Some(r) = &self.regions {
            if req.version() <= http::Version::HTTP_11 {
                req.extensions_mut().insert(r.clone());
            }
        }
        let started = std::time::Instant::now();
        let log = self.access_log.clone().map(|l| (l, LogHead::of(&req, self.peer)));
        let audit = self.audit_log.clone();
        let peer = self.peer;
        let path = req.uri().path().to_owned();
        let bytes_in = content_length(req.headers());
        let is_head = req.method() == http::Method::HEAD;
        let metrics = self.metrics.clone();
        metrics.started();
        let span = request_span(&req, &request_id, self.peer);
        let fut = match refusal {
            Some(err) => Box::pin(async move { err.to_http_response().map_err(|e| s3s::HttpError::new(Box::new(e))) })
                as Self::Future,
            None => {
                let _e = span.enter();
                // The request's POSIX identity, set by the access check, applies to every piece
                // of file-system work this task submits (`s3::io::submit`).
                let scope = Arc::new(std::sync::OnceLock::new());
                Box::pin(crate::s3::io::REQUEST_IDENTITY.scope(scope, hyper::service::Service::call(&self.inner, req)))
            }
        };
        Box::pin(async move {
            let mut resp = match tracing::Instrument::instrument(fut, span.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    metrics.finished("", 500, Some("InternalError"), started.elapsed().as_secs_f64(), (bytes_in, None));
                    span.record("http.response.status_code", 500i64).record("otel.status_code", "error");
                    return Err(e);
                }
            };
            if let Some(StatusOverride(s)) = resp.extensions().get::<StatusOverride>().copied() {
                *resp.status_mut() = s;
            }
            let error_code = stamp_request_id(&mut resp, &request_id, &path, &info).await;
            let op = info.operation.get().map(String::as_str).unwrap_or("");
            // A HEAD response declares the object's length but sends no body.
            let sent = if is_head { Some(0) } else { content_length(resp.headers()) };
            let bytes = (bytes_in, sent);
            metrics.finished(op, resp.status().as_u16(), error_code.as_deref(), started.elapsed().as_secs_f64(), bytes);
            // The access-log line is written when the body is done, with the bytes actually sent
            // (streamed bodies such as ListObjectsV2 declare no Content-Length).
            let log_line: Option<Box<dyn FnOnce(u64) + Send + Sync>> = log.map(|(log, head)| {
                let (id, info, status, code) =
                    (request_id.clone(), info.clone(), resp.status().as_u16(), error_code.clone());
                let to_head = started.elapsed();
                Box::new(move |sent: u64| head.write(&log, &id, &info, status, code.as_deref(), to_head, sent))
                    as Box<dyn FnOnce(u64) + Send + Sync>
            });
            if let Some(audit) = audit {
                let status = resp.status().as_u16();
                let kind = if status == 403 {
                    Some("denied")
                } else if status < 300 && crate::access_log::AUDITED_CHANGES.contains(&op) {
                    Some("change")
                } else {
                    None
                };
                if let Some(kind) = kind {
                    audit.write(&crate::access_log::AuditRecord {
                        time: crate::access_log::now_rfc3339(),
                        kind,
                        request_id: &request_id.0,
                        remote: peer.map(|p| p.to_string()),
                        principal: info.principal.get().map(String::as_str),
                        operation: Some(op).filter(|o| !o.is_empty()),
                        bucket: info.bucket.get().map(String::as_str),
                        key: info.key.get().map(String::as_str),
                        resource: None,
                        status,
                        error_code: error_code.as_deref(),
                        decided_by: info.decided_by.get().map(String::as_str),
                    });
                }
            }
            // An error may be answered before the body is read; the connection then cannot be
            // reused safely (the client may or may not send the body), so it is closed.
            if close_after || (has_body && resp.status().as_u16() >= 400) {
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            record_outcome(&span, &info, resp.status().as_u16(), error_code.as_deref(), bytes_in);
            // The span stays open while the body streams and is closed by the body at its end.
            let length = content_length(resp.headers());
            let keep_alive_xml = op == "CompleteMultipartUpload" && resp.status() == http::StatusCode::OK;
            Ok(resp.map(|body| {
                let mut b = SpannedBody::new(body, span, length, permit);
                b.on_finish = log_line;
                b.one_xml_decl = keep_alive_xml;
                s3s::Body::http_body(b)
            }))
        })
    }
}

/// The request's span (see `telemetry`): attributes known now are set, the rest are recorded
/// when the response is ready.
fn request_span(
    req: &http::Request<hyper::body::Incoming>,
    id: &RequestId,
    peer: Option<std::net::SocketAddr>,
) -> tracing::Span {
    use tracing::field::Empty;
    tracing::info_span!(
        target: "strait::request",
        "s3.request",
        otel.name = "S3",
        otel.kind = "server",
        otel.status_code = Empty,
        "aws.request_id" = %id.0,
        "http.request.method" = %req.method(),
        "url.path" = req.uri().path(),
        "client.address" = peer.map(|p| p.ip().to_string()),
        "rpc.system" = "aws-api",
        "rpc.service" = "S3",
        "rpc.method" = Empty,
        "strait.tenant" = Empty,
        "strait.principal" = Empty,
        "aws.s3.bucket" = Empty,
        "aws.s3.key" = Empty,
        "http.request.body.size" = Empty,
        "http.response.body.size" = Empty,
        "http.response.status_code" = Empty,
        "aws.s3.error_code" = Empty,
        "error.type" = Empty,
        "strait.body_aborted" = Empty,
    )
}

fn record_outcome(
    span: &tracing::Span,
    info: &crate::access_log::ReqInfo,
    status: u16,
    error_code: Option<&str>,
    bytes_in: Option<u64>,
) {
    if span.is_disabled() {
        return;
    }
    if let Some(op) = info.operation.get() {
        // The span has usually started already (its children did), so its name is updated on
        // the OpenTelemetry span itself; recording `otel.name` only works before that.
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        span.context().span().update_name(op.clone());
        span.record("rpc.method", op.as_str());
    }
    if let Some(p) = info.principal.get() {
        // One tenant until tenants exist (the policy issue): every key belongs to it.
        span.record("strait.principal", p.as_str()).record("strait.tenant", "default");
    }
    if let Some(b) = info.bucket.get() {
        span.record("aws.s3.bucket", b.as_str());
    }
    if let Some(k) = info.key.get() {
        span.record("aws.s3.key", k.as_str());
    }
    if let Some(n) = bytes_in {
        span.record("http.request.body.size", n as i64);
    }
    span.record("http.response.status_code", i64::from(status));
    if let Some(code) = error_code {
        span.record("aws.s3.error_code", code).record("error.type", code);
    }
    // Server spans: 4xx are the client's errors, not the server's (OpenTelemetry semantic conventions).
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// A response body that keeps the request's span open until the last byte is sent (or the
/// body is dropped unfinished), then records the bytes actually sent.
struct SpannedBody {
    inner: s3s::Body,
    span: tracing::Span,
    sent: u64,
    /// The body's length when known (hyper stops polling once that many bytes are sent).
    expected: Option<u64>,
    finished: bool,
    /// The request's in-flight permit, returned when the body is done.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Run once when the body is done, with the bytes sent (the access-log line).
    on_finish: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
    /// CompleteMultipartUpload's keep-alive body: s3s 0.14 sends an XML declaration first, then
    /// whitespace, then an error document with a declaration of its own, which makes the body
    /// invalid XML (botocore then reports a bare 500 instead of the error's code). The second
    /// declaration is dropped.
    one_xml_decl: bool,
    data_frames: u64,
}

impl SpannedBody {
    fn new(
        inner: s3s::Body,
        span: tracing::Span,
        content_length: Option<u64>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        let expected = inner.size_hint().exact().or(content_length);
        Self {
            inner,
            span,
            sent: 0,
            expected,
            finished: false,
            _permit: permit,
            on_finish: None,
            one_xml_decl: false,
            data_frames: 0,
        }
    }

    fn finish(&mut self, complete: bool) {
        if !self.finished {
            self.finished = true;
            // OpenTelemetry attributes are i64; tracing-opentelemetry stringifies u64.
            self.span.record("http.response.body.size", self.sent as i64);
            if !complete {
                self.span.record("strait.body_aborted", true);
            }
            if let Some(f) = self.on_finish.take() {
                f(self.sent);
            }
        }
    }
}

impl http_body::Body for SpannedBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        // Entered while polling: tracing-opentelemetry ends a span at its last exit, so the
        // request's span ends with its body, not with its response head.
        let mut r = {
            let _entered = this.span.enter();
            std::pin::Pin::new(&mut this.inner).poll_frame(cx)
        };
        match &mut r {
            std::task::Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_mut() {
                    if this.one_xml_decl {
                        if this.data_frames > 0 && d.starts_with(b"<?xml") {
                            if let Some(end) = d.windows(2).position(|w| w == b"?>") {
                                *d = d.slice(end + 2..);
                            }
                        }
                        this.data_frames += 1;
                    }
                    this.sent += d.len() as u64;
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => this.finish(false),
            std::task::Poll::Ready(None) => this.finish(true),
            std::task::Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SpannedBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream() || self.expected.is_some_and(|n| self.sent >= n);
        self.finish(complete);
    }
}

/// A request's id: answered in `x-amz-request-id` and inside error bodies (`<RequestId>`).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        Self(format!("{:012X}{:06X}", t as u64 & 0xFFFF_FFFF_FFFF, n & 0xFF_FFFF))
    }
}

/// Largest error body rewritten to carry the request id (S3 error documents are small).
const ERROR_BODY_BYTES_MAX: usize = 64 << 10;

/// What the access log needs from the request, taken before it is handed to s3s.
struct LogHead {
    method: String,
    path: String,
    query: Option<String>,
    remote: Option<String>,
    bytes_in: Option<u64>,
}

impl LogHead {
    fn of(req: &http::Request<hyper::body::Incoming>, peer: Option<std::net::SocketAddr>) -> Self {
        Self {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            remote: peer.map(|p| p.to_string()),
            bytes_in: content_length(req.headers()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        log: &crate::access_log::AccessLog,
        id: &RequestId,
        info: &crate::access_log::ReqInfo,
        status: u16,
        error_code: Option<&str>,
        to_head: std::time::Duration,
        sent: u64,
    ) {
        log.write(&crate::access_log::Record {
            time: crate::access_log::now_rfc3339(),
            request_id: &id.0,
            remote: self.remote.clone(),
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            operation: info.operation.get().map(String::as_str),
            principal: info.principal.get().map(String::as_str),
            status,
            error_code,
            bytes_in: self.bytes_in,
            bytes_out: Some(sent),
            duration_ms: to_head.as_secs_f64() * 1000.0,
        });
    }
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Stamp the request id on the response (header, and inside an error body, which also gets the
/// elements AWS sends: Message, Resource, BucketName/Key for NoSuchBucket/NoSuchKey); return the
/// S3 error code of an error response.
async fn stamp_request_id(
    resp: &mut s3s::HttpResponse,
    id: &RequestId,
    path: &str,
    info: &crate::access_log::ReqInfo,
) -> Option<String> {
    if let Ok(v) = http::HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    if resp.status().as_u16() < 400 {
        return None;
    }
    if resp.status() == http::StatusCode::NOT_FOUND && info.hide_missing.get().is_some() {
        // The caller may not list the bucket: whether a key exists is not its business.
        *resp.status_mut() = http::StatusCode::FORBIDDEN;
        let head = info.operation.get().is_some_and(|o| o == "HeadObject");
        let body = if head {
            String::new()
        } else {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
                xml_escape(path),
                id.0
            )
        };
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
        *resp.body_mut() = s3s::Body::from(body);
        return Some("AccessDenied".into());
    }
    let mut body = std::mem::take(resp.body_mut());
    let Ok(bytes) = body.store_all_limited(ERROR_BODY_BYTES_MAX).await else { return None };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let code = xml_element(&text, "Code");
    let new = match (text.rfind("</Error>"), &code) {
        (Some(i), Some(code)) => {
            let mut extra = String::new();
            if xml_element(&text, "Message").is_none() {
                extra.push_str(&format!("<Message>{}</Message>", xml_escape(default_message(code))));
            }
            match (code.as_str(), info.bucket.get(), info.key.get()) {
                ("NoSuchBucket", Some(b), _) => extra.push_str(&format!("<BucketName>{}</BucketName>", xml_escape(b))),
                ("NoSuchKey", _, Some(k)) => extra.push_str(&format!("<Key>{}</Key>", xml_escape(k))),
                _ => {}
            }
            if xml_element(&text, "Resource").is_none() {
                extra.push_str(&format!("<Resource>{}</Resource>", xml_escape(path)));
            }
            if xml_element(&text, "RequestId").is_none() {
                extra.push_str(&format!("<RequestId>{}</RequestId>", id.0));
            }
            format!("{}{extra}{}", &text[..i], &text[i..])
        }
        _ => text,
    };
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    if !new.is_empty() {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(new.len()));
    }
    *resp.body_mut() = s3s::Body::from(new);
    code.or_else(|| Some(resp.status().as_u16().to_string()))
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let i = text.find(&open)? + open.len();
    let j = text[i..].find(&format!("</{name}>"))?;
    Some(text[i..i + j].to_owned())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// AWS's messages for codes that s3s sends without one.
fn default_message(code: &str) -> &'static str {
    match code {
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchUpload" => "The specified upload does not exist.",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "KeyTooLongError" => "Your key is too long",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema"
        }
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "AccessDenied" => "Access Denied",
        "InvalidRange" => "The requested range is not satisfiable",
        "PreconditionFailed" => "At least one of the pre-conditions you specified did not hold",
        "NotImplemented" => "A header you provided implies functionality that is not implemented",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "InternalError" => "We encountered an internal error. Please try again.",
        _ => "The request could not be completed.",
    }
}

fn is_empty_expect_continue(h: &http::HeaderMap) -> bool {
    let expect = h.get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    expect && h.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0")
}

/// Serve until SIGTERM/SIGINT, then let in-flight requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    service: Front,
    tls: Option<TlsAcceptor>,
    connections_max: usize,
    zero_copy: bool,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(connections_max));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = stream.set_nodelay(true);
        let mut service = service.clone();
        service.peer = Some(peer);
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => serve_conn(TokioIo::new(s), service, watcher).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
                None if zero_copy => {
                    let (stream, regions) = crate::zerocopy::ZcStream::new(stream);
                    service.regions = Some(regions);
                    serve_conn(TokioIo::new(stream), service, watcher).await
                }
                None => serve_conn(TokioIo::new(stream), service, watcher).await,
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period over; aborting remaining requests");
    }
    Ok(())
}

async fn serve_conn<I>(io: I, service: Front, watcher: hyper_util::server::graceful::Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    // Body chunks are queued as they are and written with writev, never copied into hyper's
    // buffer (the zero-copy stream recognises its chunks by their address; see `zerocopy`).
    builder.http1().writev(true);
    let conn = builder.serve_connection(io, service);
    let conn = watcher.watch(conn.into_owned());
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
