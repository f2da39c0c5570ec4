//! PutObject: stream into a staging file in the target directory, verify every digest the
//! client declared (header or trailer), then publish atomically.

use super::checksum::{self, b64, decode_checksum, decode_content_md5, hex, Algo, Digests};
use super::io::{fs, write_body};
use super::{parse_key, tagging, Strait};
use http::HeaderMap;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use std::collections::BTreeMap;
use strait_connectors::{ObjectMeta, PublishMode, StoredChecksum};

/// Most bytes of user metadata (keys + values), as AWS.
pub const USER_METADATA_BYTES_MAX: usize = 2048;

/// Which additional checksum the client asked for and where its expected value comes from.
#[derive(Debug, Clone)]
pub enum Expected {
    None,
    /// Compute and store, nothing to verify (`x-amz-sdk-checksum-algorithm` alone).
    Compute(Algo),
    /// Value given as a header.
    Header(Algo, Vec<u8>),
    /// Value arrives in the aws-chunked trailer.
    Trailer(Algo),
}

impl Expected {
    pub fn algo(&self) -> Option<Algo> {
        match self {
            Self::None => None,
            Self::Compute(a) | Self::Header(a, _) | Self::Trailer(a) => Some(*a),
        }
    }
}

/// The checksum fields common to PutObject and UploadPart.
pub struct ChecksumFields<'a> {
    pub algorithm: Option<&'a ChecksumAlgorithm>,
    pub values: [(Algo, Option<&'a String>); 5],
}

/// Work out the requested checksum from headers, trailer declaration and algorithm field.
pub fn requested_checksum(headers: &HeaderMap, f: &ChecksumFields<'_>) -> S3Result<Expected> {
    let given: Vec<(Algo, &String)> = f.values.iter().filter_map(|(a, v)| v.map(|v| (*a, v))).collect();
    if given.len() > 1 {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    let declared = match f.algorithm {
        Some(a) => Some(Algo::parse(a.as_str()).ok_or_else(|| {
            s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        })?),
        None => None,
    };
    let trailer = match headers.get("x-amz-trailer") {
        Some(v) => {
            let v = v.to_str().map_err(|_| s3_error!(InvalidRequest, "invalid x-amz-trailer"))?;
            Some(Algo::from_header(v).ok_or_else(|| {
                s3_error!(InvalidRequest, "The value specified in the x-amz-trailer header is not supported")
            })?)
        }
        None => None,
    };
    let exp = match (given.first(), trailer) {
        (Some(_), Some(_)) => return Err(s3_error!(InvalidRequest, "Expecting a single x-amz-checksum- header")),
        (Some((a, v)), None) => Expected::Header(*a, decode_checksum(*a, v)?),
        (None, Some(a)) => Expected::Trailer(a),
        (None, None) => match declared {
            Some(a) => Expected::Compute(a),
            None => Expected::None,
        },
    };
    if let (Some(d), Some(a)) = (declared, exp.algo()) {
        if d != a {
            return Err(s3_error!(InvalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid."));
        }
    }
    Ok(exp)
}

/// The value to verify once the body is read (trailers are only known then).
pub fn expected_value<T>(req: &S3Request<T>, exp: &Expected) -> S3Result<Option<(Algo, Vec<u8>)>> {
    match exp {
        Expected::None | Expected::Compute(_) => Ok(None),
        Expected::Header(a, v) => Ok(Some((*a, v.clone()))),
        Expected::Trailer(a) => {
            let trailers = req.trailing_headers.as_ref().and_then(|t| t.take());
            let v = trailers
                .as_ref()
                .and_then(|h| h.get(a.header()))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| s3_error!(InvalidRequest, "The trailer {} was declared but not sent", a.header()))?;
            Ok(Some((*a, decode_checksum(*a, &v)?)))
        }
    }
}

/// Check the digests, and record ETag and checksum in `meta`.
pub fn seal(
    meta: &mut ObjectMeta,
    d: &Digests,
    md5: Option<&[u8; 16]>,
    expected: Option<(Algo, Vec<u8>)>,
) -> S3Result<()> {
    checksum::verify(d, md5, expected.as_ref().map(|(a, v)| (*a, v.as_slice())))?;
    meta.etag = hex(&d.md5);
    meta.checksum = d.checksum.as_ref().map(|(a, raw)| StoredChecksum {
        algorithm: a.name().into(),
        value: b64(raw),
        kind: ChecksumType::FULL_OBJECT.into(),
    });
    Ok(())
}

/// `Content-Encoding: aws-chunked` describes the wire, not the object: strip it.
pub fn stored_content_encoding(v: Option<&String>) -> Option<String> {
    let v = v?;
    let kept: Vec<&str> =
        v.split(',').map(str::trim).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// Validate user metadata (2 KB of keys and values at most).
pub fn user_metadata(m: Option<&Metadata>) -> S3Result<BTreeMap<String, String>> {
    let Some(m) = m else {
        return Ok(BTreeMap::new());
    };
    let size: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > USER_METADATA_BYTES_MAX {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size ({size} > {USER_METADATA_BYTES_MAX} bytes)"
        ));
    }
    Ok(m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
}

pub fn format_http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// Metadata fields shared by PutObject, CreateMultipartUpload and CopyObject (REPLACE).
pub struct MetaFields<'a> {
    pub content_type: Option<&'a String>,
    pub content_encoding: Option<&'a String>,
    pub content_disposition: Option<&'a String>,
    pub content_language: Option<&'a String>,
    pub cache_control: Option<&'a String>,
    pub expires: Option<&'a Timestamp>,
    pub metadata: Option<&'a Metadata>,
    pub tagging: Option<&'a String>,
}

pub fn object_meta(f: MetaFields<'_>) -> S3Result<ObjectMeta> {
    Ok(ObjectMeta {
        v: strait_connectors::meta::META_VERSION,
        content_type: f.content_type.cloned(),
        content_encoding: stored_content_encoding(f.content_encoding),
        content_disposition: f.content_disposition.cloned(),
        content_language: f.content_language.cloned(),
        cache_control: f.cache_control.cloned(),
        expires: f.expires.and_then(format_http_date),
        user: user_metadata(f.metadata)?,
        tags: match f.tagging {
            Some(t) => tagging::parse_tagging_header(t)?,
            None => Vec::new(),
        },
        ..Default::default()
    })
}

/// Storage classes AWS accepts. Strait stores every object the same way (on the file system it
/// serves) and reports STANDARD; an unknown class is refused as AWS does.
pub fn check_storage_class(sc: Option<&StorageClass>) -> S3Result<()> {
    const KNOWN: [&str; 11] = [
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
    ];
    match sc {
        Some(s) if !KNOWN.contains(&s.as_str()) => {
            Err(s3_error!(InvalidStorageClass, "The storage class you specified is not valid"))
        }
        _ => Ok(()),
    }
}

/// Conditional-write headers → publish mode.
pub fn publish_mode(if_match: Option<&IfMatch>, if_none_match: Option<&IfNoneMatch>) -> S3Result<PublishMode> {
    match (if_match, if_none_match) {
        (None, None) => Ok(PublishMode::Overwrite),
        (None, Some(ETagCondition::Any)) => Ok(PublishMode::CreateOnly),
        (None, Some(_)) => Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'")),
        (Some(ETagCondition::Any), None) => Ok(PublishMode::IfMatch("*".into())),
        (Some(ETagCondition::ETag(e)), None) => Ok(PublishMode::IfMatch(e.value().to_owned())),
        (Some(_), Some(_)) => {
            Err(s3_error!(InvalidRequest, "If-Match and If-None-Match cannot be combined on a write"))
        }
    }
}

/// Fill the `checksum_<algorithm>` field of a response or part from a stored checksum.
macro_rules! set_checksum_value {
    ($out:expr, $ck:expr) => {
        if let Some(ck) = $ck {
            let v = Some(ck.value.clone());
            match ck.algorithm.as_str() {
                "CRC32" => $out.checksum_crc32 = v,
                "CRC32C" => $out.checksum_crc32c = v,
                "CRC64NVME" => $out.checksum_crc64nvme = v,
                "SHA1" => $out.checksum_sha1 = v,
                "SHA256" => $out.checksum_sha256 = v,
                _ => {}
            }
        }
    };
}
pub(crate) use set_checksum_value;

/// [`set_checksum_value`] plus the checksum type, for outputs that carry one.
macro_rules! set_checksum_fields {
    ($out:expr, $ck:expr) => {
        if let Some(ck) = $ck {
            $crate::s3::put::set_checksum_value!($out, Some(ck));
            $out.checksum_type = Some(ChecksumType::from(ck.kind.clone()));
        }
    };
}
pub(crate) use set_checksum_fields;

pub async fn put_object(s: &Strait, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let i = &req.input;
    let key = parse_key(&i.key)?;
    let bucket = s.bucket(&i.bucket).await?;
    check_storage_class(i.storage_class.as_ref())?;
    if i.write_offset_bytes.is_some() {
        return Err(s3_error!(NotImplemented, "appends (x-amz-write-offset-bytes) are not supported"));
    }
    let mut meta = object_meta(MetaFields {
        content_type: i.content_type.as_ref(),
        content_encoding: i.content_encoding.as_ref(),
        content_disposition: i.content_disposition.as_ref(),
        content_language: i.content_language.as_ref(),
        cache_control: i.cache_control.as_ref(),
        expires: i.expires.as_ref(),
        metadata: i.metadata.as_ref(),
        tagging: i.tagging.as_ref(),
    })?;
    let grants = super::acl::object_grants!(i);
    meta.acl = super::acl::object_acl(i.acl.as_ref(), grants)?;
    let exp = requested_checksum(
        &req.headers,
        &ChecksumFields {
            algorithm: i.checksum_algorithm.as_ref(),
            values: [
                (Algo::Crc32, i.checksum_crc32.as_ref()),
                (Algo::Crc32c, i.checksum_crc32c.as_ref()),
                (Algo::Crc64Nvme, i.checksum_crc64nvme.as_ref()),
                (Algo::Sha1, i.checksum_sha1.as_ref()),
                (Algo::Sha256, i.checksum_sha256.as_ref()),
            ],
        },
    )?;
    let md5 = i.content_md5.as_deref().map(decode_content_md5).transpose()?;
    let mode = publish_mode(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    let mut req = req;
    let body = req.input.body.take();

    let meta = if key.is_dir_marker() {
        let d = super::io::empty_body(body, exp.algo()).await?;
        seal(&mut meta, &d, md5.as_ref(), expected_value(&req, &exp)?)?;
        fs(move || bucket.put_marker(&key, meta, &mode)).await?
    } else {
        let k = key.clone();
        let staging = fs(move || bucket.stage(&k)).await?;
        let (staging, _size, d) = write_body(staging, body, exp.algo(), s.limits.object_size_bytes_max).await?;
        seal(&mut meta, &d, md5.as_ref(), expected_value(&req, &exp)?)?;
        fs(move || staging.publish(meta, &mode)).await?
    };
    let mut out = PutObjectOutput { e_tag: Some(ETag::Strong(meta.etag.clone())), ..Default::default() };
    set_checksum_fields!(out, meta.checksum.as_ref());
    Ok(S3Response::new(out))
}
