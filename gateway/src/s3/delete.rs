//! DeleteObject and DeleteObjects.

use super::error::obj_err;
use super::io::fs;
use super::Strait;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use strait_connectors::{Bucket, ConnectorError, ObjectKey};

/// Keys in one DeleteObjects request, as AWS.
pub const DELETE_OBJECTS_KEYS_MAX: usize = 1000;

/// Delete one key; a missing key is success, as S3.
fn delete_one(bucket: &Bucket, key: &str) -> Result<(), ConnectorError> {
    let key = ObjectKey::parse(key)?;
    match bucket.delete_object(&key) {
        Ok(()) | Err(ConnectorError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn delete_object(s: &Strait, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    if i.version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(s3_error!(NoSuchVersion, "versioning is not enabled"));
    }
    let bucket = s.bucket(&i.bucket).await?;
    let key = i.key;
    fs(move || delete_one(&bucket, &key)).await?;
    Ok(S3Response::with_status(DeleteObjectOutput::default(), http::StatusCode::NO_CONTENT))
}

pub async fn delete_objects(
    s: &Strait,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let integrity = req.headers.contains_key("content-md5")
        || req
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-") || k.as_str() == "x-amz-sdk-checksum-algorithm");
    if !integrity {
        return Err(s3_error!(
            InvalidRequest,
            "Missing required header for this request: Content-MD5 or an x-amz-checksum- header"
        ));
    }
    let i = req.input;
    let objects = i.delete.objects;
    if objects.is_empty() || objects.len() > DELETE_OBJECTS_KEYS_MAX {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema (1 to {} keys)",
            DELETE_OBJECTS_KEYS_MAX
        ));
    }
    let quiet = i.delete.quiet.unwrap_or(false);
    let bucket = s.bucket(&i.bucket).await?;
    let results = fs(move || {
        Ok(objects
            .into_iter()
            .map(|o| {
                let r = if o.version_id.as_deref().is_some_and(|v| v != "null") {
                    Err(ConnectorError::NotFound("no such version".into()))
                } else {
                    delete_one(&bucket, &o.key)
                };
                (o.key, r)
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (key, r) in results {
        match r {
            Ok(()) if !quiet => deleted.push(DeletedObject { key: Some(key), ..Default::default() }),
            Ok(()) => {}
            Err(e) => {
                let e = obj_err(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
