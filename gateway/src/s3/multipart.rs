//! Multipart uploads. Upload records live in the metadata store (bound to bucket, key and
//! owner); parts are files beside the bucket (connector); completion concatenates the parts
//! into a staging file in the target directory and publishes it like any object.

use super::checksum::{self, b64, decode_checksum, hex, Algo, BodyHasher};
use super::copy::open_source;
use super::error::{meta_err, upload_err};
use super::get::{timestamp_ns, Conditions};
use super::io::{blocking, copy_hashed, fs, write_body};
use super::put::{
    expected_value, object_meta, publish_mode, requested_checksum, set_checksum_fields, set_checksum_value,
    ChecksumFields, Expected, MetaFields,
};
use super::{parse_key, Strait};
use md5::Digest as _;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use std::collections::HashMap;
use strait_connectors::multipart::StoredPart;
use strait_connectors::{ObjectMeta, Result as ConnResult, StoredChecksum};
use strait_metadata::{CompletedUpload, UploadRecord, FORMAT_VERSION};

pub const PART_NUMBER_MAX: i32 = 10_000;
pub const LIST_PARTS_MAX: i32 = 1000;
pub const LIST_UPLOADS_MAX: i32 = 1000;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Upload ids sort by creation time (ListMultipartUploads orders a key's uploads by initiation).
fn new_upload_id() -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    let rnd = uuid::Uuid::new_v4().simple().to_string();
    format!("{nanos:016x}{}", &rnd[..16])
}

fn check_part_number(n: i32) -> S3Result<u32> {
    if !(1..=PART_NUMBER_MAX).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive"
        ));
    }
    Ok(n as u32)
}

/// The upload, checked against the request's bucket, key and caller.
/// Who an upload belongs to: the caller's access key, or [`ANONYMOUS`] for an anonymous caller
/// that a bucket policy or ACL let in (the upload id is then the only capability, as in S3).
fn upload_principal<T>(req: &S3Request<T>) -> String {
    req.credentials.as_ref().map_or_else(|| ANONYMOUS.to_owned(), |c| c.access_key.clone())
}

/// The owner recorded for uploads started anonymously.
const ANONYMOUS: &str = "anonymous";

