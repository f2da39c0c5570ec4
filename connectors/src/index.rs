//! The listing index: per-directory snapshots of the tree, validated against the file system on
//! every visit, so that a listing page costs what the page holds instead of a `readdir` and sort
//! of every directory it touches.
//!
//! What is stored (by an implementation of [`ListIndex`], RocksDB in production):
//! - one entry per immediate child of every directory a listing visited, keyed by (directory,
//!   name) (directories as `name/`), so that within a directory the store's byte order is S3's
//!   order;
//!   a file's entry caches its [`ObjectMeta`] together with the `ctime` it was read at;
//! - one [`DirStamp`] per directory whose snapshot is trusted: the directory's inode, mtime and
//!   ctime when it was read.
//!
//! The guarantee (tested in tests/e2e/test_listing_index.py):
//! - A directory is re-read when its inode, mtime or ctime differ from its stamp. Creating,
//!   removing or renaming an entry changes the directory's mtime and ctime, so such changes,
//!   made through Strait or directly on the file system, show in the next listing.
//! - A directory whose mtime or ctime lies within [`RACY_NS`] of the moment it was read gets no
//!   stamp (it is re-read next time): file systems with coarse timestamps (one second on some)
//!   could otherwise change twice within one tick unseen.
//! - Every file a page returns is `stat`ed: a file overwritten in place (same directory, same
//!   name) shows its new size, mtime and ETag, because its cached metadata is used only while
//!   inode, size, mtime and ctime are unchanged. A file removed since the snapshot is dropped
//!   from the page.
//! - With a delimiter, a child directory recorded as holding a file is emitted as a common
//!   prefix from its entry in the parent's snapshot. A child that is created, removed or
//!   renamed changes the parent, so the prefix appears and disappears in the next listing. A
//!   child emptied of its files in place (files removed directly on the file system, the
//!   directory left) changes only itself: by default its prefix keeps showing until a listing
//!   reads into it (a listing with that prefix, or without a delimiter) or the parent changes;
//!   with `verify_prefixes` each such child is `stat`ed against its recorded stamp first, and
//!   an emptied one disappears at once. A child recorded without a file directly in it is
//!   always opened, so a directory that gains its first key is never missed.
//! - The index is derived data: nothing is lost by deleting it, and nothing is written to it
//!   synchronously. A crash at any point leaves stamps that are either right or stale, and a
//!   stale stamp only causes a re-read.

use crate::error::Result;
use crate::meta::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A directory's identity and change times when its snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub ino: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

/// Changes younger than this (2 s) at snapshot time leave the directory unstamped.
pub const RACY_NS: i128 = 2_000_000_000;

/// Format byte of the binary stamp and directory-entry values (JSON values start with `{`).
/// A value in any other format decodes as "nothing recorded", which costs one re-read of the
/// directory and rewrites it: the index is derived data.
const BIN_V2: u8 = 2;
const STAMP_LEN: usize = 40;

impl DirStamp {
    pub fn of(st: &rustix::fs::Stat) -> Self {
        Self { ino: st.st_ino, mtime_ns: crate::fsutil::mtime_ns(st), ctime_ns: ctime_ns(st) }
    }

    /// Whether a snapshot taken at `now_ns` of a directory with this stamp can be trusted later.
    pub fn settled(&self, now_ns: i128) -> bool {
        now_ns - self.mtime_ns.max(self.ctime_ns) >= RACY_NS
    }

    /// Format byte 2, then inode (u64), mtime and ctime (i128 ns), little-endian: 41 bytes.
    /// Listings decode one per visited directory and one per common prefix, so it is binary.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(1 + STAMP_LEN + 1);
        b.push(BIN_V2);
        self.put(&mut b);
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        match b {
            [BIN_V2, rest @ ..] if rest.len() == STAMP_LEN => Self::get(rest),
            _ => None,
        }
    }

    fn put(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(&self.ino.to_le_bytes());
        b.extend_from_slice(&self.mtime_ns.to_le_bytes());
        b.extend_from_slice(&self.ctime_ns.to_le_bytes());
    }

    fn get(b: &[u8]) -> Option<Self> {
        Some(Self {
            ino: u64::from_le_bytes(b.get(0..8)?.try_into().ok()?),
            mtime_ns: i128::from_le_bytes(b.get(8..24)?.try_into().ok()?),
            ctime_ns: i128::from_le_bytes(b.get(24..40)?.try_into().ok()?),
        })
    }
}

pub fn ctime_ns(st: &rustix::fs::Stat) -> i128 {
    st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128
}

