//! `strait-loadgen`: the load generator of the data-path benchmark (`bench/peers.py`).
//!
//! One run is one workload against one endpoint; it prints exactly one JSON line to stdout:
//!
//! ```text
//! {"workload","op","kind","size","streams","concurrency","bytes","seconds","gib_per_s",
//!  "ops","ops_per_s","p50_ms","p99_ms","errors"}
//! ```
//!
//! and exits non-zero when any request failed (an HTTP status outside 2xx, a transport error, or
//! a body of the wrong length). Diagnostics go to stderr. The tool only measures: it asserts no
//! timings.
//!
//! Endpoints (`--kind`):
//! - `s3`: path-style requests (`{endpoint}/{bucket}/{key}`) signed with SigV4 (aws-sigv4, the
//!   way `mpi-shim/src/core.rs` signs). Bodies of PUTs and parts are sent as
//!   `x-amz-content-sha256: UNSIGNED-PAYLOAD`, so the client hashes nothing it uploads.
//! - `plain`: unsigned GET/PUT/HEAD of `{endpoint}/{bucket}/{key}` (nginx with its WebDAV module
//!   for PUT, sendfile for GET).
//!
//! Workloads (`--workload`):
//! - `put-large`: PUT `--size` bytes (default 1 GiB) to `--streams` keys `{prefix}0..` at once.
//!   The body is generated in memory once and every request sends the same shared `Bytes`.
//! - `get-large`: GET `--streams` keys `{prefix}0..` at once; bodies are discarded chunk by chunk,
//!   their bytes counted and checked against Content-Length (and `--size` when given).
//! - `get-ranged`: GET one key (`--key`, default `{prefix}0`) as `--range-size` ranges (default
//!   8 MiB) with `--concurrency` in flight; its size comes from a HEAD before the timer. A 200
//!   answer carrying the requested Content-Range counts as a range (rclone serve s3 answers so).
//! - `small`: fixed-size objects (`--size`, default 4 KiB): `--op put|get|head` with
//!   `--concurrency` workers on keys `{prefix}{i mod --keys}`, for `--duration` seconds or `--ops`
//!   requests (default: one request per key). GET and HEAD need the keys to exist (a `--op put`
//!   run with `--ops` = `--keys` creates them). Every request's latency is recorded.
//! - `multipart` (s3 only): CreateMultipartUpload, `--part-size` parts (default 16 MiB) with
//!   `--concurrency` in flight (default 1), CompleteMultipartUpload; the timer spans all three.
//!
//! Default prefixes: `large-` (put-large, get-large, get-ranged), `small-` (small), `mp-`
//! (multipart). Sizes take binary suffixes: `4KiB`, `8M`, `1GiB`, `1073741824`.
//!
//! Connections: plain HTTP/1.1 with keep-alive, one pool sized to the concurrency, no proxies,
//! no redirects. Latencies (p50/p99, nearest rank) are per request: a whole object for the
//! large workloads, a range or a part for ranged GETs and multipart.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Characters of a key left unencoded in a URL path (S3's rule: unreserved and `/`).
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
/// Characters of a query value left unencoded (unreserved only).
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
const GIB: f64 = (1u64 << 30) as f64;
/// At most this many failures are described on stderr (all are counted).
const ERRORS_SHOWN: usize = 10;

type Result<T> = std::result::Result<T, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// S3 API, SigV4-signed, path-style.
    S3,
    /// Unsigned GET/PUT/HEAD of {endpoint}/{bucket}/{key} (nginx, WebDAV PUT).
    Plain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    PutLarge,
    GetLarge,
    GetRanged,
    Small,
    Multipart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Put,
    Get,
    Head,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Head => "head",
        }
    }
}