fn load_upload(s: &Strait, bucket: &str, key: &str, id: &str, who: &str) -> S3Result<UploadRecord> {
    let u = s.meta.get_upload(id).map_err(meta_err)?;
    match u {
        Some(u) if u.bucket == bucket && u.key == key => {
            // The bucket owner may act on every upload (AWS: it can always abort and list them).
            if u.owner != who && who != s.owner {
                return Err(s3_error!(AccessDenied, "the upload belongs to another principal"));
            }
            Ok(u)
        }
        _ => Err(s3_error!(NoSuchUpload, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")),
    }
}

fn upload_algo(u: &UploadRecord) -> Option<Algo> {
    u.checksum_algorithm.as_deref().and_then(Algo::parse)
}

fn full_object(u: &UploadRecord) -> bool {
    u.checksum_type.as_deref() == Some(ChecksumType::FULL_OBJECT)
}

pub async fn create(
    s: &Strait,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let i = &req.input;
    let key = parse_key(&i.key)?;
    super::put::check_storage_class(i.storage_class.as_ref())?;
    if key.is_dir_marker() {
        return Err(s3_error!(InvalidArgument, "a directory-marker key (ending in '/') cannot be uploaded in parts"));
    }
    let bucket = s.bucket(&i.bucket).await?;
    let mut tmpl = object_meta(MetaFields {
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
    tmpl.acl = super::acl::object_acl(i.acl.as_ref(), grants)?;
    let algo = match i.checksum_algorithm.as_ref() {
        Some(a) => Some(
            Algo::parse(a.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported."))?,
        ),
        None => None,
    };
    let ctype = match (algo, i.checksum_type.as_ref().map(|t| t.as_str())) {
        (None, Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ))
        }
        (None, None) => None,
        (Some(Algo::Crc64Nvme), Some(ChecksumType::COMPOSITE)) => {
            return Err(s3_error!(
                InvalidRequest,
                "The COMPOSITE checksum type cannot be used with the CRC64NVME checksum algorithm."
            ))
        }
        (Some(a), Some(ChecksumType::FULL_OBJECT)) if !a.is_crc() => {
            return Err(s3_error!(
                InvalidRequest,
                "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                a.name()
            ))
        }
        (Some(_), Some(t @ (ChecksumType::FULL_OBJECT | ChecksumType::COMPOSITE))) => Some(t.to_owned()),
        (Some(_), Some(_)) => return Err(s3_error!(InvalidRequest, "Invalid x-amz-checksum-type")),
        (Some(Algo::Crc64Nvme), None) => Some(ChecksumType::FULL_OBJECT.to_owned()),
        (Some(_), None) => Some(ChecksumType::COMPOSITE.to_owned()),
    };
    let id = new_upload_id();
    let rec = UploadRecord {
        v: FORMAT_VERSION,
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        upload_id: id.clone(),
        owner: upload_principal(&req),
        initiated_unix_ms: now_ms(),
        object_meta: String::from_utf8(tmpl.encode()).expect("JSON is UTF-8"),
        checksum_algorithm: algo.map(|a| a.name().to_owned()),
        checksum_type: ctype.clone(),
        extra: Default::default(),
    };
    let idc = id.clone();
    fs(move || bucket.create_upload(&idc)).await?;
    s.meta.put_upload(&rec).map_err(meta_err)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        upload_id: Some(id),
        checksum_algorithm: algo.map(|a| ChecksumAlgorithm::from(a.name().to_owned())),
        checksum_type: ctype.map(ChecksumType::from),
        ..Default::default()
    }))
}

fn part_meta(etag: String, checksum: Option<(Algo, Vec<u8>)>) -> ObjectMeta {
    ObjectMeta {
        etag,
        checksum: checksum.map(|(a, raw)| StoredChecksum {
            algorithm: a.name().into(),
            value: b64(&raw),
            kind: ChecksumType::COMPOSITE.into(),
        }),
        ..Default::default()
    }
}

pub async fn upload_part(s: &Strait, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
    let i = &req.input;
    let n = check_part_number(i.part_number)?;
    let who = upload_principal(&req);
    let u = load_upload(s, &i.bucket, &i.key, &i.upload_id, &who)?;
    let bucket = s.bucket(&i.bucket).await?;
    let mut exp = requested_checksum(
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
    match (upload_algo(&u), exp.algo()) {
        (Some(ua), Some(pa)) if ua != pa => {
            return Err(s3_error!(
                InvalidRequest,
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                ua.name(),
                pa.name()
            ))
        }
        (Some(ua), None) => exp = Expected::Compute(ua),
        _ => {}
    }
    let md5 = i.content_md5.as_deref().map(checksum::decode_content_md5).transpose()?;
    let id = i.upload_id.clone();
    // The part's length, when the request declares it (aws-chunked bodies declare the decoded
    // length apart): a declared part of at most the upload's slot size is written in place.
    let declared = req
        .headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| i.content_length.and_then(|n| u64::try_from(n).ok()))
        .filter(|&n| n <= s.limits.part_size_bytes_max);
    let slot = match declared {
        Some(len) => {
            let (b, id) = (bucket.clone(), id.clone());
            blocking(upload_err, move || b.claim_slot(&id, n, len)).await?
        }
        None => None,
    };
    let mut req = req;
    let body = req.input.body.take();
    let (meta, publish): (ObjectMeta, Box<dyn FnOnce(ObjectMeta) -> ConnResult<()> + Send>) = match slot {
        Some(slot) => {
            // At most the declared length: the bytes after it would land in the next slot.
            let len = declared.unwrap_or(0);
            let (slot, size, d) = write_body(slot, body, exp.algo(), len).await?;
            if size != len {
                return Err(s3_error!(
                    IncompleteBody,
                    "You did not provide the number of bytes specified by the Content-Length HTTP header"
                ));
            }
            let expected = expected_value(&req, &exp)?;
            checksum::verify(&d, md5.as_ref(), expected.as_ref().map(|(a, v)| (*a, v.as_slice())))?;
            (part_meta(hex(&d.md5), d.checksum), Box::new(move |m| slot.publish(m, size)))
        }
        None => {
            let staging = blocking(upload_err, move || bucket.stage_part(&id, n)).await?;
            let (staging, _size, d) = write_body(staging, body, exp.algo(), s.limits.part_size_bytes_max).await?;
            let expected = expected_value(&req, &exp)?;
            checksum::verify(&d, md5.as_ref(), expected.as_ref().map(|(a, v)| (*a, v.as_slice())))?;
            (part_meta(hex(&d.md5), d.checksum), Box::new(move |m| staging.publish(m)))
        }
    };
    let out_ck = meta.checksum.clone();
    let etag = meta.etag.clone();
    blocking(upload_err, move || publish(meta)).await?;
    let mut out = UploadPartOutput { e_tag: Some(ETag::Strong(etag)), ..Default::default() };
    set_checksum_value!(out, out_ck.as_ref());
    Ok(S3Response::new(out))
}

