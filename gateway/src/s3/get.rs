//! GetObject and HeadObject: conditions, ranges, parts, response overrides, checksums.

use super::io::{file_body, fs};
use super::put::set_checksum_fields;
use super::{parse_key, Strait};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use strait_connectors::{ObjectMeta, OpenObject};

/// Default Content-Type of objects stored without one (as AWS).
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn etag_cond_matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn unix_s(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// RFC 9110 §13.2.2 order, as S3 applies it. `not_modified` is the error for a failed
/// If-None-Match / If-Modified-Since (304 for GET/HEAD, 412 for copy sources).
pub fn check_conditions(c: &Conditions<'_>, meta: &ObjectMeta, mtime_ns: i128, copy_source: bool) -> S3Result<()> {
    let mtime_s = i64::try_from(mtime_ns.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let failed = || s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold");
    let not_modified = || {
        if copy_source {
            return failed();
        }
        // RFC 9110 §15.4.5: a 304 carries the validators a 200 would have.
        let mut e = s3_error!(NotModified);
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", meta.etag)) {
            h.insert(http::header::ETAG, v);
        }
        if let Some(lm) = super::put::format_http_date(&timestamp_ns(mtime_ns)) {
            if let Ok(v) = http::HeaderValue::from_str(&lm) {
                h.insert(http::header::LAST_MODIFIED, v);
            }
        }
        e.set_headers(h);
        e
    };
    match c.if_match {
        Some(m) if !etag_cond_matches(m, &meta.etag) => return Err(failed()),
        Some(_) => {}
        None => {
            if let Some(t) = c.if_unmodified_since {
                if mtime_s > unix_s(t) {
                    return Err(failed());
                }
            }
        }
    }
    match c.if_none_match {
        Some(m) if etag_cond_matches(m, &meta.etag) => return Err(not_modified()),
        Some(_) => {}
        None => {
            if let Some(t) = c.if_modified_since {
                if mtime_s <= unix_s(t) {
                    return Err(not_modified());
                }
            }
        }
    }
    Ok(())
}

/// A file time as an S3 timestamp. Sub-second precision is kept: listings show milliseconds,
/// which `aws s3 sync` compares with local mtimes (HTTP-date headers show whole seconds).
pub fn timestamp_ns(ns: i128) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

/// What part of the object a read returns.
struct Slice {
    offset: u64,
    len: u64,
    content_range: Option<String>,
    parts_count: Option<i32>,
    part_checksum: Option<strait_connectors::StoredChecksum>,
    whole: bool,
}

fn invalid_part_number() -> s3s::S3Error {
    super::error::custom(
        "InvalidPartNumber",
        http::StatusCode::RANGE_NOT_SATISFIABLE,
        "The requested partnumber is not satisfiable".into(),
    )
}

fn slice(meta: &ObjectMeta, size: u64, range: Option<&Range>, part_number: Option<i32>) -> S3Result<Slice> {
    // x-amz-mp-parts-count is answered only to partNumber requests, as AWS does.
    let parts_count = (part_number.is_some() && !meta.part_sizes.is_empty()).then_some(meta.part_sizes.len() as i32);
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        if n < 1 {
            return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
        }
        let n = n as usize;
        if meta.part_sizes.is_empty() {
            if n != 1 {
                return Err(invalid_part_number());
            }
            // Part 1 of a single-part object is the whole object, answered as a 206 range.
            let content_range = (size > 0).then(|| format!("bytes 0-{}/{}", size - 1, size));
            return Ok(Slice { offset: 0, len: size, content_range, parts_count, part_checksum: None, whole: true });
        }
        if n > meta.part_sizes.len() {
            return Err(invalid_part_number());
        }
        let offset: u64 = meta.part_sizes[..n - 1].iter().sum();
        let len = meta.part_sizes[n - 1];
        let part_checksum = meta.checksum.as_ref().and_then(|c| {
            meta.part_checksums.get(n - 1).map(|v| strait_connectors::StoredChecksum {
                algorithm: c.algorithm.clone(),
                value: v.clone(),
                kind: ChecksumType::COMPOSITE.into(),
            })
        });
        let content_range = (len > 0).then(|| format!("bytes {}-{}/{}", offset, offset + len - 1, size));
        return Ok(Slice { offset, len, content_range, parts_count, part_checksum, whole: false });
    }
    match range {
        None => Ok(Slice { offset: 0, len: size, content_range: None, parts_count, part_checksum: None, whole: true }),
        Some(r) => {
            let rg = r.check(size).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            Ok(Slice {
                offset: rg.start,
                len: rg.end - rg.start,
                content_range: Some(format!("bytes {}-{}/{}", rg.start, rg.end - 1, size)),
                parts_count,
                part_checksum: None,
                whole: false,
            })
        }
    }
}