/// Load generator for Strait's data-path benchmark (see bench/peers.py). Prints one JSON line.
#[derive(Parser, Debug)]
#[command(name = "strait-loadgen", version)]
struct Args {
    /// Base URL, http://host:port (no path).
    #[arg(long)]
    endpoint: String,
    /// s3: SigV4-signed path-style S3 requests; plain: unsigned HTTP (nginx WebDAV).
    #[arg(long, value_enum, default_value_t = Kind::S3)]
    kind: Kind,
    #[arg(long, default_value = "bench")]
    bucket: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", default_value = "", hide_env_values = true, hide_default_value = true)]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, value_enum)]
    workload: Workload,
    /// Object size: put-large and multipart (default 1GiB), small (default 4KiB); for get-large
    /// and get-ranged the expected size, checked.
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Objects moved at once (put-large, get-large).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    streams: u64,
    /// Requests in flight (small, get-ranged, multipart).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Range length of get-ranged.
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    range_size: u64,
    /// Part size of multipart.
    #[arg(long, value_parser = parse_size, default_value = "16MiB")]
    part_size: u64,
    /// Operation of the small workload.
    #[arg(long, value_enum)]
    op: Option<Op>,
    /// small: run for this many seconds (conflicts with --ops).
    #[arg(long, conflicts_with = "ops")]
    duration: Option<f64>,
    /// small: send this many requests [default: --keys].
    #[arg(long)]
    ops: Option<u64>,
    /// small: number of distinct keys, {prefix}0 .. {prefix}{keys-1}.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Key prefix [default: large-, small- or mp- by workload].
    #[arg(long)]
    prefix: Option<String>,
    /// Object key of get-ranged and multipart [default: {prefix}0].
    #[arg(long)]
    key: Option<String>,
    /// Seconds without progress on one request before it fails.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// `4096`, `4k`, `4KiB`, `8M`, `8MiB`, `1G`, `1GiB` (all binary multiples).
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("size {s:?}: expected a number with an optional K/M/G(iB) suffix"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => return Err(format!("size {s:?}: unknown unit {u:?}")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("size {s:?}: too large"))
}

/// Deterministic, incompressible bytes (xorshift64*), generated once per run.
fn pattern(len: u64, seed: u64) -> Result<Bytes> {
    let len = usize::try_from(len).map_err(|_| format!("size {len} does not fit in memory"))?;
    let mut v = vec![0u8; len];
    let mut x = seed | 1;
    for chunk in v.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let w = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    Ok(Bytes::from(v))
}

/// Print a failure to stderr (the first few) and count it.
fn report(errors: &AtomicU64, msg: &str) {
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    errors.fetch_add(1, Ordering::Relaxed);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < ERRORS_SHOWN {
        eprintln!("strait-loadgen: {msg}");
    }
}

/// How the body of a request enters the signature.
enum Payload<'a> {
    /// No body (GET, HEAD, DELETE, POST ?uploads): the hash of the empty string.
    Empty,
    /// A body sent as `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// A small body whose SHA-256 is signed (CompleteMultipartUpload's XML).
    Signed(&'a [u8]),
}

/// One endpoint and bucket: the connection pool and, for S3, the signing identity.
struct Target {
    http: reqwest::Client,
    /// `http://host:port`
    base: String,
    /// `host:port`, the Host header that is signed.
    host: String,
    bucket: String,
    /// `Some((identity, region))` for `--kind s3`.
    signer: Option<(Identity, String)>,
}

impl Target {
    fn new(a: &Args, pool: usize) -> Result<Self> {
        let base = a.endpoint.trim_end_matches('/').to_owned();
        let uri: http::Uri = base.parse().map_err(|e| format!("--endpoint {base}: {e}"))?;
        let host = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(au)) if uri.path() == "/" || uri.path().is_empty() => au.as_str().to_owned(),
            _ => return Err(format!("--endpoint {base}: expected http://host[:port] (plain HTTP, no path)")),
        };
        let signer = match a.kind {
            Kind::Plain => None,
            Kind::S3 => {
                if a.access_key.is_empty() || a.secret_key.is_empty() {
                    return Err(
                        "--kind s3 needs --access-key and --secret-key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
                            .into(),
                    );
                }
                let id: Identity =
                    Credentials::new(a.access_key.clone(), a.secret_key.clone(), None, None, "strait-loadgen").into();
                Some((id, a.region.clone()))
            }
        };
        let http = reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(600))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(a.timeout))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { http, base, host, bucket: a.bucket.clone(), signer })
    }

    fn url(&self, key: &str, query: &str) -> String {
        let path = format!("/{}/{}", utf8_percent_encode(&self.bucket, KEY_SET), utf8_percent_encode(key, KEY_SET));
        if query.is_empty() {
            format!("{}{}", self.base, path)
        } else {
            format!("{}{}?{}", self.base, path, query)
        }
    }

    /// Send one request; `query` is already encoded. A body, when given, is sent with its
    /// Content-Length (signed for S3).
    async fn send(
        &self,
        method: Method,
        key: &str,
        query: &str,
        headers: &[(HeaderName, String)],
        body: Option<Bytes>,
        payload: Payload<'_>,
    ) -> Result<reqwest::Response> {
        let url = self.url(key, query);
        let what = || format!("{method} {url}");
        let mut b = http::Request::builder().method(method.clone()).uri(&url).header(http::header::HOST, &self.host);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        if let Some(body) = &body {
            b = b.header(http::header::CONTENT_LENGTH, body.len());
        }
        let mut req = b.body(body.unwrap_or_default()).map_err(|e| format!("{}: {e}", what()))?;
        if let Some((identity, region)) = &self.signer {
            let mut settings = SigningSettings::default();
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(identity)
                .region(region)
                .name("s3")
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .map_err(|e| format!("signing: {e}"))?
                .into();
            let signable_body = match payload {
                Payload::Empty => SignableBody::Bytes(&[]),
                Payload::Unsigned => SignableBody::UnsignedPayload,
                Payload::Signed(b) => SignableBody::Bytes(b),
            };
            let hdrs: Vec<(&str, &str)> =
                req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
            let signable = SignableRequest::new(method.as_str(), url.as_str(), hdrs.into_iter(), signable_body)
                .map_err(|e| format!("signing {}: {e}", what()))?;
            let (instructions, _) =
                sign(signable, &params).map_err(|e| format!("signing {}: {e}", what()))?.into_parts();
            instructions.apply_to_request_http1x(&mut req);
        }
        let req = reqwest::Request::try_from(req).map_err(|e| format!("{}: {e}", what()))?;
        self.http.execute(req).await.map_err(|e| format!("{}: {e}", what()))
    }

    /// Fail on a status outside 2xx, with the start of the answer's body.
    async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(format!("{what}: HTTP {}{}", resp.status(), snippet(resp).await))
    }

    /// PUT a body; the answer's body (if any) is read so that the connection is reused.
    async fn put(&self, key: &str, query: &str, body: Bytes) -> Result<reqwest::Response> {
        let what = format!("PUT {key}{}", if query.is_empty() { String::new() } else { format!("?{query}") });
        let resp = self.send(Method::PUT, key, query, &[], Some(body), Payload::Unsigned).await?;
        Self::check(resp, &what).await
    }

    /// GET the object or the inclusive byte range, discarding the body chunk by chunk; returns
    /// the bytes received after checking them against Content-Length and `want`.
    async fn get(&self, key: &str, range: Option<(u64, u64)>, want: Option<u64>) -> Result<u64> {
        let headers: Vec<(HeaderName, String)> =
            range.map(|(a, b)| (http::header::RANGE, format!("bytes={a}-{b}"))).into_iter().collect();
        let what = match range {
            Some((a, b)) => format!("GET {key} bytes={a}-{b}"),
            None => format!("GET {key}"),
        };
        let resp = self.send(Method::GET, key, "", &headers, None, Payload::Empty).await?;
        let mut resp = Self::check(resp, &what).await?;
        if let Some((a, b)) = range {
            // rclone serve s3 (gofakes3) answers a range with 200 and the right Content-Range:
            // accepted; a 200 without it means the Range header was ignored.
            let cr = resp.headers().get(http::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ranged = resp.status() == StatusCode::PARTIAL_CONTENT
                || (resp.status() == StatusCode::OK && cr.starts_with(&format!("bytes {a}-{b}/")));
            if !ranged {
                return Err(format!(
                    "{what}: HTTP {} (Content-Range {cr:?}) instead of 206 Partial Content",
                    resp.status()
                ));
            }
        }
        let declared = content_length(resp.headers());
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{what}: after {n} bytes: {e}"))? {
            n += chunk.len() as u64;
        }
        if let Some(d) = declared {
            if d != n {
                return Err(format!("{what}: {n} bytes received, Content-Length {d}"));
            }
        }
        if let Some(w) = want {
            if w != n {
                return Err(format!("{what}: {n} bytes received, expected {w}"));
            }
        }
        Ok(n)
    }

    /// HEAD: the object's Content-Length.
    async fn head(&self, key: &str) -> Result<u64> {
        let what = format!("HEAD {key}");
        let resp = self.send(Method::HEAD, key, "", &[], None, Payload::Empty).await?;
        let resp = Self::check(resp, &what).await?;
        content_length(resp.headers()).ok_or_else(|| format!("{what}: no Content-Length"))
    }

    /// A POST with an optional signed body; returns the answer's text (S3 may put an `<Error>`
    /// in a 200 answer to CompleteMultipartUpload, so callers look for it).
    async fn post(&self, key: &str, query: &str, body: Option<Bytes>) -> Result<String> {
        let what = format!("POST {key}?{query}");
        let body = body.unwrap_or_default();
        let resp = self.send(Method::POST, key, query, &[], Some(body.clone()), Payload::Signed(&body)).await?;
        let mut resp = Self::check(resp, &what).await?;
        let mut text = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{what}: {e}"))? {
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if text.contains("<Error>") {
            return Err(format!("{what}: error in a 200 answer: {}", text.chars().take(300).collect::<String>()));
        }
        Ok(text)
    }
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH).and_then(|v: &HeaderValue| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// The start of an error answer's body, for messages.
async fn snippet(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < 512 {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(512);
    let s = String::from_utf8_lossy(&body).split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        s
    } else {
        format!(" {s}")
    }
}

/// The text of the first `<tag>…</tag>` in an XML answer (tiny string search; enough for
/// UploadId).
fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(&body[start..end])
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What a run measured.
#[derive(Default)]
struct Tally {
    bytes: u64,
    ops: u64,
    /// Per-request latencies, milliseconds.
    lat_ms: Vec<f64>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.bytes += o.bytes;
        self.ops += o.ops;
        self.lat_ms.extend(o.lat_ms);
    }

    fn record(&mut self, bytes: u64, t0: Instant) {
        self.bytes += bytes;
        self.ops += 1;
        self.lat_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Wait for every task; a panicked task counts as an error.
async fn join_all(set: &mut tokio::task::JoinSet<Tally>, errors: &AtomicU64) -> Tally {
    let mut total = Tally::default();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(t) => total.merge(t),
            Err(e) => report(errors, &format!("worker failed: {e}")),
        }
    }
    total
}

