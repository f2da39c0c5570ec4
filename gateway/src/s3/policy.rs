//! Bucket policies: Get/Put/DeleteBucketPolicy, GetBucketPolicyStatus, and the mapping from S3
//! operations to IAM actions and resources used by the access check (`auth::Gate`).
//!
//! The document is stored as given (after validation by `strait_policy::Policy::parse`) in the
//! bucket directory's `user.strait.bucket-policy` xattr, so every gateway over the same file
//! system enforces the same policy.

use super::io::fs;
use super::Strait;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use strait_policy::{Effect, Principals};

/// How long a bucket policy read from the file system is reused. Changes made through this
/// gateway apply to the next request (the cache entry is dropped); changes made through another
/// gateway, or directly on the xattr, within this long.
pub const POLICY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// A parsed bucket policy, with what the access check needs to know about it up front.
pub struct CachedPolicy {
    pub policy: strait_policy::Policy,
    /// Whether a condition reads `s3:ExistingObjectTag/...` (then the object's tags are needed).
    pub uses_object_tags: bool,
}

type Cached = Option<std::sync::Arc<CachedPolicy>>;

/// Bucket policies read recently: keeps the file system off the path of every request.
#[derive(Default)]
pub struct PolicyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Cached)>>,
    owners: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Owner)>>,
}

/// Who a bucket belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No such bucket (the operation answers NoSuchBucket).
    Missing,
    /// The administrator's account (buckets created with the root credentials, linked buckets).
    Admin,
    /// A tenant's account id.
    Account(String),
}

impl PolicyCache {
    /// The bucket's parsed policy (`None`: no policy, no bucket, or a stored document that no
    /// longer parses, which is logged and ignored).
    pub async fn get(&self, store: &strait_connectors::PosixStore, bucket: &str) -> S3Result<Cached> {
        if let Some((at, v)) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(bucket) {
            if at.elapsed() < POLICY_CACHE_TTL {
                return Ok(v.clone());
            }
        }
        let (store, name) = (store.clone(), bucket.to_owned());
        let doc = super::io::submit(move || store.bucket(&name).and_then(|b| b.policy()))
            .await
            .map_err(s3s::S3Error::internal_error)?;
        let v = match doc {
            Ok(Some(d)) => match strait_policy::Policy::parse(&d) {
                Ok(policy) => {
                    let uses_object_tags = policy
                        .statements
                        .iter()
                        .flat_map(|s| &s.conditions)
                        .any(|c| c.key.get(..21).is_some_and(|k| k.eq_ignore_ascii_case("s3:ExistingObjectTag/")));
                    Some(std::sync::Arc::new(CachedPolicy { policy, uses_object_tags }))
                }
                Err(e) => {
                    tracing::warn!(bucket, error = %e, "stored bucket policy does not parse; ignored");
                    None
                }
            },
            Ok(None) | Err(_) => None,
        };
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            m.retain(|_, (at, _)| at.elapsed() < POLICY_CACHE_TTL);
        }
        m.insert(bucket.to_owned(), (std::time::Instant::now(), v.clone()));
        Ok(v)
    }

    pub fn invalidate(&self, bucket: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(bucket);
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).remove(bucket);
    }

    /// Who owns the bucket (the `user.strait.bucket-owner` xattr), read as the gateway itself;
    /// cached as long as policies are.
    pub async fn owner(&self, store: &strait_connectors::PosixStore, bucket: &str) -> S3Result<Owner> {
        if let Some((at, v)) = self.owners.lock().unwrap_or_else(|p| p.into_inner()).get(bucket) {
            if at.elapsed() < POLICY_CACHE_TTL {
                return Ok(v.clone());
            }
        }
        let (store, name) = (store.clone(), bucket.to_owned());
        let v = super::io::submit(move || match store.bucket(&name) {
            Ok(b) => match b.owner() {
                Ok(Some(a)) => Owner::Account(a),
                Ok(None) => Owner::Admin,
                Err(_) => Owner::Admin,
            },
            Err(_) => Owner::Missing,
        })
        .await
        .map_err(s3s::S3Error::internal_error)?;
        let mut m = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            m.retain(|_, (at, _)| at.elapsed() < POLICY_CACHE_TTL);
        }
        m.insert(bucket.to_owned(), (std::time::Instant::now(), v.clone()));
        Ok(v)
    }
}

/// AWS's limit on a bucket policy document.
pub const POLICY_BYTES_MAX: usize = 20 << 10;

