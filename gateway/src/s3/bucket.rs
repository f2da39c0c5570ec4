//! Bucket operations.

use super::io::fs;
use super::Strait;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Names AWS reserves beyond the syntax s3s checks (prefixes and suffixes of access points,
/// Object Lambda, multi-region and directory buckets).
fn reserved_bucket_name(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 4] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3"];
    PREFIXES.iter().any(|p| name.starts_with(p)) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

pub async fn create_bucket(s: &Strait, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
    if reserved_bucket_name(&req.input.bucket) {
        return Err(s3s::s3_error!(InvalidBucketName, "The specified bucket is not valid."));
    }
    let i = &req.input;
    let grants = super::acl::bucket_grants!(i);
    let acl = super::acl::bucket_acl(i.acl.as_ref(), grants)?;
    let store = s.store.clone();
    let name = req.input.bucket.clone();
    let legacy_region = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .is_none_or(|l| l.as_str().is_empty() || l.as_str() == "us-east-1");
    // A tenant's bucket records its owner and gets the tenant's uid/gid (mode 0750). The
    // directory is made by the gateway itself: the served root is not writable by tenants.
    let tenant = super::principal(&req);
    let owner = tenant
        .as_ref()
        .map(|p| strait_connectors::BucketOwner { account: p.account().to_owned(), posix: Some(p.posix.clone()) });
    let mine = owner.as_ref().map(|o| o.account.clone());
    let r = fs(move || {
        strait_connectors::ident::privileged(|| {
            match store.create_bucket(&name, &now_unix().to_string(), owner.as_ref()) {
                Err(strait_connectors::ConnectorError::AlreadyExists(n)) => {
                    let existing = store.bucket(&name).and_then(|b| b.owner()).ok().flatten();
                    Err(if existing == mine {
                        strait_connectors::ConnectorError::AlreadyExists(n)
                    } else {
                        strait_connectors::ConnectorError::OwnedByOther(n)
                    })
                }
                r => r,
            }
        })
    })
    .await;
    match r {
        Ok(()) => {}
        // In us-east-1 (no LocationConstraint) re-creating a bucket you own answers 200; other
        // regions answer 409. A bucket of another account answers 409 BucketAlreadyExists.
        Err(e) if e.code() == &s3s::S3ErrorCode::BucketAlreadyOwnedByYou && legacy_region => {}
        Err(e) => return Err(e),
    }
    if acl.is_some() {
        let b = s.bucket(&req.input.bucket).await?;
        fs(move || b.set_acl(acl.as_deref())).await?;
    }
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", req.input.bucket)) }))
}

pub async fn delete_bucket(s: &Strait, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
    let store = s.store.clone();
    let name = req.input.bucket.clone();
    // The caller's identity must be able to change the bucket directory (the kernel decides);
    // then the rmdir in the served root is the gateway's own work (the root is not tenants').
    let (s2, n2) = (store.clone(), name.clone());
    fs(move || s2.bucket(&n2)?.check_caller_may_modify()).await?;
    fs(move || strait_connectors::ident::privileged(|| store.delete_bucket(&name))).await?;
    s.meta.drop_bucket_uploads(&req.input.bucket).map_err(super::error::meta_err)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn head_bucket(s: &Strait, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    s.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(s.region.clone()), ..Default::default() }))
}

pub async fn list_buckets(s: &Strait, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
    let store = s.store.clone();
    let valid = |n: &str| s3s::path::check_bucket_name(n);
    let mut all = fs(move || store.list_buckets(valid)).await?;
    // A tenant's user sees its account's buckets (AWS: ListBuckets lists the caller's own).
    let tenant = super::principal(&req);
    if let Some(p) = &tenant {
        all.retain(|b| b.owner.as_deref() == Some(p.account()));
    }
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let max = match req.input.max_buckets {
        Some(n) if !(1..=10_000).contains(&n) => {
            return Err(s3s::s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000"))
        }
        Some(n) => n as usize,
        None => usize::MAX,
    };
    let after = req.input.continuation_token.clone().unwrap_or_default();
    let mut matching: Vec<_> =
        all.into_iter().filter(|b| b.name.starts_with(&prefix) && b.name.as_str() > after.as_str()).collect();
    let next = (matching.len() > max).then(|| matching[max - 1].name.clone());
    matching.truncate(max);
    let buckets = matching
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: time::OffsetDateTime::from_unix_timestamp(b.created_unix_s).ok().map(Timestamp::from),
            bucket_region: Some(s.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(super::list::owner(&super::caller(&req)?)),
        prefix: req.input.prefix,
        continuation_token: next,
    }))
}

pub async fn get_bucket_location(
    s: &Strait,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s.bucket(&req.input.bucket).await?;
    // us-east-1 is reported as an empty LocationConstraint, as AWS does.
    let loc = (s.region != "us-east-1").then(|| BucketLocationConstraint::from(s.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint: loc }))
}

/// Versioning is never enabled on a Strait bucket (one file is one object): the status is
/// absent, as AWS answers for a bucket that never had versioning. PutBucketVersioning is 501.
pub async fn get_bucket_versioning(
    s: &Strait,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    s.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
