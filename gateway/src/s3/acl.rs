//! Canned ACLs: `x-amz-acl` on CreateBucket, PutObject, CopyObject and CreateMultipartUpload,
//! PutBucketAcl / PutObjectAcl (canned, or an AccessControlPolicy that says the same thing), and
//! Get*Acl answering the grants a canned ACL means.
//!
//! Until tenants exist every authenticated principal is the owner, so the grants that change
//! anything are those to the AllUsers group: READ on a bucket lets anonymous callers list it,
//! WRITE lets them put and delete objects, READ on an object lets them GET and HEAD it. A bucket
//! policy's explicit Deny still wins (see `auth.rs`). Grants to other principals (`x-amz-grant-*`
//! headers, or canonical-user grants in a body) need identities and answer 501 NotImplemented.

use super::io::fs;
use super::{parse_key, Strait};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

/// Whether an input carries any `x-amz-grant-*` header of objects (buckets add `grant_write`).
macro_rules! object_grants {
    ($i:expr) => {
        $i.grant_full_control.is_some()
            || $i.grant_read.is_some()
            || $i.grant_read_acp.is_some()
            || $i.grant_write_acp.is_some()
    };
}
pub(crate) use object_grants;

/// [`object_grants`] for bucket inputs.
macro_rules! bucket_grants {
    ($i:expr) => {
        $crate::s3::acl::object_grants!($i) || $i.grant_write.is_some()
    };
}
pub(crate) use bucket_grants;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// What a canned ACL grants beyond the owner's FULL_CONTROL: (group URI, permission).
fn extra_grants(canned: &str) -> &'static [(&'static str, &'static str)] {
    match canned {
        "public-read" => &[(ALL_USERS, Permission::READ)],
        "public-read-write" => &[(ALL_USERS, Permission::READ), (ALL_USERS, Permission::WRITE)],
        "authenticated-read" => &[(AUTHENTICATED_USERS, Permission::READ)],
        _ => &[],
    }
}

/// The canned ACLs Strait stores. `private` and the bucket-owner ones (the bucket owner is the
/// object owner until tenants exist) are stored as `None`.
fn stored(canned: &str, bucket: bool) -> S3Result<Option<String>> {
    match (canned, bucket) {
        ("private", _) | ("bucket-owner-read" | "bucket-owner-full-control", false) => Ok(None),
        ("public-read" | "public-read-write" | "authenticated-read", _) => Ok(Some(canned.to_owned())),
        ("aws-exec-read", _) | ("log-delivery-write", true) => Err(s3_error!(
            NotImplemented,
            "the canned ACL {canned} grants to AWS service principals Strait does not have"
        )),
        _ => Err(s3_error!(InvalidArgument, "unknown canned ACL: {canned}")),
    }
}

fn grants_unsupported() -> s3s::S3Error {
    s3_error!(
        NotImplemented,
        "grants to other principals (x-amz-grant-*) need tenants and identities; use a canned ACL (x-amz-acl) or a bucket policy"
    )
}

fn no_grants(present: bool) -> S3Result<()> {
    if present {
        return Err(grants_unsupported());
    }
    Ok(())
}

/// The stored form of an object's `x-amz-acl` (and refusal of `x-amz-grant-*`).
pub fn object_acl(acl: Option<&ObjectCannedACL>, grant_headers: bool) -> S3Result<Option<String>> {
    no_grants(grant_headers)?;
    match acl {
        Some(a) => stored(a.as_str(), false),
        None => Ok(None),
    }
}

/// The stored form of a bucket's `x-amz-acl`.
pub fn bucket_acl(acl: Option<&BucketCannedACL>, grant_headers: bool) -> S3Result<Option<String>> {
    no_grants(grant_headers)?;
    match acl {
        Some(a) => stored(a.as_str(), true),
        None => Ok(None),
    }
}

/// Whether an ACL lets anonymous callers do `op` (bucket ACL for bucket-level reads and writes,
/// object ACL for reading the object).
pub fn anonymous_allows(op: &str, bucket_acl: Option<&str>, object_acl: Option<&str>) -> bool {
    let grants = |acl: Option<&str>, perm: &str| {
        acl.is_some_and(|a| extra_grants(a).iter().any(|(g, p)| *g == ALL_USERS && *p == perm))
    };
    match op {
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" => grants(bucket_acl, Permission::READ),
        "PutObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload" => grants(bucket_acl, Permission::WRITE),
        "GetObject" | "HeadObject" => grants(object_acl, Permission::READ),
        _ => false,
    }
}

fn grants_of(owner: &Owner, canned: Option<&str>) -> Vec<Grant> {
    let mut out = vec![Grant {
        grantee: Some(Grantee {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    for (uri, perm) in canned.map(extra_grants).unwrap_or(&[]) {
        out.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                email_address: None,
                uri: Some((*uri).to_owned()),
            }),
            permission: Some(Permission::from(perm.to_string())),
        });
    }
    out
}

