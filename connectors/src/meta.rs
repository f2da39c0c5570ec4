//! Object metadata stored in a `user.strait.meta` xattr on the object's own inode.
//!
//! The record carries the identity of the bytes it describes (inode, size, mtime in ns). ctime is
//! deliberately not part of it: setting the xattr and renaming the staging file both change
//! ctime, so it cannot be recorded. An edit made outside Strait changes mtime or size (or the
//! inode, for editors that write a new file and rename it), and then the record is stale: the
//! reader ignores it and derives a fresh ETag, so a stale ETag or checksum is never served.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// xattr holding a regular object's [`ObjectMeta`].
pub const XATTR_META: &str = "user.strait.meta";
/// xattr on a directory that is a directory-marker object (`a/b/`); value is an [`ObjectMeta`].
pub const XATTR_MARKER: &str = "user.strait.marker";
/// xattr on a directory Strait created as an implied parent: removable once empty.
pub const XATTR_AUTODIR: &str = "user.strait.autodir";
/// Current format version of [`ObjectMeta`].
pub const META_VERSION: u32 = 1;

/// The file identity a metadata record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileIdentity {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileIdentity {
    pub fn of(st: &rustix::fs::Stat) -> Self {
        Self {
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        }
    }

    /// A stable ETag for bytes Strait has not hashed (files written directly on the file system).
    /// The `-1` suffix marks it as "not an MD5" to clients such as rclone and aws-cli.
    pub fn derived_etag(&self) -> String {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(format!("strait-derived:{}:{}:{}", self.ino, self.size, self.mtime_ns).as_bytes());
        format!("{}-1", hex(&h.finalize()))
    }
}

/// A stored checksum of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    /// `CRC32`, `CRC32C`, `SHA1`, `SHA256` or `CRC64NVME`.
    pub algorithm: String,
    /// Base64 value as S3 returns it (composite values end in `-N`).
    pub value: String,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub kind: String,
}

/// Everything S3 says about an object beyond its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectMeta {
    pub v: u32,
    pub id: FileIdentity,
    /// ETag without quotes.
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// HTTP date as sent by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<StoredChecksum>,
    /// Sizes of the parts for multipart objects (GET ?partNumber=), empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_sizes: Vec<u64>,
    /// Per-part checksums for composite multipart checksums (GET ?partNumber= with checksum mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_checksums: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The object's canned ACL (`public-read`...; `None`: private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// Whether the record was produced by Strait (false: derived from a foreign file).
    #[serde(default)]
    pub stored: bool,
    /// A stub: the full record is in the side table, keyed by inode (it did not fit in xattrs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sidecar: bool,
}

impl ObjectMeta {
    /// Metadata for a file Strait did not write (or whose record is stale).
    pub fn derived(id: FileIdentity) -> Self {
        Self { v: META_VERSION, id, etag: id.derived_etag(), stored: false, ..Default::default() }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata serializes")
    }

    /// Decode a record; `None` when it is unreadable or of an unknown version.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let m: Self = serde_json::from_slice(bytes).ok()?;
        (m.v == META_VERSION).then_some(m)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version() {
        let mut m = ObjectMeta::derived(FileIdentity { ino: 7, size: 3, mtime_ns: 11 });
        m.user.insert("k".into(), "v".into());
        m.stored = true;
        assert_eq!(ObjectMeta::decode(&m.encode()), Some(m.clone()));
        let mut other = m.clone();
        other.v = 99;
        assert_eq!(ObjectMeta::decode(&other.encode()), None);
        assert_eq!(ObjectMeta::decode(b"garbage"), None);
    }

    #[test]
    fn derived_etag_is_stable_and_not_md5_shaped() {
        let id = FileIdentity { ino: 1, size: 2, mtime_ns: 3 };
        assert_eq!(id.derived_etag(), id.derived_etag());
        assert!(id.derived_etag().ends_with("-1"));
        let id2 = FileIdentity { mtime_ns: 4, ..id };
        assert_ne!(id.derived_etag(), id2.derived_etag());
    }
}
