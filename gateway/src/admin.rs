//! The admin listener: `/metrics` (Prometheus), `/health/live`, `/health/ready`, and the dataset
//! catalog API (`/catalog/...`, JSON).
//!
//! Catalog endpoints:
//! - `GET /catalog/datasets` (all), `GET /catalog/datasets/{id}`, `PUT /catalog/datasets/{id}`
//!   (create or replace; body: a dataset JSON, see `catalog::Dataset`), `DELETE /catalog/datasets/{id}`;
//! - `GET /catalog/search?q=words&keyword=&format=&steward=&bucket=&domain=&tag=KEY=VALUE` (all
//!   must match; `tag`: the dataset holds an object carrying that tag);
//! - `GET /catalog/objects?tag=KEY=VALUE[&bucket=B][&limit=N]`: objects carrying the tag, from the
//!   object tag index, each checked against the object's current metadata;
//! - `GET /catalog/dcat`: the catalog as DCAT 3 JSON-LD (`application/ld+json`).
//!
//! Bucket endpoints: `GET /admin/buckets` (linked buckets), `PUT /admin/buckets/{name}` with
//! `{"path": "/lustre/proj/x", "tenant": "climate"}` (link and serve at once; `tenant` optional),
//! or `{"tenant": "climate"}` alone (create the bucket under the root, given to the tenant's
//! POSIX identity), `DELETE /admin/buckets/{name}` (unlink).
//!
//! With `STRAIT_ADMIN_TOKEN` set, every catalog request must carry `Authorization: Bearer TOKEN`.
//! Bucket requests are always authenticated: the bearer token, or `Authorization: Basic` with
//! the root access key and secret.
//!
//! Identity endpoints (`/admin/tenants/...`, always authenticated): see `admin_iam.rs`.

use crate::catalog::{self, Dataset};
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use strait_connectors::{ObjectKey, PosixStore};
use strait_metadata::MetaStore;

/// Largest dataset document accepted.
const DATASET_BYTES_MAX: usize = 256 << 10;

#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub root: PathBuf,
    pub state_dir: PathBuf,
    pub meta: Arc<MetaStore>,
    pub store: PosixStore,
    /// Bearer token required by the catalog API, when set.
    pub token: Option<String>,
    pub iam: Arc<crate::iam::Iam>,
    /// The administrator's access key and secret (Basic authentication of the identity API).
    pub root_credentials: (String, String),
    pub audit_log: Option<Arc<crate::access_log::AccessLog>>,
}

pub(crate) type Resp = http::Response<Full<Bytes>>;

pub(crate) fn text(status: u16, body: String, ctype: &'static str) -> Resp {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

pub(crate) fn json_resp(status: u16, v: &serde_json::Value) -> Resp {
    text(status, format!("{v:#}\n"), "application/json")
}

/// An API error: status and message, answered as `{"error": message}`.
pub(crate) struct ApiError(u16, String);

impl ApiError {
    fn into_resp(self) -> Resp {
        json_resp(self.0, &json!({"error": self.1}))
    }
}

pub(crate) fn error(status: u16, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into())
}

pub(crate) fn query_params(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| urlencoding::decode(&s.replace('+', " ")).map(|c| c.into_owned()).unwrap_or_default();
            (dec(k), dec(v))
        })
        .collect()
}

impl Admin {
    fn ready(&self) -> Result<(), String> {
        for (what, p) in [("root", &self.root), ("state directory", &self.state_dir)] {
            std::fs::read_dir(p).map_err(|e| format!("{what} {}: {e}", p.display()))?;
        }
        Ok(())
    }