/// A file entry's cached metadata, valid while the file's identity and ctime are unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedMeta {
    pub v: u32,
    pub ctime_ns: i128,
    pub meta: ObjectMeta,
}

/// Index values are versioned JSON; an empty value means "nothing recorded".
fn to_value<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializes")
}

fn from_value<T: serde::de::DeserializeOwned>(b: &[u8]) -> Option<T> {
    if b.is_empty() {
        return None;
    }
    serde_json::from_slice(b).ok()
}

impl CachedMeta {
    /// Entry values: empty = no metadata cached yet.
    pub fn encode(&self) -> Vec<u8> {
        to_value(self)
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        from_value(b)
    }
}

/// A directory entry's value: the child directory's stamp when it was last read, and whether it
/// then held a file directly. While the child's stamp still matches (one `stat`), a listing with
/// a delimiter can emit the child as a common prefix without opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirInfo {
    pub stamp: DirStamp,
    pub has_file: bool,
}

impl DirInfo {
    /// Format byte 2, the stamp (40 bytes as in [`DirStamp::encode`]), then 1 or 0: 42 bytes.
    /// Empty = the child's stamp is not known.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = self.stamp.encode();
        b.push(u8::from(self.has_file));
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        match b {
            [BIN_V2, rest @ .., f @ (0 | 1)] if rest.len() == STAMP_LEN => {
                Some(Self { stamp: DirStamp::get(rest)?, has_file: *f == 1 })
            }
            _ => None,
        }
    }
}

/// Changes to one directory's snapshot, applied atomically.
#[derive(Debug, Default)]
pub struct DirBatch {
    /// Names (directories as `name/`) to add with an empty value.
    pub add: Vec<String>,
    /// Names to remove; a directory name also removes everything below it.
    pub remove: Vec<String>,
    /// The new stamp; `None` removes the stamp (the directory is re-read next time).
    pub stamp: Option<DirStamp>,
    /// The directory's own entry in its parent (not for the bucket's top): `None` clears it.
    pub info: Option<DirInfo>,
}

/// Storage of the listing index. `dir` is a directory's key prefix: `""` for the bucket's top,
/// else `a/b/`; names are relative to it.
pub trait ListIndex: Send + Sync {
    fn stamp(&self, bucket: &str, dir: &str) -> Result<Option<DirStamp>>;
    /// Up to `limit` immediate children of `dir` whose names are ≥ `from`, in byte order, with
    /// their values (subtrees are skipped).
    fn children(&self, bucket: &str, dir: &str, from: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>>;
    fn apply(&self, bucket: &str, dir: &str, batch: DirBatch) -> Result<()>;
    /// Cache a file entry's metadata (`key` is the full key).
    fn cache_meta(&self, bucket: &str, key: &str, meta: &CachedMeta) -> Result<()>;
    /// Forget everything about a bucket.
    fn drop_bucket(&self, bucket: &str) -> Result<()>;
    /// Whether a listing with a delimiter `stat`s each child directory it emits as a common
    /// prefix from its recorded [`DirInfo`] (see the module's guarantee).
    fn verify_prefixes(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_round_trip_and_reject_other_formats() {
        let stamp = DirStamp { ino: 0x0123_4567_89ab_cdef, mtime_ns: -5, ctime_ns: 1_700_000_000_123_456_789 };
        let b = stamp.encode();
        assert_eq!(b.len(), 41);
        assert_eq!(DirStamp::decode(&b), Some(stamp));
        for has_file in [true, false] {
            let info = DirInfo { stamp, has_file };
            let b = info.encode();
            assert_eq!(b.len(), 42);
            assert_eq!(DirInfo::decode(&b), Some(info));
            // A directory value is never taken for a stamp, nor the reverse.
            assert_eq!(DirStamp::decode(&b), None);
        }
        assert_eq!(DirInfo::decode(&stamp.encode()), None);
        // Earlier JSON values, truncated or unknown formats: nothing recorded (a re-read).
        let json = br#"{"v":1,"ino":1,"mtime_ns":2,"ctime_ns":3}"#;
        assert_eq!(DirStamp::decode(json), None);
        assert_eq!(DirStamp::decode(&b[..40]), None);
        assert_eq!(DirStamp::decode(b""), None);
        let mut bad = DirInfo { stamp, has_file: true }.encode();
        *bad.last_mut().unwrap() = 7;
        assert_eq!(DirInfo::decode(&bad), None);
        bad[0] = 3;
        assert_eq!(DirInfo::decode(&bad), None);
    }
}
