//! Storage connectors for Strait. Only this crate touches file descriptors.
//!
//! - [`store`]: the POSIX base — buckets are directories under a root, objects are regular files,
//!   metadata in xattrs on the same inode, writes staged in the target directory and published
//!   by rename.
//! - [`key`]: validated object keys (the only way a client string becomes a path).
//! - [`list`]: listing in S3 byte order over nested directories.
//! - [`error`]: the connector's error vocabulary; errno is read in one place.
//! - [`ident`]: per-request POSIX identity (thread credentials switched around file-system work).

/// A child span of the current request for one piece of file-system work (`fs.*`), at DEBUG
/// under target `strait::fs`: free unless a subscriber (OpenTelemetry export) wants it.
macro_rules! fs_span {
    ($name:literal) => {
        tracing::debug_span!(target: "strait::fs", $name).entered()
    };
}

pub mod engine;
pub mod error;
mod fsutil;
pub mod ident;
pub mod index;
pub mod key;
pub mod layout;
pub mod list;
pub mod meta;
pub mod multipart;
pub mod store;

pub use error::{ConnectorError, Result};
pub use fsutil::{read_full_at, try_cached};
pub use key::ObjectKey;
pub use meta::{FileIdentity, ObjectMeta, StoredChecksum};
pub use store::{
    Bucket, BucketInfo, BucketLink, BucketOwner, Lease, OpenObject, PosixStore, PublishMode, SideState, Staging,
};