    async fn handle(&self, req: http::Request<hyper::body::Incoming>) -> Resp {
        let path = req.uri().path().to_owned();
        match (req.method(), path.as_str()) {
            (&http::Method::GET, "/metrics") => text(
                200,
                self.metrics.render(self.meta.memory_usage()),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (&http::Method::GET, "/health/live") => text(200, "ok\n".into(), "text/plain"),
            (&http::Method::GET, "/health/ready") => match self.ready() {
                Ok(()) => text(200, "ready\n".into(), "text/plain"),
                Err(e) => text(503, format!("not ready: {e}\n"), "text/plain"),
            },
            (&http::Method::POST, "/admin/simulate") => {
                self.clone().simulate_api(req).await.unwrap_or_else(ApiError::into_resp)
            }
            (_, p) if p == "/admin/oidc" || p.starts_with("/admin/oidc/") => {
                self.clone().oidc_api(req).await.unwrap_or_else(ApiError::into_resp)
            }
            (_, p) if p == "/admin/buckets" || p.starts_with("/admin/buckets/") => {
                // Linking directories and creating buckets for tenants: the administrator only
                // (root credentials or the admin token), always authenticated.
                let me = self.clone();
                let r = async {
                    match me.authenticate(req.headers())? {
                        crate::admin_iam::AdminCaller::System(_) => me.clone().buckets(req).await,
                        crate::admin_iam::AdminCaller::Tenant(_) => {
                            Err(error(403, "bucket links and creation are the administrator's"))
                        }
                    }
                };
                r.await.unwrap_or_else(ApiError::into_resp)
            }
            (_, p) if p == "/admin/tenants" || p.starts_with("/admin/tenants/") => {
                // The identity API authenticates every request itself (see admin_iam.rs).
                self.clone().tenants_api(req).await.unwrap_or_else(ApiError::into_resp)
            }
            (_, p) if p == "/catalog" || p.starts_with("/catalog/") || p.starts_with("/admin/") => {
                if let Some(t) = &self.token {
                    let want = format!("Bearer {t}");
                    let got = req.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
                    let ok = got.is_some_and(|g| subtle::ConstantTimeEq::ct_eq(g, want.as_bytes()).into());
                    if !ok {
                        return error(401, "the catalog API needs Authorization: Bearer <STRAIT_ADMIN_TOKEN>")
                            .into_resp();
                    }
                }
                let me = self.clone();
                if path.starts_with("/admin/") {
                    return me.buckets(req).await.unwrap_or_else(ApiError::into_resp);
                }
                me.catalog(req).await.unwrap_or_else(ApiError::into_resp)
            }
            _ => text(404, "not found\n".into(), "text/plain"),
        }
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Admin) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let me = self.clone();
        crate::s3::io::submit(move || f(&me)).await.map_err(|e| error(500, e.to_string()))?
    }

