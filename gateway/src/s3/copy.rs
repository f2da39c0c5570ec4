//! CopyObject (and the source side of UploadPartCopy).

use super::checksum::{Algo, BodyHasher};
use super::get::{check_conditions, timestamp_ns, Conditions};
use super::io::{copy_hashed, fs};
use super::put::{object_meta, seal, set_checksum_fields, MetaFields};
use super::{parse_key, tagging, Strait};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use strait_connectors::{ObjectKey, OpenObject, PublishMode};

/// Largest source of a single CopyObject, as AWS (use UploadPartCopy beyond).
pub const COPY_SOURCE_BYTES_MAX: u64 = 5 << 30;

/// The source bucket and key of an `x-amz-copy-source`.
pub fn source(cs: &CopySource) -> S3Result<(String, String)> {
    match cs {
        CopySource::Bucket { bucket, key, version_id } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(NoSuchVersion, "versioning is not enabled"));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(NotImplemented, "access-point copy sources are not supported")),
    }
}

/// Open the source object and check the copy-source conditions (failures are 412).
pub async fn open_source(s: &Strait, cs: &CopySource, conds: &Conditions<'_>) -> S3Result<(ObjectKey, OpenObject)> {
    let (b, k) = source(cs)?;
    let key = parse_key(&k)?;
    let bucket = s.bucket(&b).await?;
    let kk = key.clone();
    let obj = fs(move || bucket.open_object(&kk)).await?;
    check_conditions(conds, &obj.meta, obj.mtime_ns, true)?;
    Ok((key, obj))
}

pub async fn copy_object(s: &Strait, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
    let i = &req.input;
    let dst_key = parse_key(&i.key)?;
    super::put::check_storage_class(i.storage_class.as_ref())?;
    let dst = s.bucket(&i.bucket).await?;
    let conds = Conditions {
        if_match: i.copy_source_if_match.as_ref(),
        if_none_match: i.copy_source_if_none_match.as_ref(),
        if_modified_since: i.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: i.copy_source_if_unmodified_since.as_ref(),
    };
    let (src_key, src) = open_source(s, &i.copy_source, &conds).await?;
    for (name, d) in [
        ("x-amz-metadata-directive", i.metadata_directive.as_ref().map(|d| d.as_str())),
        ("x-amz-tagging-directive", i.tagging_directive.as_ref().map(|d| d.as_str())),
    ] {
        if let Some(d) = d {
            if d != "COPY" && d != "REPLACE" {
                return Err(s3_error!(InvalidArgument, "Unknown {name}: {d}"));
            }
        }
    }
    let replace_meta = i.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let replace_tags = i.tagging_directive.as_ref().is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    let same = source(&i.copy_source)?.0 == i.bucket && src_key == dst_key;
    if same && !replace_meta && !replace_tags && i.checksum_algorithm.is_none() && i.storage_class.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    if src.meta.id.size > COPY_SOURCE_BYTES_MAX {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: {COPY_SOURCE_BYTES_MAX}"
        ));
    }
    let mut meta = if replace_meta {
        object_meta(MetaFields {
            content_type: i.content_type.as_ref(),
            content_encoding: i.content_encoding.as_ref(),
            content_disposition: i.content_disposition.as_ref(),
            content_language: i.content_language.as_ref(),
            cache_control: i.cache_control.as_ref(),
            expires: i.expires.as_ref(),
            metadata: i.metadata.as_ref(),
            tagging: None,
        })?
    } else {
        let mut m = src.meta.clone();
        m.part_sizes.clear();
        m.part_checksums.clear();
        m.checksum = None;
        m
    };
    meta.tags = if replace_tags {
        match i.tagging.as_ref() {
            Some(t) => tagging::parse_tagging_header(t)?,
            None => Vec::new(),
        }
    } else {
        src.meta.tags.clone()
    };
    // As AWS: the copy gets the request's ACL (default private), never the source's.
    let grants = super::acl::object_grants!(i);
    meta.acl = super::acl::object_acl(i.acl.as_ref(), grants)?;
    let algo = match i.checksum_algorithm.as_ref() {
        Some(a) => {
            Some(Algo::parse(a.as_str()).ok_or_else(|| s3_error!(InvalidRequest, "unsupported checksum algorithm"))?)
        }
        None => src.meta.checksum.as_ref().and_then(|c| Algo::parse(&c.algorithm)),
    };
    let size = src.meta.id.size;
    let meta = match src.file {
        None => {
            if !dst_key.is_dir_marker() {
                return Err(s3_error!(
                    InvalidRequest,
                    "a directory-marker object can only be copied to a key ending in '/'"
                ));
            }
            let d = BodyHasher::new(algo).finalize();
            seal(&mut meta, &d, None, None)?;
            fs(move || dst.put_marker(&dst_key, meta, &PublishMode::Overwrite)).await?
        }
        Some(file) => {
            if dst_key.is_dir_marker() && size > 0 {
                return Err(s3_error!(
                    InvalidRequest,
                    "A directory-marker key (ending in '/') must have an empty body"
                ));
            }
            let (st, d) = fs(move || {
                let mut st = dst.stage(&dst_key)?;
                let mut h = BodyHasher::new(algo);
                copy_hashed(&file, 0, size, st.file(), &mut h)?;
                Ok((st, h.finalize()))
            })
            .await?;
            seal(&mut meta, &d, None, None)?;
            fs(move || st.publish(meta, &PublishMode::Overwrite)).await?
        }
    };
    let mut result = CopyObjectResult {
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(timestamp_ns(meta.id.mtime_ns)),
        ..Default::default()
    };
    set_checksum_fields!(result, meta.checksum.as_ref());
    Ok(S3Response::new(CopyObjectOutput { copy_object_result: Some(result), ..Default::default() }))
}