fn prefix_of(a: &Args) -> String {
    a.prefix.clone().unwrap_or_else(|| {
        match a.workload {
            Workload::PutLarge | Workload::GetLarge | Workload::GetRanged => "large-",
            Workload::Small => "small-",
            Workload::Multipart => "mp-",
        }
        .to_owned()
    })
}

/// The JSON line's fields that differ by workload.
struct Shape {
    op: &'static str,
    size: u64,
    streams: u64,
    concurrency: u64,
}

async fn put_large(a: &Args, t: Arc<Target>, errors: Arc<AtomicU64>) -> Result<(Shape, Tally, f64)> {
    let size = a.size.unwrap_or(1 << 30);
    let body = pattern(size, 0x5EED)?;
    let prefix = prefix_of(a);
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..a.streams {
        let (t, body, errors, key) = (t.clone(), body.clone(), errors.clone(), format!("{prefix}{i}"));
        set.spawn(async move {
            let mut tally = Tally::default();
            let t0 = Instant::now();
            match t.put(&key, "", body).await {
                Ok(mut resp) => {
                    while let Ok(Some(_)) = resp.chunk().await {}
                    tally.record(size, t0);
                }
                Err(e) => report(&errors, &e),
            }
            tally
        });
    }
    let tally = join_all(&mut set, &errors).await;
    let secs = start.elapsed().as_secs_f64();
    Ok((Shape { op: "put", size, streams: a.streams, concurrency: a.streams }, tally, secs))
}