    async fn catalog(self, req: http::Request<hyper::body::Incoming>) -> Result<Resp, ApiError> {
        let db = |e: strait_metadata::MetaError| error(500, format!("metadata store: {e}"));
        let path = req.uri().path().to_owned();
        let params = query_params(req.uri().query());
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let method = req.method().clone();
        match (method, path.as_str()) {
            (http::Method::GET, "/catalog/datasets") => {
                let all = self.blocking(move |a| a.all_datasets()).await?;
                Ok(json_resp(200, &json!({ "datasets": all })))
            }
            (http::Method::GET, "/catalog/search") => {
                let q = catalog::Query {
                    text: param("q").map(|q| q.split_whitespace().map(str::to_owned).collect()).unwrap_or_default(),
                    keyword: param("keyword"),
                    format: param("format"),
                    steward: param("steward"),
                    bucket: param("bucket"),
                    domain: param("domain"),
                };
                let tag = match param("tag") {
                    None => None,
                    Some(t) => match t.split_once('=') {
                        Some((k, v)) => Some((k.to_owned(), v.to_owned())),
                        None => return Err(error(400, "tag: expected tag=KEY=VALUE")),
                    },
                };
                let hits = self
                    .blocking(move |a| {
                        let mut hits: Vec<Dataset> = a.all_datasets()?.into_iter().filter(|d| q.matches(d)).collect();
                        if let Some((k, v)) = tag {
                            // Datasets holding at least one object that carries the tag now.
                            let mut keep = Vec::new();
                            for d in hits {
                                if a.tagged_object_in(&d, &k, &v)? {
                                    keep.push(d);
                                }
                            }
                            hits = keep;
                        }
                        Ok(hits)
                    })
                    .await?;
                Ok(json_resp(200, &json!({ "datasets": hits })))
            }
            (http::Method::GET, "/catalog/dcat") => {
                let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
                let base = format!("http://{host}");
                let all = self.blocking(move |a| a.all_datasets()).await?;
                let doc = catalog::dcat(&all, &base);
                Ok(text(200, format!("{doc:#}\n"), "application/ld+json"))
            }
            (http::Method::GET, "/catalog/objects") => {
                let Some((k, v)) =
                    param("tag").and_then(|t| t.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                else {
                    return Err(error(400, "tag: expected tag=KEY=VALUE"));
                };
                let bucket = param("bucket");
                let limit = match param("limit").map(|l| l.parse::<usize>()) {
                    None => 1000,
                    Some(Ok(n)) if (1..=100_000).contains(&n) => n,
                    Some(_) => return Err(error(400, "limit: expected 1..100000")),
                };
                let objects = self
                    .blocking(move |a| {
                        let hits = a.meta.objects_with_tag(&k, &v, bucket.as_deref(), limit).map_err(db)?;
                        // The index is derived: keep only hits whose object still carries the tag.
                        let mut out = Vec::new();
                        for (b, key) in hits {
                            let Ok(ok) = ObjectKey::parse(&key) else { continue };
                            let Ok(obj) = a.store.bucket(&b).and_then(|bk| bk.open_object(&ok)) else { continue };
                            if obj.meta.tags.iter().any(|(tk, tv)| *tk == k && *tv == v) {
                                out.push(
                                    json!({"bucket": b, "key": key, "size": obj.meta.id.size, "etag": obj.meta.etag}),
                                );
                            }
                        }
                        Ok(out)
                    })
                    .await?;
                Ok(json_resp(200, &json!({ "objects": objects })))
            }
            (m, p) if p.starts_with("/catalog/datasets/") => {
                let id = p["/catalog/datasets/".len()..].to_owned();
                if !catalog::valid_id(&id) {
                    return Err(error(400, "id: expected 1-64 of a-z 0-9 - _ . starting with a letter or digit"));
                }
                match m {
                    http::Method::GET => {
                        let d = self.blocking(move |a| a.dataset(&id)).await?;
                        match d {
                            Some(d) => Ok(json_resp(200, &serde_json::to_value(d).expect("serializes"))),
                            None => Err(error(404, "no such dataset")),
                        }
                    }
                    http::Method::DELETE => {
                        let gone = self.blocking(move |a| a.meta.delete_dataset(&id).map_err(db)).await?;
                        if gone {
                            Ok(text(204, String::new(), "application/json"))
                        } else {
                            Err(error(404, "no such dataset"))
                        }
                    }
                    http::Method::PUT => {
                        let body = Limited::new(req.into_body(), DATASET_BYTES_MAX)
                            .collect()
                            .await
                            .map_err(|e| error(413, format!("dataset document: {e} (at most 256 KiB)")))?
                            .to_bytes();
                        let mut d: Dataset =
                            serde_json::from_slice(&body).map_err(|e| error(400, format!("dataset document: {e}")))?;
                        d.validate().map_err(|e| error(400, e))?;
                        let (status, d) = self
                            .blocking(move |a| {
                                let bucket = d.bucket.clone();
                                match a.store.bucket(&bucket) {
                                    Ok(_) => {}
                                    Err(strait_connectors::ConnectorError::NoSuchBucket(_)) => {
                                        return Err(error(400, format!("bucket: no bucket named {bucket}")))
                                    }
                                    Err(e) => return Err(error(500, e.to_string())),
                                }
                                let old = a.dataset(&id)?;
                                let now = crate::access_log::now_rfc3339();
                                d.v = catalog::FORMAT_VERSION;
                                d.id = id.clone();
                                d.created = old.as_ref().map_or_else(|| now.clone(), |o| o.created.clone());
                                d.modified = now;
                                let bytes = serde_json::to_vec(&d).expect("serializes");
                                a.meta.put_dataset(&id, &bytes).map_err(db)?;
                                Ok((if old.is_some() { 200 } else { 201 }, d))
                            })
                            .await?;
                        Ok(json_resp(status, &serde_json::to_value(d).expect("serializes")))
                    }
                    _ => Err(error(405, "method not allowed")),
                }
            }
            _ => Err(error(404, "not found")),
        }
    }

    /// `/admin/buckets`: linked buckets, changed while the gateway runs.
    async fn buckets(self, req: http::Request<hyper::body::Incoming>) -> Result<Resp, ApiError> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        if path == "/admin/buckets" && method == http::Method::GET {
            let all = self.blocking(|a| a.meta.bucket_links().map_err(|e| error(500, e.to_string()))).await?;
            let list: Vec<_> = all.iter().map(|r| json!({"name": r.name, "path": r.path})).collect();
            return Ok(json_resp(200, &json!({ "buckets": list })));
        }
        let Some(name) = path.strip_prefix("/admin/buckets/").map(str::to_owned) else {
            return Err(error(404, "not found"));
        };
        if let Some((bucket, rest)) = name.split_once("/policy") {
            return self.bucket_policy_history(req, bucket.to_owned(), rest.trim_start_matches('/').to_owned()).await;
        }
        match method {
            http::Method::PUT => {
                let body = Limited::new(req.into_body(), 64 << 10)
                    .collect()
                    .await
                    .map_err(|e| error(413, format!("body: {e}")))?
                    .to_bytes();
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Link {
                    /// Link this directory; absent: create the bucket under the root.
                    path: Option<PathBuf>,
                    /// The tenant the bucket belongs to (default: the administrator).
                    tenant: Option<String>,
                }
                let l: Link = serde_json::from_slice(&body).map_err(|e| {
                    error(400, format!("expected {{\"path\": \"/dir\", \"tenant\": \"name\"}} (both optional): {e}"))
                })?;
                let Some(path) = l.path else {
                    let tenant = l.tenant.clone();
                    let r = self
                        .blocking(move |a| {
                            crate::links::create(&a.meta, &a.store, &name, tenant.as_deref()).map_err(|e| error(400, e))
                        })
                        .await?;
                    tracing::info!(bucket = %r, "bucket created");
                    return Ok(json_resp(201, &json!({"name": r, "tenant": l.tenant})));
                };
                let l = Link { path: Some(path.clone()), tenant: l.tenant };
                let r = self
                    .blocking(move |a| {
                        crate::links::link(&a.meta, &a.store, &a.state_dir, &name, &path, l.tenant.as_deref())
                            .map_err(|e| error(400, e))
                    })
                    .await?;
                tracing::info!(bucket = %r.name, path = %r.path, "bucket linked");
                Ok(json_resp(201, &json!({"name": r.name, "path": r.path})))
            }
            http::Method::DELETE => {
                let n = name.clone();
                let gone = self
                    .blocking(move |a| crate::links::unlink(&a.meta, &a.store, &n).map_err(|e| error(500, e)))
                    .await?;
                if gone {
                    tracing::info!(bucket = %name, "bucket unlinked");
                    Ok(text(204, String::new(), "application/json"))
                } else {
                    Err(error(404, format!("bucket {name} is not linked")))
                }
            }
            _ => Err(error(405, "method not allowed")),
        }
    }

