//! ListObjects (v1) and ListObjectsV2.

use super::get::timestamp_ns;
use super::io::fs;
use super::Strait;
use base64::Engine as _;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use strait_connectors::list::{self, ListItem, ListQuery};

/// Most keys in one page, as AWS.
pub const LIST_KEYS_MAX: i32 = 1000;

const TOKEN: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn owner(access_key: &str) -> Owner {
    Owner { display_name: Some(access_key.to_owned()), id: Some(access_key.to_owned()) }
}

/// `encoding-type=url`: percent-encode everything but unreserved characters and `/`
/// (botocore decodes with unquote_plus, so `+` must travel as `%2B`).
pub fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(LIST_KEYS_MAX as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(n) => Ok(n.min(LIST_KEYS_MAX) as usize),
    }
}

fn check_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request")),
    }
}

/// AWS treats an empty `delimiter=` as absent (s3torchconnector sends it).
fn delimiter(d: Option<&String>) -> Option<String> {
    d.filter(|d| !d.is_empty()).cloned()
}

struct Page {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    truncated: bool,
    last: Option<String>,
}

async fn page(s: &Strait, bucket: &str, q: ListQuery<'_>, fetch_owner: Option<&str>, url: bool) -> S3Result<Page> {
    let b = s.bucket(bucket).await?;
    let (prefix_o, delim_o, after_o) =
        (q.prefix.to_owned(), q.delimiter.map(str::to_owned), q.after.map(str::to_owned));
    let max = q.max_keys;
    let p = fs(move || {
        let q =
            ListQuery { prefix: &prefix_o, delimiter: delim_o.as_deref(), after: after_o.as_deref(), max_keys: max };
        list::list(&b, &q)
    })
    .await?;
    if p.skipped_non_utf8 > 0 {
        tracing::warn!(bucket, skipped = p.skipped_non_utf8, "listing skipped names that are not valid UTF-8");
    }
    let enc = |k: &str| if url { url_encode(k) } else { k.to_owned() };
    let last = p.items.last().map(|i| i.key().to_owned());
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for item in p.items {
        match item {
            ListItem::Object { key, meta, mtime_ns } => objects.push(Object {
                key: Some(enc(&key)),
                size: Some(meta.id.size as i64),
                e_tag: Some(ETag::Strong(meta.etag.clone())),
                last_modified: Some(timestamp_ns(mtime_ns)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                owner: fetch_owner.map(owner),
                checksum_algorithm: meta.checksum.as_ref().map(|c| vec![ChecksumAlgorithm::from(c.algorithm.clone())]),
                checksum_type: meta.checksum.as_ref().map(|c| ChecksumType::from(c.kind.clone())),
                ..Default::default()
            }),
            ListItem::Prefix(p) => prefixes.push(CommonPrefix { prefix: Some(enc(&p)) }),
        }
    }
    Ok(Page { objects, prefixes, truncated: p.truncated, last })
}

pub async fn list_objects_v2(
    s: &Strait,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = &req.input;
    let url = check_encoding(i.encoding_type.as_ref())?;
    let max = max_keys(i.max_keys)?;
    let delim = delimiter(i.delimiter.as_ref());
    let prefix = i.prefix.clone().unwrap_or_default();
    let after = match i.continuation_token.as_deref() {
        Some(t) => {
            let raw = TOKEN
                .decode(t)
                .map_err(|_| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?;
            Some(
                String::from_utf8(raw)
                    .map_err(|_| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
            )
        }
        None => i.start_after.clone().filter(|s| !s.is_empty()),
    };
    let caller = s.owner.clone();
    let fetch = i.fetch_owner.unwrap_or(false).then_some(caller.as_str());
    let q = ListQuery { prefix: &prefix, delimiter: delim.as_deref(), after: after.as_deref(), max_keys: max };
    let p = page(s, &i.bucket, q, fetch, url).await?;
    let key_count = (p.objects.len() + p.prefixes.len()) as i32;
    let enc = |k: &str| if url { url_encode(k) } else { k.to_owned() };
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket.clone()),
        prefix: Some(enc(&prefix)),
        delimiter: delim.as_deref().map(enc),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        continuation_token: i.continuation_token.clone(),
        next_continuation_token: if p.truncated { p.last.as_deref().map(|l| TOKEN.encode(l)) } else { None },
        is_truncated: Some(p.truncated),
        start_after: i.start_after.as_deref().map(enc),
        encoding_type: i.encoding_type.clone(),
        contents: Some(p.objects),
        common_prefixes: Some(p.prefixes),
        ..Default::default()
    }))
}