/// The IAM action an S3 operation is authorized as (`None`: no bucket-level action, e.g. ListBuckets).
pub fn action_for(op: &str) -> Option<&'static str> {
    Some(match op {
        "GetObject" | "HeadObject" => "s3:GetObject",
        "GetObjectAttributes" => "s3:GetObjectAttributes",
        "PutObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "UploadPartCopy" => "s3:PutObject",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "GetObjectTagging" => "s3:GetObjectTagging",
        "PutObjectTagging" => "s3:PutObjectTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectTagging",
        "GetObjectAcl" => "s3:GetObjectAcl",
        "PutObjectAcl" => "s3:PutObjectAcl",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetBucketTagging" => "s3:GetBucketTagging",
        "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetBucketAcl" => "s3:GetBucketAcl",
        "PutBucketAcl" => "s3:PutBucketAcl",
        "GetBucketPolicy" => "s3:GetBucketPolicy",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
        "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
        "DeleteBucket" => "s3:DeleteBucket",
        "CreateBucket" => "s3:CreateBucket",
        _ => return None,
    })
}

/// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
pub fn resource_arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

/// AWS's "public" test, simplified: an Allow statement for every principal that no condition
/// narrows to fixed sources (an equality or IpAddress test on aws:SourceIp, aws:SourceVpc,
/// aws:SourceVpce, aws:SourceArn, aws:SourceAccount, aws:PrincipalAccount, aws:PrincipalOrgID;
/// a negated test such as NotIpAddress does not narrow).
fn is_public(p: &strait_policy::Policy) -> bool {
    const NARROWING: [&str; 7] = [
        "aws:sourceip",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:principalaccount",
        "aws:principalorgid",
    ];
    p.statements.iter().any(|s| {
        let everyone = match &s.principal {
            Some(Principals::Any) => true,
            Some(Principals::Listed(l)) => l.iter().any(|(k, v)| k == "AWS" && v == "*"),
            None => false,
        };
        s.effect == Effect::Allow
            && everyone
            && !s.conditions.iter().any(|c| {
                use strait_policy::Op::*;
                matches!(c.op, IpAddress | StringEquals | StringEqualsIgnoreCase | ArnEquals)
                    && NARROWING.contains(&c.key.to_ascii_lowercase().as_str())
            })
    })
}

pub async fn put_bucket_policy(
    s: &Strait,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let doc = req.input.policy.clone();
    if doc.len() > POLICY_BYTES_MAX {
        return Err(s3_error!(MalformedPolicy, "Policy exceeds the maximum allowed document size"));
    }
    if let Err(e) = strait_policy::Policy::parse(&doc) {
        return Err(s3_error!(MalformedPolicy, "{e}"));
    }
    let b = s.bucket(&req.input.bucket).await?;
    s.policies.invalidate(&req.input.bucket);
    let kept = doc.clone();
    let r = fs(move || b.set_policy(Some(&doc))).await;
    s.policies.invalidate(&req.input.bucket);
    r.map_err(|e| {
        if e.code() == &s3s::S3ErrorCode::MetadataTooLarge {
            s3_error!(MalformedPolicy, "The policy is larger than this file system's extended attributes can hold")
        } else {
            e
        }
    })?;
    record_version(s, &req, &req.input.bucket, Some(&kept));
    Ok(S3Response::with_status(PutBucketPolicyOutput::default(), http::StatusCode::NO_CONTENT))
}

pub async fn get_bucket_policy(
    s: &Strait,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let b = s.bucket(&req.input.bucket).await?;
    match fs(move || b.policy()).await? {
        Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) })),
        None => Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")),
    }
}

pub async fn delete_bucket_policy(
    s: &Strait,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let b = s.bucket(&req.input.bucket).await?;
    let r = fs(move || b.set_policy(None)).await;
    s.policies.invalidate(&req.input.bucket);
    r?;
    record_version(s, &req, &req.input.bucket, None);
    Ok(S3Response::with_status(DeleteBucketPolicyOutput::default(), http::StatusCode::NO_CONTENT))
}

/// Keep the policy just set (or removed) in the bucket's policy history (`/admin/buckets/{b}/policy`:
/// versions, diff, rollback). The history is this gateway's: changes through another gateway or
/// to the xattr directly are not in it. A failure to record is logged; the change stands.
fn record_version<T>(s: &Strait, req: &S3Request<T>, bucket: &str, doc: Option<&str>) {
    let author = match super::principal(req) {
        Some(p) => p.arn(),
        None => req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_else(|| "anonymous".into()),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) = s.meta.add_bucket_policy_version(bucket, doc, &author, now) {
        tracing::warn!(bucket, error = %e, "bucket policy history");
    }
}

pub async fn get_bucket_policy_status(
    s: &Strait,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let b = s.bucket(&req.input.bucket).await?;
    let Some(doc) = fs(move || b.policy()).await? else {
        return Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"));
    };
    let public = strait_policy::Policy::parse(&doc).is_ok_and(|p| is_public(&p));
    Ok(S3Response::new(GetBucketPolicyStatusOutput { policy_status: Some(PolicyStatus { is_public: Some(public) }) }))
}