/// An AccessControlPolicy body as the canned ACL it amounts to; anything a canned ACL cannot say
/// (grants to other principals) is NotImplemented.
fn canned_of_policy(p: &AccessControlPolicy, owner_id: &str) -> S3Result<&'static str> {
    let mut owner_full = false;
    let mut extra: Vec<(String, String)> = Vec::new();
    for g in p.grants.iter().flatten() {
        let perm = g.permission.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default();
        let Some(ge) = &g.grantee else { return Err(s3_error!(MalformedACLError, "a grant without a grantee")) };
        match ge.type_.as_str() {
            Type::CANONICAL_USER if ge.id.as_deref() == Some(owner_id) => {
                if perm != Permission::FULL_CONTROL {
                    return Err(s3_error!(NotImplemented, "the owner's grant must be FULL_CONTROL"));
                }
                owner_full = true;
            }
            Type::GROUP => extra.push((ge.uri.clone().unwrap_or_default(), perm)),
            _ => return Err(grants_unsupported()),
        }
    }
    if !owner_full {
        return Err(s3_error!(NotImplemented, "an ACL without the owner's FULL_CONTROL grant"));
    }
    extra.sort();
    for canned in ["private", "public-read", "public-read-write", "authenticated-read"] {
        let mut want: Vec<(String, String)> =
            extra_grants(canned).iter().map(|(u, p)| ((*u).to_owned(), (*p).to_owned())).collect();
        want.sort();
        if want == extra {
            return Ok(canned);
        }
    }
    Err(s3_error!(NotImplemented, "group grants that no canned ACL expresses"))
}

pub async fn get_bucket_acl(s: &Strait, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
    let b = s.bucket(&req.input.bucket).await?;
    let canned = fs(move || b.acl()).await?;
    let owner = super::list::owner(&s.owner);
    Ok(S3Response::new(GetBucketAclOutput { grants: Some(grants_of(&owner, canned.as_deref())), owner: Some(owner) }))
}

pub async fn put_bucket_acl(s: &Strait, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
    let i = &req.input;
    let grants = bucket_grants!(i);
    let acl = match (&i.acl, &i.access_control_policy) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(InvalidRequest, "Specify either a canned ACL or an AccessControlPolicy, not both"))
        }
        (Some(a), None) => bucket_acl(Some(a), grants)?,
        (None, Some(p)) => {
            no_grants(grants)?;
            stored(canned_of_policy(p, &s.owner)?, true)?
        }
        (None, None) => {
            no_grants(grants)?;
            return Err(s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl"));
        }
    };
    let b = s.bucket(&i.bucket).await?;
    fs(move || b.set_acl(acl.as_deref())).await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub async fn get_object_acl(s: &Strait, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
    let key = parse_key(&req.input.key)?;
    let b = s.bucket(&req.input.bucket).await?;
    let obj = fs(move || b.open_object(&key)).await?;
    let owner = super::list::owner(&s.owner);
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(grants_of(&owner, obj.meta.acl.as_deref())),
        owner: Some(owner),
        ..Default::default()
    }))
}

pub async fn put_object_acl(s: &Strait, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
    let i = &req.input;
    if i.version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(s3_error!(NoSuchVersion, "The specified version does not exist."));
    }
    let grants = object_grants!(i);
    let acl = match (&i.acl, &i.access_control_policy) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(InvalidRequest, "Specify either a canned ACL or an AccessControlPolicy, not both"))
        }
        (Some(a), None) => object_acl(Some(a), grants)?,
        (None, Some(p)) => {
            no_grants(grants)?;
            stored(canned_of_policy(p, &s.owner)?, false)?
        }
        (None, None) => {
            no_grants(grants)?;
            return Err(s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl"));
        }
    };
    let key = parse_key(&i.key)?;
    let b = s.bucket(&i.bucket).await?;
    fs(move || {
        let cur = b.open_object(&key)?;
        let mut new = cur.meta.clone();
        new.acl = acl;
        b.rewrite_meta(&key, &cur.meta, &new)
    })
    .await?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_acls_and_what_they_allow() {
        assert_eq!(stored("private", true).unwrap(), None);
        assert_eq!(stored("public-read", false).unwrap().as_deref(), Some("public-read"));
        assert_eq!(stored("bucket-owner-full-control", false).unwrap(), None);
        assert!(stored("bucket-owner-read", true).is_err());
        assert_eq!(stored("log-delivery-write", true).unwrap_err().code(), &s3s::S3ErrorCode::NotImplemented);
        assert_eq!(stored("nope", true).unwrap_err().code(), &s3s::S3ErrorCode::InvalidArgument);
        assert!(anonymous_allows("ListObjectsV2", Some("public-read"), None));
        assert!(!anonymous_allows("PutObject", Some("public-read"), None));
        assert!(anonymous_allows("PutObject", Some("public-read-write"), None));
        assert!(anonymous_allows("GetObject", None, Some("public-read")));
        assert!(!anonymous_allows("GetObject", Some("public-read"), None)); // the object's ACL decides
        assert!(!anonymous_allows("GetObject", None, Some("authenticated-read")));
        assert!(!anonymous_allows("GetObjectAcl", None, Some("public-read")));
    }
}
