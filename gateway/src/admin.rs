//! The admin listener: `/metrics` (Prometheus), `/health/live`, `/health/ready`.

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

/// What readiness checks: the root and the state directory are reachable.
#[derive(Clone)]
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub root: PathBuf,
    pub state_dir: PathBuf,
}

impl Admin {
    fn ready(&self) -> Result<(), String> {
        for (what, p) in [("root", &self.root), ("state directory", &self.state_dir)] {
            std::fs::read_dir(p).map_err(|e| format!("{what} {}: {e}", p.display()))?;
        }
        Ok(())
    }

    fn handle(&self, req: &http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
        let text = |status: u16, body: String, ctype: &'static str| {
            http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, ctype)
                .body(Full::new(Bytes::from(body)))
                .expect("static response parts")
        };
        match (req.method(), req.uri().path()) {
            (&http::Method::GET, "/metrics") => {
                text(200, self.metrics.render(), "application/openmetrics-text; version=1.0.0; charset=utf-8")
            }
            (&http::Method::GET, "/health/live") => text(200, "ok\n".into(), "text/plain"),
            (&http::Method::GET, "/health/ready") => match self.ready() {
                Ok(()) => text(200, "ready\n".into(), "text/plain"),
                Err(e) => text(503, format!("not ready: {e}\n"), "text/plain"),
            },
            _ => text(404, "not found\n".into(), "text/plain"),
        }
    }

    /// Serve the admin endpoints on `listener` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let admin = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let resp = admin.handle(&req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}