/// `bytes=first-last` of an UploadPartCopy, checked against the source size.
fn copy_range(r: Option<&String>, size: u64) -> S3Result<(u64, u64)> {
    let Some(r) = r else { return Ok((0, size)) };
    let bad = || {
        s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let spec = r.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (first, last): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if first > last {
        return Err(bad());
    }
    if last >= size {
        return Err(s3_error!(InvalidArgument, "Range specified is not valid for source object of size: {size}"));
    }
    Ok((first, last - first + 1))
}

pub async fn upload_part_copy(
    s: &Strait,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let i = &req.input;
    let n = check_part_number(i.part_number)?;
    let who = upload_principal(&req);
    let u = load_upload(s, &i.bucket, &i.key, &i.upload_id, &who)?;
    let bucket = s.bucket(&i.bucket).await?;
    let conds = Conditions {
        if_match: i.copy_source_if_match.as_ref(),
        if_none_match: i.copy_source_if_none_match.as_ref(),
        if_modified_since: i.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: i.copy_source_if_unmodified_since.as_ref(),
    };
    let (_, src) = open_source(s, &i.copy_source, &conds).await?;
    let Some(file) = src.file else {
        return Err(s3_error!(InvalidRequest, "a directory-marker object cannot be a part source"));
    };
    let (offset, len) = copy_range(i.copy_source_range.as_ref(), src.meta.id.size)?;
    if len > s.limits.part_size_bytes_max {
        return Err(s3_error!(EntityTooLarge, "the part is larger than the maximum part size"));
    }
    let algo = upload_algo(&u);
    let id = i.upload_id.clone();
    let (staging, d) = blocking(upload_err, move || {
        let mut st = bucket.stage_part(&id, n)?;
        let mut h = BodyHasher::new(algo);
        copy_hashed(&file, offset, len, st.file(), &mut h)?;
        Ok((st, h.finalize()))
    })
    .await?;
    let meta = part_meta(hex(&d.md5), d.checksum);
    let etag = meta.etag.clone();
    let ck = meta.checksum.clone();
    blocking(upload_err, move || staging.publish(meta)).await?;
    let mut result = CopyPartResult {
        e_tag: Some(ETag::Strong(etag)),
        last_modified: Some(timestamp_ns(time::OffsetDateTime::now_utc().unix_timestamp_nanos())),
        ..Default::default()
    };
    set_checksum_value!(result, ck.as_ref());
    Ok(S3Response::new(UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() }))
}