    /// `/admin/buckets/{b}/policy/versions`, `.../policy/diff?from=N&to=M`,
    /// `POST .../policy/rollback?version=N`: the bucket policies set through this gateway.
    async fn bucket_policy_history(
        self,
        req: http::Request<hyper::body::Incoming>,
        bucket: String,
        what: String,
    ) -> Result<Resp, ApiError> {
        let params = query_params(req.uri().query());
        let num = |k: &str| -> Result<Option<u32>, ApiError> {
            match params.iter().find(|(n, _)| n == k) {
                None => Ok(None),
                Some((_, v)) => v.parse().map(Some).map_err(|_| error(400, format!("{k}: expected a number"))),
            }
        };
        let b2 = bucket.clone();
        let versions =
            self.blocking(move |a| a.meta.bucket_policy_versions(&b2).map_err(|e| error(500, e.to_string()))).await?;
        let find = |n: u32| {
            versions
                .iter()
                .find(|v| v.version == n)
                .ok_or_else(|| error(404, format!("no version {n} of {bucket}'s policy")))
        };
        match (req.method().clone(), what.as_str()) {
            (http::Method::GET, "versions") => {
                let list: Vec<_> = versions
                    .iter()
                    .map(|v| {
                        json!({"version": v.version, "removed": v.document.is_none(), "author": v.author,
                                    "created_unix_s": v.created_unix_s})
                    })
                    .collect();
                Ok(json_resp(200, &json!({"bucket": bucket, "versions": list})))
            }
            (http::Method::GET, "diff") => {
                let last = versions.last().map_or(0, |v| v.version);
                let to = num("to")?.unwrap_or(last);
                let from = num("from")?.unwrap_or(to.saturating_sub(1));
                let pretty = |n: u32| -> Result<String, ApiError> {
                    if n == 0 {
                        return Ok(String::new());
                    }
                    Ok(match &find(n)?.document {
                        Some(d) => serde_json::from_str::<serde_json::Value>(d)
                            .map(|v| {
                                format!(
                                    "{v:#}
"
                                )
                            })
                            .unwrap_or(d.clone()),
                        None => String::new(),
                    })
                };
                let (a, b) = (pretty(from)?, pretty(to)?);
                let diff = similar::TextDiff::from_lines(&a, &b)
                    .unified_diff()
                    .header(&format!("{bucket} v{from}"), &format!("{bucket} v{to}"))
                    .to_string();
                Ok(text(200, diff, "text/x-diff"))
            }
            (http::Method::POST, "rollback") => {
                let n = num("version")?.ok_or_else(|| error(400, "version: required"))?;
                let doc = find(n)?.document.clone();
                let (b3, d3) = (bucket.clone(), doc.clone());
                let v = self
                    .blocking(move |a| {
                        let bk = a.store.bucket(&b3).map_err(|e| error(404, e.to_string()))?;
                        bk.set_policy(d3.as_deref()).map_err(|e| error(500, e.to_string()))?;
                        let now = time::OffsetDateTime::now_utc().unix_timestamp();
                        a.meta
                            .add_bucket_policy_version(&b3, d3.as_deref(), &format!("rollback to v{n}"), now)
                            .map_err(|e| error(500, e.to_string()))
                    })
                    .await?;
                if let Some(a) = &self.audit_log {
                    a.write(&crate::access_log::AuditRecord {
                        time: crate::access_log::now_rfc3339(),
                        kind: "change",
                        request_id: "",
                        remote: None,
                        principal: Some("administrator"),
                        operation: Some("RollbackBucketPolicy"),
                        bucket: Some(&bucket),
                        key: None,
                        resource: None,
                        status: 200,
                        error_code: None,
                        decided_by: None,
                    });
                }
                Ok(json_resp(200, &json!({"bucket": bucket, "version": v, "restored": n, "removed": doc.is_none()})))
            }
            _ => Err(error(404, "not found")),
        }
    }