/// Objects up to this size are read whole in the same trip to the blocking pool as the open
/// (GetObject only): a small GET then costs one hand-off between threads instead of three.
pub const SMALL_BODY_BYTES: u64 = 256 << 10;

/// Open the bucket and the object; with `small`, also read an object of at most
/// [`SMALL_BODY_BYTES`] from the opened file (the same version the metadata describes). Tried
/// first on this thread from the kernel's caches alone ([`super::io::inline`]), else in one
/// blocking call.
async fn open(s: &Strait, bucket: &str, key: &str, small: bool) -> S3Result<(OpenObject, Option<bytes::Bytes>)> {
    let key = parse_key(key)?;
    if let Some(r) = super::io::inline(|| open_now(&s.store, bucket, &key, small)) {
        return r.map_err(super::error::obj_err);
    }
    let (store, bucket) = (s.store.clone(), bucket.to_owned());
    fs(move || open_now(&store, &bucket, &key, small)).await
}

/// [`open`]'s file-system work (free of side effects: it may run twice).
fn open_now(
    store: &strait_connectors::PosixStore,
    bucket: &str,
    key: &strait_connectors::ObjectKey,
    small: bool,
) -> strait_connectors::Result<(OpenObject, Option<bytes::Bytes>)> {
    let obj = store.bucket(bucket)?.open_object(key)?;
    let size = obj.meta.id.size;
    let body = match &obj.file {
        Some(f) if small && size > 0 && size <= SMALL_BODY_BYTES => {
            let _s = tracing::debug_span!(target: "strait::fs", "fs.read", bytes = size as i64).entered();
            let mut buf = vec![0u8; size as usize];
            let got = strait_connectors::read_full_at(f, &mut buf, 0)?;
            // A file that changed size since its metadata was read is streamed instead
            // (the stream reports a short file as an error rather than serving it).
            (got == buf.len()).then(|| bytes::Bytes::from(buf))
        }
        _ => None,
    };
    Ok((obj, body))
}

/// Overrides from response-* query parameters.
pub struct Overrides<'a> {
    pub cache_control: Option<&'a String>,
    pub content_disposition: Option<&'a String>,
    pub content_encoding: Option<&'a String>,
    pub content_language: Option<&'a String>,
    pub content_type: Option<&'a String>,
    pub expires: Option<&'a Timestamp>,
}

macro_rules! fill_headers {
    ($out:expr, $meta:expr, $ov:expr) => {{
        let m: &ObjectMeta = $meta;
        let ov: &Overrides<'_> = $ov;
        $out.content_type = Some(
            ov.content_type.cloned().or_else(|| m.content_type.clone()).unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
        );
        $out.content_encoding = ov.content_encoding.cloned().or_else(|| m.content_encoding.clone());
        $out.content_disposition = ov.content_disposition.cloned().or_else(|| m.content_disposition.clone());
        $out.content_language = ov.content_language.cloned().or_else(|| m.content_language.clone());
        $out.cache_control = ov.cache_control.cloned().or_else(|| m.cache_control.clone());
        $out.expires = ov.expires.cloned().or_else(|| m.expires.as_deref().and_then(parse_http_date));
        $out.e_tag = Some(ETag::Strong(m.etag.clone()));
        $out.accept_ranges = Some("bytes".into());
        // x-amz-storage-class is omitted for STANDARD objects, as AWS does.
        if !m.user.is_empty() {
            $out.metadata = Some(m.user.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        }
    }};
}

/// What GetObject and HeadObject share: open, conditions, slice, headers, checksums. A macro
/// because the two operations have distinct input and output types with the same fields.
macro_rules! prepare_read {
    ($s:expr, $i:expr, $out:ty, $small:expr) => {{
        let i = $i;
        if i.version_id.as_deref().is_some_and(|v| v != "null") {
            return Err(s3_error!(NoSuchVersion, "versioning is not enabled"));
        }
        let (obj, small_body) = open($s, &i.bucket, &i.key, $small).await?;
        let conds = Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        };
        check_conditions(&conds, &obj.meta, obj.mtime_ns, false)?;
        let sl = slice(&obj.meta, obj.meta.id.size, i.range.as_ref(), i.part_number)?;
        let ov = Overrides {
            cache_control: i.response_cache_control.as_ref(),
            content_disposition: i.response_content_disposition.as_ref(),
            content_encoding: i.response_content_encoding.as_ref(),
            content_language: i.response_content_language.as_ref(),
            content_type: i.response_content_type.as_ref(),
            expires: i.response_expires.as_ref(),
        };
        let mut out = <$out>::default();
        fill_headers!(out, &obj.meta, &ov);
        out.last_modified = Some(timestamp_ns(obj.mtime_ns));
        out.content_length = Some(sl.len as i64);
        out.content_range = sl.content_range.clone();
        out.parts_count = sl.parts_count;
        if i.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED) {
            let ck = if sl.whole { obj.meta.checksum.as_ref() } else { sl.part_checksum.as_ref() };
            set_checksum_fields!(out, ck);
        }
        (obj, sl, out, small_body)
    }};
}