async fn get_large(a: &Args, t: Arc<Target>, errors: Arc<AtomicU64>) -> Result<(Shape, Tally, f64)> {
    let prefix = prefix_of(a);
    let seen = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..a.streams {
        let (t, errors, seen, key, want) = (t.clone(), errors.clone(), seen.clone(), format!("{prefix}{i}"), a.size);
        set.spawn(async move {
            let mut tally = Tally::default();
            let t0 = Instant::now();
            match t.get(&key, None, want).await {
                Ok(n) => {
                    seen.store(n, Ordering::Relaxed);
                    tally.record(n, t0);
                }
                Err(e) => report(&errors, &e),
            }
            tally
        });
    }
    let tally = join_all(&mut set, &errors).await;
    let secs = start.elapsed().as_secs_f64();
    let size = a.size.unwrap_or_else(|| seen.load(Ordering::Relaxed));
    Ok((Shape { op: "get", size, streams: a.streams, concurrency: a.streams }, tally, secs))
}

async fn get_ranged(a: &Args, t: Arc<Target>, errors: Arc<AtomicU64>) -> Result<(Shape, Tally, f64)> {
    let key = a.key.clone().unwrap_or_else(|| format!("{}0", prefix_of(a)));
    if a.range_size == 0 {
        return Err("--range-size must be at least 1 byte".into());
    }
    let total = t.head(&key).await?;
    if let Some(want) = a.size {
        if want != total {
            return Err(format!("{key}: {total} bytes, --size says {want}"));
        }
    }
    let ranges = total.div_ceil(a.range_size);
    let next = Arc::new(AtomicU64::new(0));
    let rs = a.range_size;
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..a.concurrency.min(ranges.max(1)) {
        let (t, errors, next, key) = (t.clone(), errors.clone(), next.clone(), key.clone());
        set.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ranges {
                    break;
                }
                let off = i * rs;
                let len = rs.min(total - off);
                let t0 = Instant::now();
                match t.get(&key, Some((off, off + len - 1)), Some(len)).await {
                    Ok(n) => tally.record(n, t0),
                    Err(e) => report(&errors, &e),
                }
            }
            tally
        });
    }
    let tally = join_all(&mut set, &errors).await;
    let secs = start.elapsed().as_secs_f64();
    Ok((Shape { op: "get", size: total, streams: 1, concurrency: a.concurrency }, tally, secs))
}

