//! The one place where connector and metadata errors become S3 errors.

use s3s::{S3Error, S3ErrorCode};
use strait_connectors::ConnectorError;

/// S3 code for a write whose parent "directory" is an existing object (`a` exists, `a/b` wanted).
pub const CODE_PARENT_IS_FILE: &str = "ObjectParentIsFile";
/// S3 code for a write to a key that is an existing prefix (`a/b` exists, `a` wanted).
pub const CODE_EXISTING_IS_DIRECTORY: &str = "ExistingObjectIsDirectory";
/// S3 code for a full file system or quota (507 Insufficient Storage).
pub const CODE_STORAGE_FULL: &str = "InsufficientStorage";

pub fn custom(code: &'static str, status: http::StatusCode, msg: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg);
    e.set_status_code(status);
    e
}

/// Map a connector error. `bucket_scope` says whether a NotFound means the object (NoSuchKey)
/// or an upload (NoSuchUpload).
pub fn s3_error(e: ConnectorError, not_found: S3ErrorCode) -> S3Error {
    use http::StatusCode as S;
    match e {
        ConnectorError::NotFound(m) | ConnectorError::NotRegularFile(m) => {
            tracing::debug!(detail = %m, "not found");
            S3Error::new(not_found)
        }
        ConnectorError::NoSuchBucket(_) => S3Error::new(S3ErrorCode::NoSuchBucket),
        ConnectorError::AlreadyExists(m) => S3Error::with_message(S3ErrorCode::BucketAlreadyOwnedByYou, m),
        ConnectorError::OwnedByOther(_) => S3Error::with_message(
            S3ErrorCode::BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system.",
        ),
        ConnectorError::NotEmpty(m) => S3Error::with_message(S3ErrorCode::BucketNotEmpty, m),
        ConnectorError::PermissionDenied(m) => S3Error::with_message(S3ErrorCode::AccessDenied, m),
        ConnectorError::StorageFull(m) => custom(CODE_STORAGE_FULL, S::INSUFFICIENT_STORAGE, m),
        ConnectorError::NameTooLong(m) => S3Error::with_message(S3ErrorCode::KeyTooLongError, m),
        ConnectorError::InvalidKey(m) => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, format!("invalid key: {m}"))
        }
        ConnectorError::ParentIsFile(m) => {
            custom(CODE_PARENT_IS_FILE, S::CONFLICT, format!("a parent of the key is an existing object: {m}"))
        }
        ConnectorError::ExistingIsDirectory(m) => {
            custom(CODE_EXISTING_IS_DIRECTORY, S::CONFLICT, format!("the key is a prefix of existing objects: {m}"))
        }
        ConnectorError::MetadataTooLarge(m) => S3Error::with_message(S3ErrorCode::MetadataTooLarge, m),
        ConnectorError::PreconditionFailed(m) => S3Error::with_message(S3ErrorCode::PreconditionFailed, m),
        ConnectorError::Busy(m) => S3Error::with_message(S3ErrorCode::SlowDown, m),
        ConnectorError::NotSupported(m) => S3Error::with_message(S3ErrorCode::NotImplemented, m),
        e => {
            tracing::error!(error = %e, "internal storage error");
            S3Error::with_message(S3ErrorCode::InternalError, "internal storage error")
        }
    }
}

/// Object-scoped mapping (NotFound → NoSuchKey).
pub fn obj_err(e: ConnectorError) -> S3Error {
    s3_error(e, S3ErrorCode::NoSuchKey)
}

/// Upload-scoped mapping (NotFound → NoSuchUpload).
pub fn upload_err(e: ConnectorError) -> S3Error {
    s3_error(e, S3ErrorCode::NoSuchUpload)
}

/// Metadata store failures are internal: logged here, answered as InternalError.
pub fn meta_err(e: strait_metadata::MetaError) -> S3Error {
    tracing::error!(error = %e, "metadata store error");
    S3Error::with_message(S3ErrorCode::InternalError, "metadata store error")
}

/// Errors of a request body stream (signature of a chunk, x-amz-content-sha256, truncation).
/// s3s 0.14 keeps its stream error types private; their Display names are matched here only.
pub fn body_err(e: &(dyn std::error::Error + Send + Sync + 'static)) -> S3Error {
    if let Some(s3) = e.downcast_ref::<S3Error>() {
        return S3Error::with_message(s3.code().clone(), s3.message().unwrap_or("").to_owned());
    }
    let text = e.to_string();
    if text.contains("Sha256Mismatch") {
        return custom(
            "XAmzContentSHA256Mismatch",
            http::StatusCode::BAD_REQUEST,
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        );
    }
    let code = if text.contains("SignatureMismatch") {
        S3ErrorCode::SignatureDoesNotMatch
    } else if text.contains("LengthMismatch") || text.contains("Incomplete") {
        S3ErrorCode::IncompleteBody
    } else if text.contains("FormatError") || text.contains("TooLarge") || text.contains("TooMany") {
        S3ErrorCode::InvalidRequest
    } else {
        S3ErrorCode::IncompleteBody
    };
    S3Error::with_message(code, format!("request body: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    /// One row per errno: errno → connector meaning → S3 code and status.
    #[test]
    fn errno_to_s3_table() {
        let rows: &[(Errno, &str, u16)] = &[
            (Errno::NOENT, "NoSuchKey", 404),
            (Errno::NOTDIR, "NoSuchKey", 404),
            (Errno::ACCESS, "AccessDenied", 403),
            (Errno::PERM, "AccessDenied", 403),
            (Errno::NOSPC, CODE_STORAGE_FULL, 507),
            (Errno::DQUOT, CODE_STORAGE_FULL, 507),
            (Errno::NAMETOOLONG, "KeyTooLongError", 400),
            (Errno::AGAIN, "SlowDown", 503),
            (Errno::IO, "InternalError", 500),
            (Errno::BADF, "InternalError", 500),
        ];
        for (errno, code, status) in rows {
            let e = obj_err(ConnectorError::from_errno(*errno, "x"));
            assert_eq!(e.code().as_str(), *code, "{errno:?}");
            let st = e.status_code().or_else(|| e.code().status_code()).map(|s| s.as_u16());
            assert_eq!(st, Some(*status), "{errno:?}");
        }
        let e = upload_err(ConnectorError::from_errno(Errno::NOENT, "x"));
        assert_eq!(e.code().as_str(), "NoSuchUpload");
    }

    #[test]
    fn key_conflicts_are_409() {
        for (e, code) in [
            (ConnectorError::ParentIsFile("a".into()), CODE_PARENT_IS_FILE),
            (ConnectorError::ExistingIsDirectory("a".into()), CODE_EXISTING_IS_DIRECTORY),
        ] {
            let e = obj_err(e);
            assert_eq!(e.code().as_str(), code);
            assert_eq!(e.status_code(), Some(http::StatusCode::CONFLICT));
        }
    }
}