pub async fn get_object(s: &Strait, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    // On a zero-copy connection even small bodies go by sendfile: no read into memory first.
    let regions = req.extensions.get::<crate::zerocopy::Regions>().cloned();
    let (obj, sl, mut out, small_body) = prepare_read!(s, &req.input, GetObjectOutput, regions.is_none());
    if !obj.meta.tags.is_empty() {
        out.tag_count = Some(obj.meta.tags.len() as i32);
    }
    // s3s answers 206 itself when Content-Range is set.
    out.body = Some(match (obj.file, small_body) {
        (Some(_), Some(b)) if sl.len > 0 => {
            let (start, end) = (sl.offset as usize, (sl.offset + sl.len) as usize);
            StreamingBlob::from(s3s::Body::from(b.slice(start..end)))
        }
        (Some(f), _) if sl.len > 0 => match regions {
            Some(r) => StreamingBlob::wrap(crate::zerocopy::file_body(r, f, sl.offset, sl.len)),
            None => file_body(f, sl.offset, sl.len),
        },
        _ => StreamingBlob::from(s3s::Body::empty()),
    });
    Ok(S3Response::new(out))
}

pub async fn head_object(s: &Strait, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
    let (_, sl, out, _) = prepare_read!(s, &req.input, HeadObjectOutput, false);
    let mut resp = S3Response::new(out);
    if sl.content_range.is_some() {
        // s3s 0.14 sets 206 for GetObject only; the front service applies this for HEAD.
        resp.extensions.insert(crate::server::StatusOverride(http::StatusCode::PARTIAL_CONTENT));
    }
    Ok(resp)
}