async fn small(a: &Args, t: Arc<Target>, errors: Arc<AtomicU64>) -> Result<(Shape, Tally, f64)> {
    let op = a.op.ok_or("--workload small needs --op put|get|head")?;
    let size = a.size.unwrap_or(4 << 10);
    let body = if op == Op::Put { pattern(size, 0xA11CE)? } else { Bytes::new() };
    let prefix = Arc::new(prefix_of(a));
    let (keys, limit) = (a.keys, if a.duration.is_some() { u64::MAX } else { a.ops.unwrap_or(a.keys) });
    let deadline = match a.duration {
        Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
        Some(d) => return Err(format!("--duration {d}: expected seconds > 0")),
        None => None,
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..a.concurrency {
        let (t, errors, next, prefix, body) = (t.clone(), errors.clone(), next.clone(), prefix.clone(), body.clone());
        set.spawn(async move {
            let mut tally = Tally::default();
            loop {
                if deadline.is_some_and(|d| start.elapsed() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let key = format!("{prefix}{}", i % keys);
                let t0 = Instant::now();
                let r = match op {
                    Op::Put => match t.put(&key, "", body.clone()).await {
                        Ok(mut resp) => {
                            while let Ok(Some(_)) = resp.chunk().await {}
                            Ok(size)
                        }
                        Err(e) => Err(e),
                    },
                    Op::Get => t.get(&key, None, Some(size)).await,
                    Op::Head => match t.head(&key).await {
                        Ok(n) if n == size => Ok(0),
                        Ok(n) => Err(format!("HEAD {key}: Content-Length {n}, expected {size}")),
                        Err(e) => Err(e),
                    },
                };
                match r {
                    Ok(n) => tally.record(n, t0),
                    Err(e) => report(&errors, &e),
                }
            }
            tally
        });
    }
    let tally = join_all(&mut set, &errors).await;
    let secs = start.elapsed().as_secs_f64();
    Ok((Shape { op: op.name(), size, streams: 1, concurrency: a.concurrency }, tally, secs))
}

async fn multipart(a: &Args, t: Arc<Target>, errors: Arc<AtomicU64>) -> Result<(Shape, Tally, f64)> {
    if a.kind != Kind::S3 {
        return Err("--workload multipart needs --kind s3".into());
    }
    let size = a.size.unwrap_or(1 << 30);
    if a.part_size == 0 {
        return Err("--part-size must be at least 1 byte".into());
    }
    let parts = size.div_ceil(a.part_size).max(1);
    if parts > 10_000 {
        return Err(format!("{parts} parts: S3 allows at most 10000 (raise --part-size)"));
    }
    let body = pattern(size, 0x3917)?;
    let key = a.key.clone().unwrap_or_else(|| format!("{}0", prefix_of(a)));
    let ps = a.part_size;
    let start = Instant::now();
    let created = t.post(&key, "uploads", None).await?;
    let upload_id = xml_field(&created, "UploadId")
        .ok_or_else(|| format!("CreateMultipartUpload {key}: no <UploadId> in {created:?}"))?
        .to_owned();
    let id_q = utf8_percent_encode(&upload_id, QUERY_SET).to_string();
    let etags: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; parts as usize]));
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency.min(parts) {
        let (t, errors, next, key, id_q, body, etags) =
            (t.clone(), errors.clone(), next.clone(), key.clone(), id_q.clone(), body.clone(), etags.clone());
        set.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= parts {
                    break;
                }
                let off = i * ps;
                let len = ps.min(size - off);
                let part = body.slice(off as usize..(off + len) as usize);
                let query = format!("partNumber={}&uploadId={id_q}", i + 1);
                let t0 = Instant::now();
                match t.put(&key, &query, part).await {
                    Ok(mut resp) => {
                        let etag =
                            resp.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
                        while let Ok(Some(_)) = resp.chunk().await {}
                        match etag {
                            Some(e) => {
                                if let Ok(mut v) = etags.lock() {
                                    v[i as usize] = Some(e);
                                }
                                tally.record(len, t0);
                            }
                            None => report(&errors, &format!("UploadPart {key} #{}: no ETag", i + 1)),
                        }
                    }
                    Err(e) => report(&errors, &e),
                }
            }
            tally
        });
    }
    let mut tally = join_all(&mut set, &errors).await;
    let etags = etags.lock().map_err(|_| "part list poisoned".to_owned())?.clone();
    if etags.iter().any(Option::is_none) {
        // Best effort: leave no upload behind.
        let _ = t.send(Method::DELETE, &key, &format!("uploadId={id_q}"), &[], None, Payload::Empty).await;
        return Err(format!(
            "multipart {key}: {} of {parts} parts failed; upload aborted",
            etags.iter().filter(|e| e.is_none()).count()
        ));
    }
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, e) in etags.iter().enumerate() {
        let e = e.as_deref().unwrap_or_default();
        xml.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, xml_escape(e)));
    }
    xml.push_str("</CompleteMultipartUpload>");
    t.post(&key, &format!("uploadId={id_q}"), Some(Bytes::from(xml))).await?;
    let secs = start.elapsed().as_secs_f64();
    tally.ops += 2; // create and complete (their latencies are not in the part percentiles)
    Ok((Shape { op: "put", size, streams: 1, concurrency: a.concurrency }, tally, secs))
}

