//! Access log: one JSON object per line per request, carrying the request id the client
//! received in `x-amz-request-id`.

use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Filled in during the request by the access check (which knows the resolved operation and the
/// authenticated principal) and read by the front service when the response is ready.
#[derive(Default, Debug)]
pub struct ReqInfo {
    pub operation: OnceLock<String>,
    pub principal: OnceLock<String>,
    pub bucket: OnceLock<String>,
    pub key: OnceLock<String>,
    /// Set when the caller may read the object but not list the bucket: a missing key is then
    /// answered 403 AccessDenied instead of 404, as AWS does (no probing for key names).
    pub hide_missing: OnceLock<()>,
    /// Why the access check refused the request (a policy statement, anonymous...).
    pub decided_by: OnceLock<String>,
}

/// One audit-log line: a denied request, or a change to buckets, policies or ACLs.
#[derive(Serialize, Debug)]
pub struct AuditRecord<'a> {
    pub time: String,
    /// `denied` or `change`.
    pub kind: &'a str,
    pub request_id: &'a str,
    pub remote: Option<String>,
    pub principal: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    /// For identity changes: what was changed (an IAM ARN, a key id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    pub status: u16,
    pub error_code: Option<&'a str>,
    /// For a denial: what decided it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<&'a str>,
}

/// Successful S3 operations that change who may do what, or which buckets exist: audited.
pub const AUDITED_CHANGES: [&str; 6] =
    ["CreateBucket", "DeleteBucket", "PutBucketPolicy", "DeleteBucketPolicy", "PutBucketAcl", "PutObjectAcl"];

/// One access-log line.
#[derive(Serialize, Debug)]
pub struct Record<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub remote: Option<String>,
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub status: u16,
    pub error_code: Option<&'a str>,
    /// Request body bytes as declared by Content-Length.
    pub bytes_in: Option<u64>,
    /// Response body bytes actually sent (0 for HEAD; less than declared if the client left).
    pub bytes_out: Option<u64>,
    /// Time to the response head, in milliseconds.
    pub duration_ms: f64,
}

pub struct AccessLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl AccessLog {
    /// `-` is standard output; anything else a file opened for appending.
    pub fn open(dest: &str) -> std::io::Result<Arc<Self>> {
        let out: Box<dyn Write + Send> = if dest == "-" {
            Box::new(std::io::LineWriter::new(std::io::stdout()))
        } else {
            Box::new(std::io::LineWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(dest)?))
        };
        Ok(Arc::new(Self { out: Mutex::new(out) }))
    }

    pub fn write(&self, rec: &impl Serialize) {
        let Ok(mut line) = serde_json::to_vec(rec) else { return };
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(&line) {
            tracing::warn!(error = %e, "access log write failed");
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