pub async fn list_objects(s: &Strait, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = &req.input;
    let url = check_encoding(i.encoding_type.as_ref())?;
    let max = max_keys(i.max_keys)?;
    let delim = delimiter(i.delimiter.as_ref());
    let prefix = i.prefix.clone().unwrap_or_default();
    let marker = i.marker.clone().filter(|m| !m.is_empty());
    let caller = s.owner.clone();
    // v1 always includes the owner.
    let q = ListQuery { prefix: &prefix, delimiter: delim.as_deref(), after: marker.as_deref(), max_keys: max };
    let p = page(s, &i.bucket, q, Some(caller.as_str()), url).await?;
    let enc = |k: &str| if url { url_encode(k) } else { k.to_owned() };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket.clone()),
        prefix: Some(enc(&prefix)),
        delimiter: delim.as_deref().map(enc),
        marker: Some(marker.as_deref().map(enc).unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(p.truncated),
        next_marker: if p.truncated && delim.is_some() { p.last.as_deref().map(enc) } else { None },
        encoding_type: i.encoding_type.clone(),
        contents: Some(p.objects),
        common_prefixes: Some(p.prefixes),
        ..Default::default()
    }))
}

/// ListObjectVersions of an unversioned bucket: every object once, as version `null`, latest.
pub async fn list_object_versions(
    s: &Strait,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let i = &req.input;
    let url = check_encoding(i.encoding_type.as_ref())?;
    let max = max_keys(i.max_keys)?;
    let delim = delimiter(i.delimiter.as_ref());
    let prefix = i.prefix.clone().unwrap_or_default();
    let marker = i.key_marker.clone().filter(|m| !m.is_empty());
    let caller = s.owner.clone();
    let q = ListQuery { prefix: &prefix, delimiter: delim.as_deref(), after: marker.as_deref(), max_keys: max };
    let p = page(s, &i.bucket, q, Some(caller.as_str()), url).await?;
    let enc = |k: &str| if url { url_encode(k) } else { k.to_owned() };
    let versions = p
        .objects
        .into_iter()
        .map(|o| ObjectVersion {
            key: o.key,
            version_id: Some("null".into()),
            is_latest: Some(true),
            e_tag: o.e_tag,
            size: o.size,
            last_modified: o.last_modified,
            owner: o.owner,
            storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
            checksum_algorithm: o.checksum_algorithm,
            checksum_type: o.checksum_type,
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(i.bucket.clone()),
        prefix: Some(enc(&prefix)),
        delimiter: delim.as_deref().map(enc),
        key_marker: Some(marker.as_deref().map(enc).unwrap_or_default()),
        version_id_marker: Some(i.version_id_marker.clone().unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(p.truncated),
        next_key_marker: if p.truncated { p.last.as_deref().map(enc) } else { None },
        next_version_id_marker: p.truncated.then(|| "null".to_owned()),
        encoding_type: i.encoding_type.clone(),
        versions: Some(versions),
        common_prefixes: Some(p.prefixes),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_survives_unquote_plus() {
        assert_eq!(url_encode("a b+c%/ü"), "a%20b%2Bc%25/%C3%BC");
        assert_eq!(url_encode("plain-key_1.txt~"), "plain-key_1.txt~");
    }
}