fn completed_part_checksum(p: &CompletedPart, algo: Algo) -> Option<&String> {
    match algo {
        Algo::Crc32 => p.checksum_crc32.as_ref(),
        Algo::Crc32c => p.checksum_crc32c.as_ref(),
        Algo::Crc64Nvme => p.checksum_crc64nvme.as_ref(),
        Algo::Sha1 => p.checksum_sha1.as_ref(),
        Algo::Sha256 => p.checksum_sha256.as_ref(),
    }
}

/// Check the client's part list against the stored parts (AWS's rules and error codes).
fn validate_parts<'a>(
    req_parts: &[CompletedPart],
    stored: &'a HashMap<u32, StoredPart>,
    algo: Option<Algo>,
    composite: bool,
    min_part: u64,
) -> S3Result<Vec<&'a StoredPart>> {
    let mut chosen = Vec::with_capacity(req_parts.len());
    let mut last = 0i32;
    for (idx, p) in req_parts.iter().enumerate() {
        let n = p.part_number.ok_or_else(|| s3_error!(MalformedXML, "a part has no PartNumber"))?;
        if n <= last {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        last = n;
        let invalid = || {
            s3_error!(InvalidPart, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
        };
        let sp = stored.get(&(n as u32)).ok_or_else(invalid)?;
        let want = p.e_tag.as_ref().map(|e| e.value().trim_matches('"').to_owned()).ok_or_else(invalid)?;
        if want != sp.meta.etag {
            return Err(invalid());
        }
        if let (Some(a), true) = (algo, composite) {
            if let Some(v) = completed_part_checksum(p, a) {
                if sp.meta.checksum.as_ref().map(|c| c.value.as_str()) != Some(v.as_str()) {
                    return Err(invalid());
                }
            }
        }
        if idx + 1 < req_parts.len() && sp.size < min_part {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
        chosen.push(sp);
    }
    Ok(chosen)
}

fn parts_digest(parts: &[CompletedPart]) -> String {
    let mut h = md5::Md5::new();
    for p in parts {
        h.update(
            format!("{}:{};", p.part_number.unwrap_or(0), p.e_tag.as_ref().map(|e| e.value()).unwrap_or("")).as_bytes(),
        );
    }
    hex(&h.finalize())
}

fn complete_output(bucket: &str, key: &str, etag: &str, ck: Option<&StoredChecksum>) -> CompleteMultipartUploadOutput {
    let mut out = CompleteMultipartUploadOutput {
        bucket: Some(bucket.to_owned()),
        key: Some(key.to_owned()),
        e_tag: Some(ETag::Strong(etag.to_owned())),
        location: Some(format!("/{bucket}/{key}")),
        ..Default::default()
    };
    set_checksum_fields!(out, ck);
    out
}

pub async fn complete(
    s: &Strait,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = &req.input;
    let key = parse_key(&i.key)?;
    let who = upload_principal(&req);
    let req_parts = i.multipart_upload.as_ref().and_then(|m| m.parts.clone()).unwrap_or_default();
    if req_parts.is_empty() {
        return Err(s3_error!(MalformedXML, "You must specify at least one part"));
    }
    let digest = parts_digest(&req_parts);
    let u = match load_upload(s, &i.bucket, &i.key, &i.upload_id, &who) {
        Ok(u) => u,
        Err(e) => {
            // A retried Complete of an upload that already completed gets the same answer.
            if let Some(c) = s.meta.completed_upload(&i.upload_id).map_err(meta_err)? {
                if c.bucket == i.bucket && c.key == i.key && c.parts_digest == digest {
                    let ck = c.checksum.map(|(algorithm, value, kind)| StoredChecksum { algorithm, value, kind });
                    return Ok(S3Response::new(complete_output(&i.bucket, &i.key, &c.etag, ck.as_ref())));
                }
            }
            return Err(e);
        }
    };
    let bucket = s.bucket(&i.bucket).await?;
    let algo = upload_algo(&u);
    let full = full_object(&u);
    let id = i.upload_id.clone();
    let b2 = bucket.clone();
    let stored: HashMap<u32, StoredPart> =
        blocking(upload_err, move || b2.list_parts(&id)).await?.into_iter().map(|p| (p.number, p)).collect();
    let chosen = validate_parts(&req_parts, &stored, algo, !full, s.limits.part_size_bytes_min)?;

    let mut md5s = md5::Md5::new();
    let mut part_cks = Vec::new();
    for p in &chosen {
        let raw = hex::decode(&p.meta.etag).map_err(|_| s3_error!(InternalError, "stored part ETag is not hex"))?;
        md5s.update(&raw);
        if let (Some(a), Some(c)) = (algo, p.meta.checksum.as_ref()) {
            part_cks.push(decode_checksum(a, &c.value)?);
        }
    }
    let etag = format!("{}-{}", hex(&md5s.finalize()), chosen.len());
    let mut meta = ObjectMeta::decode(u.object_meta.as_bytes()).unwrap_or_default();
    meta.etag = etag.clone();
    meta.part_sizes = chosen.iter().map(|p| p.size).collect();
    if let (Some(a), false) = (algo, full) {
        if part_cks.len() == chosen.len() {
            meta.checksum = Some(StoredChecksum {
                algorithm: a.name().into(),
                value: checksum::composite(a, &part_cks),
                kind: ChecksumType::COMPOSITE.into(),
            });
            meta.part_checksums = part_cks.iter().map(|r| b64(r)).collect();
        }
    }
    let mode = publish_mode(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    let sent_checksum = algo.and_then(|a| {
        match a {
            Algo::Crc32 => i.checksum_crc32.as_ref(),
            Algo::Crc32c => i.checksum_crc32c.as_ref(),
            Algo::Crc64Nvme => i.checksum_crc64nvme.as_ref(),
            Algo::Sha1 => i.checksum_sha1.as_ref(),
            Algo::Sha256 => i.checksum_sha256.as_ref(),
        }
        .cloned()
    });
    let Some(guard) = Completing::begin(&i.upload_id) else {
        return Err(s3_error!(SlowDown, "This upload is being completed; retry to get its result."));
    };
    // Conditional completion is checked now, so that a failed condition answers 412/404 with
    // its own status (it is checked again, atomically, at publish).
    if !matches!(mode, strait_connectors::PublishMode::Overwrite) {
        let (b, k) = (bucket.clone(), key.clone());
        let current = fs(move || match b.open_object(&k) {
            Ok(o) => Ok(Some(o.meta.etag)),
            Err(strait_connectors::ConnectorError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        strait_connectors::store::check_mode(&mode, current.as_deref()).map_err(super::error::obj_err)?;
    }
    // Creating the staging file finds key conflicts (a parent that is an object, a symlink on
    // the way) while they can still be answered with their own status. In place when the parts'
    // layout allows it (the upload's data file becomes the object), else a fresh file.
    let (b, k, id) = (bucket.clone(), key.clone(), i.upload_id.clone());
    let parts: Vec<StoredPart> = chosen.iter().map(|p| (*p).clone()).collect();
    let in_place = blocking(upload_err, move || b.stage_in_place(&id, &k, &parts.iter().collect::<Vec<_>>())).await?;
    let source = match in_place {
        Some(ip) => Source::InPlace(ip),
        None => {
            let b = bucket.clone();
            Source::Concat(fs(move || b.stage(&key)).await?)
        }
    };
    let job = Finish {
        s: s.clone(),
        bucket,
        source,
        upload: u,
        numbers: chosen.iter().map(|p| p.number).collect(),
        full_algo: if full { algo } else { None },
        sent_checksum,
        meta,
        mode,
        etag,
        digest,
        _guard: guard,
    };
    // Validation errors above answer with their own status; from here on the response is a 200
    // whose body is whitespace every 100 ms until the result (or an error document), as AWS does,
    // so that long concatenations do not hit client or proxy read timeouts.
    let out = CompleteMultipartUploadOutput { future: Some(Box::pin(finish(job))), ..Default::default() };
    Ok(S3Response::new(out))
}

/// Completions in progress in this process: a retry that arrives meanwhile is told to retry
/// later (and then gets the recorded result) instead of concatenating the parts a second time.
struct Completing(String);

fn completing() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static SET: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    SET.get_or_init(Default::default)
}

impl Completing {
    fn begin(id: &str) -> Option<Self> {
        let mut set = completing().lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.to_owned()).then(|| Self(id.to_owned()))
    }
}

impl Drop for Completing {
    fn drop(&mut self) {
        completing().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
    }
}

/// Where a completion's bytes come from.
enum Source {
    /// The upload's data file, linked as the staging file (parts stored on their own are
    /// copied into their slots).
    InPlace(strait_connectors::multipart::InPlace),
    /// A fresh staging file the chosen parts are concatenated into.
    Concat(strait_connectors::Staging),
}

/// The long part of CompleteMultipartUpload: concatenate (or fill in place), verify, publish,
/// record.
struct Finish {
    s: Strait,
    bucket: strait_connectors::Bucket,
    source: Source,
    upload: UploadRecord,
    numbers: Vec<u32>,
    full_algo: Option<Algo>,
    sent_checksum: Option<String>,
    meta: ObjectMeta,
    mode: strait_connectors::PublishMode,
    etag: String,
    digest: String,
    _guard: Completing,
}

async fn finish(job: Finish) -> S3Result<CompleteMultipartUploadOutput> {
    let Finish { s, bucket, source, upload, numbers, full_algo, sent_checksum, mut meta, mode, etag, digest, _guard } =
        job;
    let sizes = meta.part_sizes.clone();
    let id = upload.upload_id.clone();
    let b = bucket.clone();
    let (staging, full_ck) = fs(move || {
        let mut h = BodyHasher::new(full_algo);
        match source {
            Source::InPlace(ip) => {
                let mut st = ip.staging;
                for (n, at, len) in ip.copies {
                    let (part, offset) = b.open_part(&id, n)?;
                    copy_range_fast(&part, offset, len, st.file(), Some(at))?;
                }
                let have = st.file().metadata()?.len();
                if have < ip.size {
                    return Err(strait_connectors::ConnectorError::Busy(format!(
                        "upload data file holds {have} bytes, the parts {}",
                        ip.size
                    )));
                }
                // Cuts only bytes no part refers to (the planning checked that no slot after
                // the last chosen part was claimed).
                st.file().set_len(ip.size)?;
                if full_algo.is_some() {
                    hash_range(st.file(), 0, ip.size, &mut h)?;
                }
                Ok((st, h.finalize().checksum))
            }
            Source::Concat(mut st) => {
                for (n, size) in numbers.iter().zip(sizes) {
                    let (part, offset) = b.open_part(&id, *n)?;
                    if full_algo.is_some() {
                        copy_hashed(&part, offset, size, st.file(), &mut h)?;
                    } else {
                        copy_range_fast(&part, offset, size, st.file(), None)?;
                    }
                }
                Ok((st, h.finalize().checksum))
            }
        }
    })
    .await?;
    if let Some((a, raw)) = full_ck {
        meta.checksum = Some(StoredChecksum {
            algorithm: a.name().into(),
            value: b64(&raw),
            kind: ChecksumType::FULL_OBJECT.into(),
        });
    }
    // A whole-object checksum sent with Complete must match.
    if let (Some(sent), Some(ck)) = (sent_checksum.as_ref(), meta.checksum.as_ref()) {
        if sent != &ck.value {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                ck.algorithm
            ));
        }
    }
    let meta = fs(move || staging.publish(meta, &mode)).await?;
    let done = CompletedUpload {
        v: FORMAT_VERSION,
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        etag: etag.clone(),
        parts_digest: digest,
        checksum: meta.checksum.clone().map(|c| (c.algorithm, c.value, c.kind)),
        completed_unix_ms: now_ms(),
    };
    s.meta.finish_upload(&upload, Some(&done)).map_err(meta_err)?;
    let id = upload.upload_id.clone();
    if let Err(e) = blocking(upload_err, move || bucket.remove_upload(&id)).await {
        tracing::warn!(upload = %upload.upload_id, error = %e, "completed upload's parts not removed");
    }
    Ok(complete_output(&upload.bucket, &upload.key, &etag, meta.checksum.as_ref()))
}

/// Copy `len` bytes at `offset` of `src` to `dst` (at `dst_at`, or at its file position) with
/// copy_file_range (the file system may share or offload the blocks), falling back to
/// read/write where it is not supported.
fn copy_range_fast(
    src: &std::fs::File,
    offset: u64,
    len: u64,
    dst: &mut std::fs::File,
    dst_at: Option<u64>,
) -> Result<(), strait_connectors::ConnectorError> {
    use std::os::unix::fs::FileExt;
    let (mut off, mut out) = (offset, dst_at);
    while off - offset < len {
        let want = usize::try_from(len - (off - offset)).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut off), &*dst, out.as_mut(), want) {
            Ok(0) => return Err(strait_connectors::ConnectorError::Busy("part shrank during completion".into())),
            Ok(_) => {}
            Err(_) => {
                let mut sink = BodyHasher::new(None);
                let left = len - (off - offset);
                return match out {
                    None => copy_hashed(src, off, left, dst, &mut sink),
                    Some(mut at) => {
                        let mut buf = vec![0u8; (1 << 20).min(left.max(1) as usize)];
                        let end = off + left;
                        while off < end {
                            let want = (end - off).min(buf.len() as u64) as usize;
                            let n = src.read_at(&mut buf[..want], off)?;
                            if n == 0 {
                                return Err(strait_connectors::ConnectorError::Busy(
                                    "part shrank during completion".into(),
                                ));
                            }
                            dst.write_all_at(&buf[..n], at)?;
                            (off, at) = (off + n as u64, at + n as u64);
                        }
                        Ok(())
                    }
                };
            }
        }
    }
    Ok(())
}

