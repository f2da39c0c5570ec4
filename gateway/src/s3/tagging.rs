//! Object tagging (stored in the object's metadata record).

use super::io::fs;
use super::{parse_key, Strait};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

pub const TAGS_PER_OBJECT_MAX: usize = 10;
pub const TAG_KEY_CHARS_MAX: usize = 128;
pub const TAG_VALUE_CHARS_MAX: usize = 256;

/// Key and value lengths and duplicate keys, the rules objects and buckets share (InvalidTag).
fn check_tag_entries(tags: &[(String, String)]) -> S3Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > TAG_KEY_CHARS_MAX {
            return Err(s3_error!(InvalidTag, "The TagKey you have provided is invalid"));
        }
        if v.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(s3_error!(InvalidTag, "The TagValue you have provided is invalid"));
        }
        if !seen.insert(k) {
            return Err(s3_error!(InvalidTag, "Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// Validate an object's tag set as AWS does.
pub fn validate_tags(tags: &[(String, String)]) -> S3Result<()> {
    if tags.len() > TAGS_PER_OBJECT_MAX {
        // AWS answers this one with the generic BadRequest code.
        let mut e = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("BadRequest".into()),
            format!("Object tags cannot be greater than {TAGS_PER_OBJECT_MAX}"),
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    check_tag_entries(tags)
}

fn tag_pairs(t: &Tagging) -> Vec<(String, String)> {
    t.tag_set.iter().map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default())).collect()
}

/// Parse `x-amz-tagging` (URL query encoding: `k1=v1&k2=v2`).
pub fn parse_tagging_header(h: &str) -> S3Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for pair in h.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            urlencoding::decode(&s.replace('+', " "))
                .map(|c| c.into_owned())
                .map_err(|_| s3_error!(InvalidArgument, "invalid x-amz-tagging header"))
        };
        tags.push((dec(k)?, dec(v)?));
    }
    validate_tags(&tags)?;
    Ok(tags)
}

pub async fn get_object_tagging(
    s: &Strait,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let key = parse_key(&req.input.key)?;
    let bucket = s.bucket(&req.input.bucket).await?;
    let obj = fs(move || bucket.open_object(&key)).await?;
    let tag_set = obj.meta.tags.into_iter().map(|(k, v)| Tag { key: Some(k), value: Some(v) }).collect();
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id: None }))
}

async fn set_tags(s: &Strait, bucket: &str, key: &str, tags: Vec<(String, String)>) -> S3Result<()> {
    let key = parse_key(key)?;
    let bucket = s.bucket(bucket).await?;
    fs(move || {
        let cur = bucket.open_object(&key)?;
        let mut new = cur.meta.clone();
        new.tags = tags;
        bucket.rewrite_meta(&key, &cur.meta, &new)
    })
    .await
}

pub async fn put_object_tagging(
    s: &Strait,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let tags = tag_pairs(&req.input.tagging);
    validate_tags(&tags)?;
    set_tags(s, &req.input.bucket, &req.input.key, tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput::default()))
}

pub async fn delete_object_tagging(
    s: &Strait,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    set_tags(s, &req.input.bucket, &req.input.key, Vec::new()).await?;
    Ok(S3Response::with_status(DeleteObjectTaggingOutput::default(), http::StatusCode::NO_CONTENT))
}

/// Most tags on a bucket, as AWS.
pub const TAGS_PER_BUCKET_MAX: usize = 50;

pub async fn get_bucket_tagging(
    s: &Strait,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let b = s.bucket(&req.input.bucket).await?;
    let tags = fs(move || b.tags()).await?;
    let Some(tags) = tags else {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    };
    let tag_set = tags.into_iter().map(|(k, v)| Tag { key: Some(k), value: Some(v) }).collect();
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set }))
}

pub async fn put_bucket_tagging(
    s: &Strait,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let tags = tag_pairs(&req.input.tagging);
    if tags.len() > TAGS_PER_BUCKET_MAX {
        return Err(s3_error!(InvalidTag, "Bucket tag count cannot be greater than {TAGS_PER_BUCKET_MAX}"));
    }
    if tags.iter().any(|(k, _)| k.to_ascii_lowercase().starts_with("aws:")) {
        return Err(s3_error!(InvalidTag, "System tags cannot be added/updated by requester"));
    }
    check_tag_entries(&tags)?;
    let b = s.bucket(&req.input.bucket).await?;
    fs(move || b.set_tags(Some(&tags))).await?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub async fn delete_bucket_tagging(
    s: &Strait,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let b = s.bucket(&req.input.bucket).await?;
    fs(move || b.set_tags(None)).await?;
    Ok(S3Response::with_status(DeleteBucketTaggingOutput::default(), http::StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_header() {
        let t = parse_tagging_header("a=1&b%20c=x%2By&empty=").unwrap();
        assert_eq!(t, vec![("a".into(), "1".into()), ("b c".into(), "x+y".into()), ("empty".into(), "".into())]);
        assert!(parse_tagging_header("a=1&a=2").is_err());
        let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tagging_header(&many.join("&")).is_err());
        assert!(parse_tagging_header(&format!("{}=v", "k".repeat(129))).is_err());
    }
}