/// GetObjectAttributes: ETag, size, checksum, parts (of multipart objects) and storage class.
pub async fn get_object_attributes(
    s: &Strait,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let i = &req.input;
    if i.version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(s3_error!(NoSuchVersion, "versioning is not enabled"));
    }
    let (obj, _) = open(s, &i.bucket, &i.key, false).await?;
    // The header is a comma-separated list (s3s 0.14 may hand it over as one element).
    let want = |a: &str| i.object_attributes.iter().flat_map(|x| x.as_str().split(',')).any(|x| x.trim() == a);
    let m = &obj.meta;
    let mut out = GetObjectAttributesOutput { last_modified: Some(timestamp_ns(obj.mtime_ns)), ..Default::default() };
    if want(ObjectAttributes::ETAG) {
        // GetObjectAttributes reports the ETag without quotes.
        out.e_tag = Some(ETag::Strong(m.etag.clone()));
    }
    if want(ObjectAttributes::OBJECT_SIZE) {
        out.object_size = Some(m.id.size as i64);
    }
    if want(ObjectAttributes::STORAGE_CLASS) {
        out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    if want(ObjectAttributes::CHECKSUM) {
        if let Some(ck) = &m.checksum {
            let mut c = Checksum::default();
            set_checksum_fields!(c, Some(ck));
            out.checksum = Some(c);
        }
    }
    if want(ObjectAttributes::OBJECT_PARTS) && !m.part_sizes.is_empty() {
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = i.part_number_marker.unwrap_or(0).max(0) as usize;
        let algo = m.checksum.as_ref().map(|c| c.algorithm.clone());
        let all: Vec<ObjectPart> = m
            .part_sizes
            .iter()
            .enumerate()
            .map(|(n, size)| {
                let mut p =
                    ObjectPart { part_number: Some(n as i32 + 1), size: Some(*size as i64), ..Default::default() };
                if let (Some(a), Some(v)) = (&algo, m.part_checksums.get(n)) {
                    let ck = strait_connectors::StoredChecksum {
                        algorithm: a.clone(),
                        value: v.clone(),
                        kind: String::new(),
                    };
                    super::put::set_checksum_value!(p, Some(&ck));
                }
                p
            })
            .skip(marker)
            .collect();
        let truncated = all.len() > max;
        let parts: Vec<ObjectPart> = all.into_iter().take(max).collect();
        out.object_parts = Some(GetObjectAttributesParts {
            total_parts_count: Some(m.part_sizes.len() as i32),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: if truncated { parts.last().and_then(|p| p.part_number) } else { None },
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            parts: Some(parts),
        });
    }
    Ok(S3Response::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_connectors::FileIdentity;

    fn meta(etag: &str) -> ObjectMeta {
        ObjectMeta { etag: etag.into(), id: FileIdentity { ino: 1, size: 10, mtime_ns: 0 }, ..Default::default() }
    }

    fn ts(unix: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(unix).unwrap())
    }

    #[test]
    fn condition_precedence() {
        let m = meta("abc");
        let mtime = 1_000_000_000_000i128; // 1000 s
        let yes = ETagCondition::ETag(ETag::Strong("abc".into()));
        let no = ETagCondition::ETag(ETag::Strong("zzz".into()));
        let (old, new) = (ts(500), ts(2000));
        let run = |im, inm, ims, ius| {
            check_conditions(
                &Conditions { if_match: im, if_none_match: inm, if_modified_since: ims, if_unmodified_since: ius },
                &m,
                mtime,
                false,
            )
            .err()
            .map(|e| e.code().as_str().to_owned())
        };
        assert_eq!(run(Some(&yes), None, None, None), None);
        assert_eq!(run(Some(&no), None, None, None).as_deref(), Some("PreconditionFailed"));
        // If-Match true wins over a failing If-Unmodified-Since.
        assert_eq!(run(Some(&yes), None, None, Some(&old)), None);
        assert_eq!(run(None, None, None, Some(&old)).as_deref(), Some("PreconditionFailed"));
        assert_eq!(run(None, Some(&yes), None, None).as_deref(), Some("NotModified"));
        assert_eq!(run(None, Some(&no), None, None), None);
        // If-None-Match false (ETag differs) decides over If-Modified-Since.
        assert_eq!(run(None, Some(&no), Some(&new), None), None);
        assert_eq!(run(None, None, Some(&new), None).as_deref(), Some("NotModified"));
        assert_eq!(run(None, None, Some(&old), None), None);
    }

    #[test]
    fn ranges_and_parts() {
        let mut m = meta("x");
        let r = Range::Int { first: 5, last: Some(100) };
        let sl = slice(&m, 10, Some(&r), None).unwrap();
        assert_eq!((sl.offset, sl.len, sl.content_range.as_deref()), (5, 5, Some("bytes 5-9/10")));
        let suffix = Range::Suffix { length: 3 };
        let sl = slice(&m, 10, Some(&suffix), None).unwrap();
        assert_eq!((sl.offset, sl.len), (7, 3));
        assert!(slice(&m, 10, Some(&Range::Int { first: 10, last: None }), None).is_err());
        assert!(slice(&m, 10, None, Some(1)).unwrap().whole);
        assert_eq!(slice(&m, 10, None, Some(2)).err().unwrap().code().as_str(), "InvalidPartNumber");
        m.part_sizes = vec![6, 4];
        let sl = slice(&m, 10, None, Some(2)).unwrap();
        assert_eq!((sl.offset, sl.len, sl.parts_count), (6, 4, Some(2)));
        assert_eq!(slice(&m, 10, None, Some(3)).err().unwrap().code().as_str(), "InvalidPartNumber");
    }
}