/// Hash `len` bytes at `offset` of `file`.
fn hash_range(
    file: &std::fs::File,
    offset: u64,
    len: u64,
    h: &mut BodyHasher,
) -> Result<(), strait_connectors::ConnectorError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (1 << 20).min(len.max(1) as usize)];
    let mut off = offset;
    while off < offset + len {
        let want = (offset + len - off).min(buf.len() as u64) as usize;
        let n = file.read_at(&mut buf[..want], off)?;
        if n == 0 {
            return Err(strait_connectors::ConnectorError::Busy("upload data file shrank during completion".into()));
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(())
}

pub async fn abort(
    s: &Strait,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = &req.input;
    let who = upload_principal(&req);
    let u = load_upload(s, &i.bucket, &i.key, &i.upload_id, &who)?;
    let bucket = s.bucket(&i.bucket).await?;
    let id = i.upload_id.clone();
    match blocking(upload_err, move || bucket.remove_upload(&id)).await {
        Ok(()) => {}
        Err(e) if e.code() == &s3s::S3ErrorCode::NoSuchUpload => {}
        Err(e) => return Err(e),
    }
    s.meta.finish_upload(&u, None).map_err(meta_err)?;
    Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), http::StatusCode::NO_CONTENT))
}

pub async fn list_parts(s: &Strait, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let i = &req.input;
    let who = upload_principal(&req);
    let u = load_upload(s, &i.bucket, &i.key, &i.upload_id, &who)?;
    let bucket = s.bucket(&i.bucket).await?;
    let max = match i.max_parts {
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-parts must be a non-negative integer")),
        Some(n) => n.min(LIST_PARTS_MAX),
        None => LIST_PARTS_MAX,
    } as usize;
    let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
    let id = i.upload_id.clone();
    let all = blocking(upload_err, move || bucket.list_parts(&id)).await?;
    let mut after: Vec<StoredPart> = all.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    after.truncate(max);
    let parts: Vec<Part> = after
        .iter()
        .map(|p| {
            let mut part = Part {
                part_number: Some(p.number as i32),
                size: Some(p.size as i64),
                e_tag: Some(ETag::Strong(p.meta.etag.clone())),
                last_modified: Some(timestamp_ns(p.mtime_ns)),
                ..Default::default()
            };
            set_checksum_value!(part, p.meta.checksum.as_ref());
            part
        })
        .collect();
    let owner = super::list::owner(&u.owner);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        upload_id: Some(i.upload_id.clone()),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: if truncated { after.last().map(|p| p.number as i32) } else { None },
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(parts),
        initiator: Some(Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }),
        owner: Some(owner),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm: u.checksum_algorithm.clone().map(ChecksumAlgorithm::from),
        checksum_type: u.checksum_type.clone().map(ChecksumType::from),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    s: &Strait,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = &req.input;
    s.bucket(&i.bucket).await?;
    let max = match i.max_uploads {
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-uploads must be a non-negative integer")),
        Some(n) => n.min(LIST_UPLOADS_MAX),
        None => LIST_UPLOADS_MAX,
    } as usize;
    let prefix = i.prefix.clone().unwrap_or_default();
    let delim = i.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = i.key_marker.clone().filter(|k| !k.is_empty());
    let id_marker = if key_marker.is_some() { i.upload_id_marker.clone().filter(|k| !k.is_empty()) } else { None };
    let url = i.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
    let enc = |k: &str| {
        if url {
            super::list::url_encode(k)
        } else {
            k.to_owned()
        }
    };
    let recs = s
        .meta
        .list_uploads(&i.bucket, &prefix, key_marker.as_deref(), id_marker.as_deref(), usize::MAX)
        .map_err(meta_err)?;
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, String)> = None;
    for r in recs {
        let cp = delim
            .as_deref()
            .and_then(|d| r.key[prefix.len()..].find(d).map(|p| r.key[..prefix.len() + p + d.len()].to_owned()));
        if let Some(cp) = &cp {
            if prefixes.last() == Some(cp) || key_marker.as_deref().is_some_and(|k| k.starts_with(cp.as_str())) {
                continue;
            }
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match cp {
            Some(cp) => {
                last = Some((cp.clone(), String::new()));
                prefixes.push(cp);
            }
            None => {
                last = Some((r.key.clone(), r.upload_id.clone()));
                let owner = super::list::owner(&r.owner);
                uploads.push(MultipartUpload {
                    key: Some(enc(&r.key)),
                    upload_id: Some(r.upload_id.clone()),
                    initiated: time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(r.initiated_unix_ms) * 1_000_000,
                    )
                    .ok()
                    .map(Timestamp::from),
                    initiator: Some(Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }),
                    owner: Some(owner),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    checksum_algorithm: r.checksum_algorithm.clone().map(ChecksumAlgorithm::from),
                    checksum_type: r.checksum_type.clone().map(ChecksumType::from),
                });
            }
        }
    }
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket.clone()),
        prefix: Some(enc(&prefix)),
        delimiter: delim.as_deref().map(enc),
        key_marker: Some(key_marker.as_deref().map(enc).unwrap_or_default()),
        upload_id_marker: Some(id_marker.clone().unwrap_or_default()),
        next_key_marker: if truncated { last.as_ref().map(|(k, _)| enc(k)) } else { None },
        next_upload_id_marker: if truncated { last.as_ref().map(|(_, u)| u.clone()) } else { None },
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        common_prefixes: Some(prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(&p)) }).collect()),
        encoding_type: i.encoding_type.clone(),
        ..Default::default()
    }))
}