    /// Whether an object under the dataset's prefix carries tag `k`=`v` (checked on the object).
    fn tagged_object_in(&self, d: &Dataset, k: &str, v: &str) -> Result<bool, ApiError> {
        let hits = self
            .meta
            .objects_with_tag(k, v, Some(&d.bucket), usize::MAX)
            .map_err(|e| error(500, format!("metadata store: {e}")))?;
        for (b, key) in hits.into_iter().filter(|(_, key)| key.starts_with(&d.prefix)) {
            let Ok(ok) = ObjectKey::parse(&key) else { continue };
            if let Ok(obj) = self.store.bucket(&b).and_then(|bk| bk.open_object(&ok)) {
                if obj.meta.tags.iter().any(|(tk, tv)| tk == k && tv == v) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn dataset(&self, id: &str) -> Result<Option<Dataset>, ApiError> {
        let v = self.meta.dataset(id).map_err(|e| error(500, format!("metadata store: {e}")))?;
        v.map(|v| serde_json::from_slice(&v).map_err(|e| error(500, format!("dataset record {id}: {e}")))).transpose()
    }

    fn all_datasets(&self) -> Result<Vec<Dataset>, ApiError> {
        let all = self.meta.datasets().map_err(|e| error(500, format!("metadata store: {e}")))?;
        all.iter().map(|v| serde_json::from_slice(v).map_err(|e| error(500, format!("dataset record: {e}")))).collect()
    }

    /// Serve the admin endpoints on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let admin = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}