fn workload_name(w: Workload) -> &'static str {
    match w {
        Workload::PutLarge => "put-large",
        Workload::GetLarge => "get-large",
        Workload::GetRanged => "get-ranged",
        Workload::Small => "small",
        Workload::Multipart => "multipart",
    }
}

/// The shape a failed run reports (nothing was measured).
fn shape_of_args(a: &Args) -> Shape {
    let (op, size, streams, concurrency) = match a.workload {
        Workload::PutLarge => ("put", a.size.unwrap_or(1 << 30), a.streams, a.streams),
        Workload::GetLarge => ("get", a.size.unwrap_or(0), a.streams, a.streams),
        Workload::GetRanged => ("get", a.size.unwrap_or(0), 1, a.concurrency),
        Workload::Small => (a.op.map_or("", Op::name), a.size.unwrap_or(4 << 10), 1, a.concurrency),
        Workload::Multipart => ("put", a.size.unwrap_or(1 << 30), 1, a.concurrency),
    };
    Shape { op, size, streams, concurrency }
}

/// Run the workload and print its JSON line; returns the number of failed requests. A failure
/// that stops the whole run (a bad endpoint, a failed HEAD or CreateMultipartUpload) still
/// prints the line, with what was measured so far being nothing and `errors` at least 1.
async fn run(a: Args) -> u64 {
    let errors = Arc::new(AtomicU64::new(0));
    let pool = a.streams.max(a.concurrency) as usize;
    let outcome = match Target::new(&a, pool) {
        Err(e) => Err(e),
        Ok(t) => {
            let t = Arc::new(t);
            match a.workload {
                Workload::PutLarge => put_large(&a, t, errors.clone()).await,
                Workload::GetLarge => get_large(&a, t, errors.clone()).await,
                Workload::GetRanged => get_ranged(&a, t, errors.clone()).await,
                Workload::Small => small(&a, t, errors.clone()).await,
                Workload::Multipart => multipart(&a, t, errors.clone()).await,
            }
        }
    };
    let (shape, mut tally, secs) = match outcome {
        Ok(r) => r,
        Err(e) => {
            report(&errors, &e);
            (shape_of_args(&a), Tally::default(), 0.0)
        }
    };
    tally.lat_ms.sort_by(f64::total_cmp);
    let errors = errors.load(Ordering::Relaxed);
    let kind = match a.kind {
        Kind::S3 => "s3",
        Kind::Plain => "plain",
    };
    let rate = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    let line = serde_json::json!({
        "workload": workload_name(a.workload),
        "op": shape.op,
        "kind": kind,
        "size": shape.size,
        "streams": shape.streams,
        "concurrency": shape.concurrency,
        "bytes": tally.bytes,
        "seconds": secs,
        "gib_per_s": rate(tally.bytes as f64 / GIB),
        "ops": tally.ops,
        "ops_per_s": rate(tally.ops as f64),
        "p50_ms": percentile(&tally.lat_ms, 50.0),
        "p99_ms": percentile(&tally.lat_ms, 99.0),
        "errors": errors,
    });
    println!("{line}");
    errors
}

fn main() -> ExitCode {
    let a = Args::parse();
    // See Cargo.toml: needed only when workspace features give reqwest rustls without a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strait-loadgen: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(a)) {
        0 => ExitCode::SUCCESS,
        n => {
            eprintln!("strait-loadgen: {n} failure(s)");
            ExitCode::from(1)
        }
    }
}
