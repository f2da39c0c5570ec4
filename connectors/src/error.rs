//! The connector's error vocabulary: what went wrong, in terms a caller can act on.
//!
//! `errno` values are read in exactly one place, [`ConnectorError::from_errno`]; the gateway maps
//! this enum onto S3 error codes in exactly one place (`gateway/src/s3/error.rs`).

use rustix::io::Errno;

/// A connector failure, by meaning rather than by errno.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The object (or one of its parent directories) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The bucket directory does not exist.
    #[error("bucket not found: {0}")]
    NoSuchBucket(String),
    /// The name is taken (create-only publish, bucket creation).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The bucket name is taken by another account's bucket.
    #[error("owned by another account: {0}")]
    OwnedByOther(String),
    /// A directory (bucket) that must be empty is not.
    #[error("not empty: {0}")]
    NotEmpty(String),
    /// The kernel refused the operation for the calling identity (EACCES, EPERM).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The file system or a quota is full (ENOSPC, EDQUOT).
    #[error("storage full: {0}")]
    StorageFull(String),
    /// A name component is longer than the file system allows (ENAMETOOLONG).
    #[error("name too long: {0}")]
    NameTooLong(String),
    /// The key cannot be represented on the file system (`.`/`..`, NUL, internal names...).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A parent component of the key is an existing object (file): `a` exists, `a/b` wanted.
    #[error("a parent of the key is an object: {0}")]
    ParentIsFile(String),
    /// The key names an existing directory (a prefix with objects under it).
    #[error("the key is an existing prefix (directory): {0}")]
    ExistingIsDirectory(String),
    /// The metadata does not fit in the file system's extended attributes.
    #[error("metadata too large for the file system: {0}")]
    MetadataTooLarge(String),
    /// The path exists but is not a regular file (FIFO, device, symlink, directory).
    #[error("not a regular file: {0}")]
    NotRegularFile(String),
    /// A write precondition did not hold (If-Match / If-None-Match).
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The resource is busy or the system is overloaded; retrying later can help (EAGAIN, EBUSY).
    #[error("temporarily unavailable: {0}")]
    Busy(String),
    /// The file system does not support what was asked.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// Anything else: an internal error.
    #[error("I/O error ({errno}): {context}")]
    Io { errno: Errno, context: String },
}

impl ConnectorError {
    /// Map an errno to its meaning. The only place in Strait that reads errno values.
    pub fn from_errno(errno: Errno, context: impl Into<String>) -> Self {
        let context = context.into();
        match errno {
            Errno::NOENT | Errno::NOTDIR => Self::NotFound(context),
            Errno::EXIST => Self::AlreadyExists(context),
            Errno::NOTEMPTY => Self::NotEmpty(context),
            Errno::ACCESS | Errno::PERM => Self::PermissionDenied(context),
            Errno::NOSPC | Errno::DQUOT => Self::StorageFull(context),
            Errno::NAMETOOLONG => Self::NameTooLong(context),
            Errno::AGAIN | Errno::BUSY | Errno::INTR => Self::Busy(context),
            Errno::LOOP | Errno::XDEV => Self::InvalidKey(context),
            Errno::OPNOTSUPP => Self::NotSupported(context),
            errno => Self::Io { errno, context },
        }
    }

    /// Whether retrying the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Busy(_))
    }
}

impl From<std::io::Error> for ConnectorError {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(code) => Self::from_errno(Errno::from_raw_os_error(code), e.to_string()),
            None => Self::Io { errno: Errno::IO, context: e.to_string() },
        }
    }
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// Attach a context to a rustix result.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Ctx<T> for rustix::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ConnectorError::from_errno(e, what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_table() {
        let rows: &[(Errno, &str)] = &[
            (Errno::NOENT, "NotFound"),
            (Errno::NOTDIR, "NotFound"),
            (Errno::EXIST, "AlreadyExists"),
            (Errno::NOTEMPTY, "NotEmpty"),
            (Errno::ACCESS, "PermissionDenied"),
            (Errno::PERM, "PermissionDenied"),
            (Errno::NOSPC, "StorageFull"),
            (Errno::DQUOT, "StorageFull"),
            (Errno::NAMETOOLONG, "NameTooLong"),
            (Errno::AGAIN, "Busy"),
            (Errno::BUSY, "Busy"),
            (Errno::LOOP, "InvalidKey"),
            (Errno::OPNOTSUPP, "NotSupported"),
            (Errno::IO, "Io"),
            (Errno::BADF, "Io"),
        ];
        for (errno, want) in rows {
            let got = ConnectorError::from_errno(*errno, "x");
            let name = format!("{got:?}");
            assert!(name.starts_with(want), "{errno:?} -> {name}, want {want}");
        }
        assert!(ConnectorError::from_errno(Errno::AGAIN, "x").is_retryable());
        assert!(!ConnectorError::from_errno(Errno::IO, "x").is_retryable());
    }
}
