//! Strait's embedded metadata store (RocksDB under the state directory).
//!
//! Tables are column families; every value is JSON carrying a format version `v`, so a later
//! format can migrate it, except the listing index's directory values (below), which are binary
//! behind a leading format byte because listings decode one per visited directory. Keys are
//! byte strings whose order is the iteration order callers rely on; each table documents its
//! encoding next to its type.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `config` | setting name (UTF-8) | setting-specific JSON ([`RootCredentials`]) |
//! | `uploads` | `bucket 0x00 key 0x00 upload_id` | [`UploadRecord`] |
//! | `upload_ids` | `upload_id` | `bucket 0x00 key` (lookup by id) |
//! | `completed` | `upload_id` | [`CompletedUpload`] (makes Complete idempotent on retry) |
//! | `staging` | absolute path of a staging file | empty |
//! | `objmeta` | `dev:ino` of an object's inode | the object's metadata record, when it is too large for the file system's xattrs |
//! | `buckets` | bucket name | [`BucketRecord`]: a bucket linked onto a directory outside the root |
//! | `datasets` | dataset id | a catalog dataset (the gateway's `catalog::Dataset` JSON) |
//! | `tags` | `tag-key 0x00 tag-value 0x00 bucket 0x00 key` | empty: the object tag index |
//! | `objtags` | `bucket 0x00 key` | the object's indexed tag set (JSON pairs), to replace its `tags` entries |
//! | `listing` | `bucket 0x00 dir 0x00 name`: `dir` is `""` or `a/b/`, a directory's name ends in `/` | a listing-index entry: empty, the file's cached metadata (JSON, connectors' `index::CachedMeta`), or a directory's `index::DirInfo` (binary, 42 bytes) |
//! | `dirstamps` | `bucket 0x00 dir` (`""` or `a/b/`) | the stamp of a trusted directory snapshot (connectors' `index::DirStamp`, binary, 41 bytes) |
//! | `iam` | `kind 0x00 ...` | tenants, users, groups, access keys, identity policies ([`iam`]) |
//!
//! `listing` and `dirstamps` are derived data (rebuilt from the file system on demand) and are
//! written without sync. `listing` is keyed by directory, then name: one directory's children
//! are one contiguous range in S3 order (a directory `d/` sorts where its keys `d/...` do),
//! however large their subtrees, so a page with a delimiter reads only the entries it returns;
//! a directory's subtree (its children and everything below) is the range `[dir d/, dir d0)`
//! (`0` follows `/`). The encoding's version is kept in `config` under `listing_format`; a
//! store with another version has its listing index dropped at open (it is derived data).
//!
//! Bucket names and keys never contain NUL (the gateway validates both), so `0x00` separates
//! fields and sorts a key before every longer key it prefixes: listing uploads by
//! `bucket 0x00 prefix` yields them in key order, then by upload id (time-ordered).

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the `listing` key encoding (1: `bucket 0x00 key`; 2: by directory, then name).
const LISTING_FORMAT: &[u8] = b"2";

const CF_CONFIG: &str = "config";
const CF_UPLOADS: &str = "uploads";
const CF_UPLOAD_IDS: &str = "upload_ids";
const CF_COMPLETED: &str = "completed";
const CF_STAGING: &str = "staging";
const CF_OBJMETA: &str = "objmeta";
const CF_LISTING: &str = "listing";
const CF_DIRSTAMPS: &str = "dirstamps";
const CF_BUCKETS: &str = "buckets";
const CF_DATASETS: &str = "datasets";
const CF_TAGS: &str = "tags";
const CF_OBJTAGS: &str = "objtags";
const CF_IAM: &str = "iam";
const ALL_CFS: [&str; 13] = [
    CF_CONFIG,
    CF_UPLOADS,
    CF_UPLOAD_IDS,
    CF_COMPLETED,
    CF_STAGING,
    CF_OBJMETA,
    CF_LISTING,
    CF_DIRSTAMPS,
    CF_BUCKETS,
    CF_DATASETS,
    CF_TAGS,
    CF_OBJTAGS,
    CF_IAM,
];

pub mod iam;
pub use iam::{
    BucketPolicyVersion, GroupRecord, KeyRecord, OidcProviderRecord, PolicyRecord, PolicyVersion, PosixRecord,
    RoleRecord, SessionRecord, TenantRecord, UserRecord,
};

/// Format version of every value written by this build.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt record in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("column family {0} missing")]
    MissingTable(&'static str),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// The administrator's key pair, generated once when not given by the environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootCredentials {
    pub v: u32,
    pub access_key: String,
    pub secret_key: String,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct UploadRecord {
    pub v: u32,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// Access key of the initiator: an upload is bound to its owner.
    pub owner: String,
    pub initiated_unix_ms: i64,
    /// Object metadata requested at Create (content type, user metadata...), as the gateway's JSON.
    pub object_meta: String,
    /// Checksum algorithm requested at Create (`CRC32`, ...), if any.
    pub checksum_algorithm: Option<String>,
    /// `COMPOSITE` or `FULL_OBJECT`, if a checksum algorithm was requested.
    pub checksum_type: Option<String>,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// The result of a completed upload, kept so that a retried Complete answers the same.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CompletedUpload {
    pub v: u32,
    pub bucket: String,
    pub key: String,
    pub etag: String,
    /// The completion request's part list, so that only an identical retry is answered.
    pub parts_digest: String,
    pub checksum: Option<(String, String, String)>,
    pub completed_unix_ms: i64,
}

/// A bucket linked onto an existing directory (`strait admin bucket link NAME PATH`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketRecord {
    pub v: u32,
    pub name: String,
    /// Absolute, canonical path of the directory.
    pub path: String,
    pub created_unix_s: i64,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// The metadata store.
pub struct MetaStore {
    db: DB,
    path: PathBuf,
    /// Shared by all tables (see [`MemoryLimits`]); kept for their usage figures.
    buffers: rocksdb::WriteBufferManager,
    cache: rocksdb::Cache,
}

/// A child span of the current request for one index operation (`index.*`, target
/// `strait::index`, DEBUG: free unless OpenTelemetry export wants it).
macro_rules! index_span {
    ($name:literal, $table:literal) => {
        tracing::debug_span!(target: "strait::index", $name, "db.collection.name" = $table).entered()
    };
}

/// `k 0x00 v 0x00 bucket 0x00 key` (tag keys and values never contain NUL: the gateway
/// validates tags).
fn tag_key(k: &str, v: &str, bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(k.len() + v.len() + bucket.len() + key.len() + 3);
    for (i, part) in [k, v, bucket, key].iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// `bucket 0x00 rest`.
fn join(bucket: &str, rest: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + rest.len() + 1);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(rest.as_bytes());
    k
}

/// A listing entry's key: `bucket 0x00 dir 0x00 name` (the same three-field join as uploads).
fn listing_key(bucket: &str, dir: &str, name: &str) -> Vec<u8> {
    upload_key(bucket, dir, name)
}

/// A full key (`a/b/c` or `a/b/`) as (directory, name): (`a/b/`, `c`) or (`a/`, `b/`).
fn split_key(key: &str) -> (&str, &str) {
    let stem = key.strip_suffix('/').unwrap_or(key);
    let at = stem.rfind('/').map_or(0, |i| i + 1);
    key.split_at(at)
}

fn upload_key(bucket: &str, key: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + key.len() + id.len() + 2);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt { table, reason: e.to_string() })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

/// The memory RocksDB may hold for the store, by name. Its defaults are per table (64 MiB of
/// write buffers and a 32 MiB block cache for each of the 13 tables), so a gateway under write
/// load would grow for minutes before its write buffers first filled; these bounds hold for
/// all tables together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Write buffers (memtables) of all tables together: when they reach it, the largest is
    /// flushed to a table file. One table's buffer is at most a quarter of it.
    pub write_buffer_bytes: usize,
    /// One LRU block cache shared by all tables, holding data, index and filter blocks.
    pub block_cache_bytes: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self { write_buffer_bytes: 32 << 20, block_cache_bytes: 32 << 20 }
    }
}

impl MetaStore {
    /// Open (or create) the store under `dir`, with the default [`MemoryLimits`].
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, MemoryLimits::default())
    }

    /// Open (or create) the store under `dir`, its memory bounded by `limits`.
    pub fn open_with(dir: &Path, limits: MemoryLimits) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(64 << 20);
        let buffers = rocksdb::WriteBufferManager::new_write_buffer_manager(limits.write_buffer_bytes, false);
        opts.set_write_buffer_manager(&buffers);
        // Few shards: a block larger than one shard's capacity is never kept, and RocksDB's
        // automatic sharding (64 shards of 512 KiB for 32 MiB) made the index block of a
        // million-entry table (~0.5 MiB) such a block: every iterator re-read and
        // decompressed it, a quarter of a listing page's time.
        let cache = {
            let mut o = rocksdb::LruCacheOptions::default();
            o.set_capacity(limits.block_cache_bytes);
            o.set_num_shard_bits(2);
            rocksdb::Cache::new_lru_cache_opts(&o)
        };
        let table = {
            let mut t = rocksdb::BlockBasedOptions::default();
            t.set_block_cache(&cache);
            // Index and filter blocks count against the cache instead of growing beside it.
            t.set_cache_index_and_filter_blocks(true);
            t.set_cache_index_and_filter_blocks_with_high_priority(true);
            t.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // A partitioned index: the top level (a few KiB) stays pinned, the partitions are
            // cached one 4 KiB block at a time like data, so a big table's index never has to
            // be read whole.
            t.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
            t.set_metadata_block_size(4096);
            t.set_pin_top_level_index_and_filter(true);
            t
        };
        let cfs = ALL_CFS.iter().map(|n| {
            let mut o = Options::default();
            o.set_write_buffer_size((limits.write_buffer_bytes / 4).max(1 << 20));
            o.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*n, o)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let s = Self { db, path: dir.to_owned(), buffers, cache };
        s.check_listing_format()?;
        Ok(s)
    }

    /// Drop a listing index written in another key encoding (it is rebuilt as listed) and
    /// record the current one. Entries and stamps go together: a stamp without its entries
    /// would present a directory as empty.
    fn check_listing_format(&self) -> Result<()> {
        let config = self.cf(CF_CONFIG)?;
        if self.db.get_cf(config, b"listing_format")?.as_deref() == Some(LISTING_FORMAT) {
            return Ok(());
        }
        let mut b = WriteBatch::default();
        self.clear_tables(&mut b, &[CF_LISTING, CF_DIRSTAMPS])?;
        b.put_cf(config, b"listing_format", LISTING_FORMAT);
        self.db.write_opt(b, &Self::synced())?;
        Ok(())
    }

    /// Add to `b` the removal of every entry of `tables`.
    fn clear_tables(&self, b: &mut WriteBatch, tables: &[&'static str]) -> Result<()> {
        for t in tables {
            b.delete_range_cf(self.cf(t)?, b"".as_slice(), [0xFFu8; 8].as_slice());
        }
        Ok(())
    }

    /// Bytes RocksDB holds now: (write buffers of all tables, block cache, the open SST
    /// files' readers: their index and filter blocks, which live outside the block cache and
    /// grow with the data).
    pub fn memory_usage(&self) -> (u64, u64, u64) {
        let readers = ALL_CFS
            .iter()
            .filter_map(|n| self.db.cf_handle(n))
            .filter_map(|cf| self.db.property_int_value_cf(cf, "rocksdb.estimate-table-readers-mem").ok().flatten())
            .sum();
        (self.buffers.get_usage() as u64, self.cache.get_usage() as u64, readers)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or(MetaError::MissingTable(name))
    }

    fn synced() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        w
    }

    // --- config -------------------------------------------------------------------------

    pub fn root_credentials(&self) -> Result<Option<RootCredentials>> {
        match self.db.get_cf(self.cf(CF_CONFIG)?, b"root_credentials")? {
            Some(v) => Ok(Some(decode(CF_CONFIG, &v)?)),
            None => Ok(None),
        }
    }

    pub fn set_root_credentials(&self, c: &RootCredentials) -> Result<()> {
        self.db.put_cf_opt(self.cf(CF_CONFIG)?, b"root_credentials", encode(c), &Self::synced())?;
        Ok(())
    }

    // --- multipart uploads ------------------------------------------------------------------

    /// Record a new upload (durable before the upload id is returned to the client).
    pub fn put_upload(&self, u: &UploadRecord) -> Result<()> {
        let _s = index_span!("index.write", "uploads");
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_UPLOADS)?, upload_key(&u.bucket, &u.key, &u.upload_id), encode(u));
        let mut loc = u.bucket.as_bytes().to_vec();
        loc.push(0);
        loc.extend_from_slice(u.key.as_bytes());
        b.put_cf(self.cf(CF_UPLOAD_IDS)?, u.upload_id.as_bytes(), loc);
        self.db.write_opt(b, &Self::synced())?;
        Ok(())
    }

    pub fn get_upload(&self, upload_id: &str) -> Result<Option<UploadRecord>> {
        let _s = index_span!("index.read", "uploads");
        let Some(loc) = self.db.get_cf(self.cf(CF_UPLOAD_IDS)?, upload_id.as_bytes())? else {
            return Ok(None);
        };
        let mut k = loc;
        k.push(0);
        k.extend_from_slice(upload_id.as_bytes());
        match self.db.get_cf(self.cf(CF_UPLOADS)?, &k)? {
            Some(v) => Ok(Some(decode(CF_UPLOADS, &v)?)),
            None => Ok(None),
        }
    }

    /// Remove an upload record; with `completed`, record the completion in the same batch.
    pub fn finish_upload(&self, u: &UploadRecord, completed: Option<&CompletedUpload>) -> Result<()> {
        let _s = index_span!("index.write", "uploads");
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(CF_UPLOADS)?, upload_key(&u.bucket, &u.key, &u.upload_id));
        b.delete_cf(self.cf(CF_UPLOAD_IDS)?, u.upload_id.as_bytes());
        if let Some(c) = completed {
            b.put_cf(self.cf(CF_COMPLETED)?, u.upload_id.as_bytes(), encode(c));
        }
        self.db.write_opt(b, &Self::synced())?;
        Ok(())
    }

    pub fn completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>> {
        let _s = index_span!("index.read", "completed");
        match self.db.get_cf(self.cf(CF_COMPLETED)?, upload_id.as_bytes())? {
            Some(v) => Ok(Some(decode(CF_COMPLETED, &v)?)),
            None => Ok(None),
        }
    }

    /// Forget completion records older than `cutoff_unix_ms`.
    pub fn prune_completed(&self, cutoff_unix_ms: i64) -> Result<usize> {
        let cf = self.cf(CF_COMPLETED)?;
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            let c: CompletedUpload = decode(CF_COMPLETED, &v)?;
            if c.completed_unix_ms < cutoff_unix_ms {
                self.db.delete_cf(cf, k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Uploads of `bucket` whose key starts with `prefix`, in (key, upload id) order, starting
    /// strictly after (`key_marker`, `upload_id_marker`).
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>> {
        let _s = index_span!("index.scan", "uploads");
        let cf = self.cf(CF_UPLOADS)?;
        let mut start = bucket.as_bytes().to_vec();
        start.push(0);
        let scope = start.clone();
        match key_marker {
            Some(km) if km.as_bytes() >= prefix.as_bytes() => {
                start.extend_from_slice(km.as_bytes());
                start.push(0);
                // Without an upload-id marker, every upload of the marker key is skipped.
                start.extend_from_slice(upload_id_marker.unwrap_or("\u{7f}").as_bytes());
            }
            _ => start.extend_from_slice(prefix.as_bytes()),
        }
        let mut full_prefix = scope.clone();
        full_prefix.extend_from_slice(prefix.as_bytes());
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&full_prefix) {
                break;
            }
            if *k == *start {
                continue; // strictly after the marker
            }
            out.push(decode(CF_UPLOADS, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Whether the bucket has in-progress uploads.
    pub fn bucket_has_uploads(&self, bucket: &str) -> Result<bool> {
        Ok(!self.list_uploads(bucket, "", None, None, 1)?.is_empty())
    }

    /// Drop all upload records of a bucket (DeleteBucket).
    pub fn drop_bucket_uploads(&self, bucket: &str) -> Result<()> {
        for u in self.list_uploads(bucket, "", None, None, usize::MAX)? {
            self.finish_upload(&u, None)?;
        }
        Ok(())
    }

    // --- metadata records too large for xattrs ----------------------------------------------

    /// Store an object's metadata record (synced: the object is acknowledged after this).
    pub fn put_object_meta(&self, inode: &str, record: &[u8]) -> Result<()> {
        let _s = index_span!("index.write", "objmeta");
        self.db.put_cf_opt(self.cf(CF_OBJMETA)?, inode.as_bytes(), record, &Self::synced())?;
        Ok(())
    }

    pub fn object_meta(&self, inode: &str) -> Result<Option<Vec<u8>>> {
        let _s = index_span!("index.read", "objmeta");
        Ok(self.db.get_cf(self.cf(CF_OBJMETA)?, inode.as_bytes())?)
    }

    pub fn delete_object_meta(&self, inode: &str) -> Result<()> {
        let _s = index_span!("index.write", "objmeta");
        self.db.delete_cf(self.cf(CF_OBJMETA)?, inode.as_bytes())?;
        Ok(())
    }

    // --- catalog: datasets and the object tag index --------------------------------------------

    pub fn put_dataset(&self, id: &str, record: &[u8]) -> Result<()> {
        self.db.put_cf_opt(self.cf(CF_DATASETS)?, id.as_bytes(), record, &Self::synced())?;
        Ok(())
    }

    pub fn dataset(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_DATASETS)?, id.as_bytes())?)
    }

    /// False if there was none.
    pub fn delete_dataset(&self, id: &str) -> Result<bool> {
        if self.dataset(id)?.is_none() {
            return Ok(false);
        }
        self.db.delete_cf_opt(self.cf(CF_DATASETS)?, id.as_bytes(), &Self::synced())?;
        Ok(true)
    }

    /// Every dataset record, in id order.
    pub fn datasets(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_DATASETS)?, IteratorMode::Start) {
            out.push(item?.1.to_vec());
        }
        Ok(out)
    }

    /// Replace the indexed tag set of an object (empty: the object has no tags or is gone), in
    /// one batch. Derived data, not synced: searches check each hit against the object.
    pub fn set_object_tags(&self, bucket: &str, key: &str, tags: &[(String, String)]) -> Result<()> {
        let _s = index_span!("index.write", "tags");
        let (tcf, ocf) = (self.cf(CF_TAGS)?, self.cf(CF_OBJTAGS)?);
        let okey = join(bucket, key);
        let old: Vec<(String, String)> = match self.db.get_cf(ocf, &okey)? {
            Some(v) => decode(CF_OBJTAGS, &v)?,
            None => Vec::new(),
        };
        if old.as_slice() == tags {
            return Ok(());
        }
        let mut b = WriteBatch::default();
        for (k, v) in &old {
            b.delete_cf(tcf, tag_key(k, v, bucket, key));
        }
        for (k, v) in tags {
            b.put_cf(tcf, tag_key(k, v, bucket, key), b"");
        }
        if tags.is_empty() {
            b.delete_cf(ocf, &okey);
        } else {
            b.put_cf(ocf, &okey, encode(&tags));
        }
        self.db.write(b)?;
        Ok(())
    }

    /// Objects indexed with tag `k`=`v` (in `bucket` if given): up to `limit` (bucket, key).
    pub fn objects_with_tag(
        &self,
        k: &str,
        v: &str,
        bucket: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let _s = index_span!("index.scan", "tags");
        let mut prefix = tag_key(k, v, "", "");
        prefix.truncate(prefix.len() - 1); // `k 0x00 v 0x00`
        if let Some(b) = bucket {
            prefix.extend_from_slice(b.as_bytes());
            prefix.push(0);
        }
        let mut out = Vec::new();
        let mode = IteratorMode::From(&prefix, Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_TAGS)?, mode) {
            let (key, _) = item?;
            if !key.starts_with(&prefix) || out.len() == limit {
                break;
            }
            let rest = &key[k.len() + v.len() + 2..];
            let Some(i) = rest.iter().position(|&c| c == 0) else { continue };
            out.push((
                String::from_utf8_lossy(&rest[..i]).into_owned(),
                String::from_utf8_lossy(&rest[i + 1..]).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Forget a bucket's object tag index.
    fn drop_bucket_tags(&self, bucket: &str) -> Result<()> {
        let (tcf, ocf) = (self.cf(CF_TAGS)?, self.cf(CF_OBJTAGS)?);
        let start = join(bucket, "");
        let mut b = WriteBatch::default();
        for item in self.db.iterator_cf(ocf, IteratorMode::From(&start, Direction::Forward)) {
            let (okey, v) = item?;
            if !okey.starts_with(&start) {
                break;
            }
            let key = String::from_utf8_lossy(&okey[start.len()..]).into_owned();
            let tags: Vec<(String, String)> = decode(CF_OBJTAGS, &v)?;
            for (k, v) in &tags {
                b.delete_cf(tcf, tag_key(k, v, bucket, &key));
            }
            b.delete_cf(ocf, &okey);
        }
        self.db.write(b)?;
        Ok(())
    }

    // --- linked buckets ---------------------------------------------------------------------

    pub fn put_bucket_link(&self, r: &BucketRecord) -> Result<()> {
        self.db.put_cf_opt(self.cf(CF_BUCKETS)?, r.name.as_bytes(), encode(r), &Self::synced())?;
        Ok(())
    }

    /// Remove a link (and the bucket's listing index); false if there was none.
    pub fn delete_bucket_link(&self, name: &str) -> Result<bool> {
        if self.db.get_cf(self.cf(CF_BUCKETS)?, name.as_bytes())?.is_none() {
            return Ok(false);
        }
        self.db.delete_cf_opt(self.cf(CF_BUCKETS)?, name.as_bytes(), &Self::synced())?;
        self.drop_listing(name)?;
        Ok(true)
    }

    pub fn bucket_links(&self) -> Result<Vec<BucketRecord>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_BUCKETS)?, IteratorMode::Start) {
            let (_, v) = item?;
            out.push(decode(CF_BUCKETS, &v)?);
        }
        Ok(out)
    }

    // --- listing index (derived data; see the table above) ---------------------------------

    pub fn dir_stamp(&self, bucket: &str, dir: &str) -> Result<Option<Vec<u8>>> {
        let _s = index_span!("index.read", "dirstamps");
        Ok(self.db.get_cf(self.cf(CF_DIRSTAMPS)?, join(bucket, dir))?)
    }

    /// Up to `limit` immediate children of `dir` with names ≥ `from`, in order (a name ending
    /// in `/` is a directory): one range scan, whatever their subtrees hold.
    pub fn dir_children(&self, bucket: &str, dir: &str, from: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let _s = index_span!("index.scan", "listing");
        let base = listing_key(bucket, dir, "");
        let mut it = self.db.raw_iterator_cf(self.cf(CF_LISTING)?);
        let mut seek = base.clone();
        seek.extend_from_slice(from.as_bytes());
        it.seek(&seek);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(k) = it.key() else { break };
            let Some(name) = k.strip_prefix(base.as_slice()) else { break };
            out.push((String::from_utf8_lossy(name).into_owned(), it.value().unwrap_or_default().to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// One directory's snapshot change in one batch: names added (empty values), names removed
    /// (a directory with its whole subtree and the stamps below it), the new stamp, and the
    /// value of the directory's own entry in its parent (`self_value`; not for the top).
    pub fn apply_dir(
        &self,
        bucket: &str,
        dir: &str,
        add: &[String],
        remove: &[String],
        stamp: Option<&[u8]>,
        self_value: &[u8],
    ) -> Result<()> {
        let _s = index_span!("index.write", "listing");
        let (listing, stamps) = (self.cf(CF_LISTING)?, self.cf(CF_DIRSTAMPS)?);
        let mut b = WriteBatch::default();
        for name in add {
            b.put_cf(listing, listing_key(bucket, dir, name), b"");
        }
        for name in remove {
            b.delete_cf(listing, listing_key(bucket, dir, name));
            if let Some(stem) = name.strip_suffix('/') {
                // Everything below `dir name/`: the children of every directory in it (listing
                // keys `bucket 0x00 dir name/...`) and their stamps (`bucket 0x00 dir name/...`).
                let sub = join(bucket, &format!("{dir}{name}"));
                let end = join(bucket, &format!("{dir}{stem}0"));
                b.delete_range_cf(listing, &sub, &end);
                b.delete_range_cf(stamps, &sub, &end);
            }
        }
        let base = join(bucket, dir);
        match stamp {
            Some(v) => b.put_cf(stamps, &base, v),
            None => b.delete_cf(stamps, &base),
        }
        if !dir.is_empty() {
            let (parent, name) = split_key(dir);
            b.put_cf(listing, listing_key(bucket, parent, name), self_value);
        }
        self.db.write(b)?;
        Ok(())
    }

    /// Cache a file entry's value (only if the entry is still in the snapshot).
    pub fn put_listing_entry(&self, bucket: &str, key: &str, value: &[u8]) -> Result<()> {
        let _s = index_span!("index.write", "listing");
        let (dir, name) = split_key(key);
        self.db.put_cf(self.cf(CF_LISTING)?, listing_key(bucket, dir, name), value)?;
        Ok(())
    }

    /// Forget a bucket's listing index and object tag index.
    pub fn drop_listing(&self, bucket: &str) -> Result<()> {
        self.drop_bucket_tags(bucket)?;
        let start = join(bucket, "");
        let mut end = bucket.as_bytes().to_vec();
        end.push(1);
        let mut b = WriteBatch::default();
        b.delete_range_cf(self.cf(CF_LISTING)?, &start, &end);
        b.delete_range_cf(self.cf(CF_DIRSTAMPS)?, &start, &end);
        self.db.write(b)?;
        Ok(())
    }

    /// Forget the whole listing index (`strait index rebuild`); it is rebuilt as listed.
    pub fn clear_listing(&self) -> Result<()> {
        let mut b = WriteBatch::default();
        self.clear_tables(&mut b, &[CF_LISTING, CF_DIRSTAMPS, CF_TAGS, CF_OBJTAGS])?;
        self.db.write(b)?;
        Ok(())
    }

    // --- staging journal ------------------------------------------------------------------

    /// Record a staging file before it is created. Not synced: the WAL survives a process
    /// crash; after a power loss a staging file may outlive its record (then `strait` finds it
    /// only by a scan; documented in ARCHITECTURE.md).
    pub fn record_staging(&self, path: &Path) -> Result<()> {
        let _s = index_span!("index.write", "staging");
        self.db.put_cf(self.cf(CF_STAGING)?, path.as_os_str().as_encoded_bytes(), b"")?;
        Ok(())
    }

    pub fn forget_staging(&self, path: &Path) -> Result<()> {
        let _s = index_span!("index.write", "staging");
        self.db.delete_cf(self.cf(CF_STAGING)?, path.as_os_str().as_encoded_bytes())?;
        Ok(())
    }

    /// Staging files recorded and not forgotten (left by a crash).
    pub fn staging_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_STAGING)?, IteratorMode::Start) {
            let (k, _) = item?;
            let s = String::from_utf8_lossy(&k).into_owned();
            out.push(PathBuf::from(s));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("strait-meta-test-{}", std::process::id()));
        let d = d.join(format!(
            "{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn up(bucket: &str, key: &str, id: &str) -> UploadRecord {
        UploadRecord {
            v: FORMAT_VERSION,
            bucket: bucket.into(),
            key: key.into(),
            upload_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn dir_children_are_one_directory_in_order_whatever_its_subtrees_hold() {
        let s = MetaStore::open(&tmp()).unwrap();
        let mut keys = vec!["a".to_owned(), "small/".into(), "big/".into(), "z".into(), "big+".into()];
        for i in 0..3 {
            keys.push(format!("small/f{i}"));
        }
        for i in 0..20 {
            keys.push(format!("big/f{i:02}"));
            keys.push(format!("big/sub/g{i:02}"));
        }
        keys.push("big/sub/".into());
        for k in &keys {
            s.put_listing_entry("b", k, k.as_bytes()).unwrap();
        }
        s.put_listing_entry("other", "x", b"").unwrap();
        s.put_listing_entry("b0", "a", b"").unwrap();
        let names = |dir: &str, from: &str, limit| -> Vec<String> {
            s.dir_children("b", dir, from, limit).unwrap().into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names("", "", usize::MAX), ["a", "big+", "big/", "small/", "z"]);
        assert_eq!(names("", "big/", 2), ["big/", "small/"]);
        assert_eq!(names("", "c", usize::MAX), ["small/", "z"]);
        let big = names("big/", "", usize::MAX);
        assert_eq!(big.len(), 21);
        assert_eq!(big.last().map(String::as_str), Some("sub/"));
        assert_eq!(names("big/sub/", "g18", usize::MAX), ["g18", "g19"]);
        assert_eq!(names("nothing/", "", usize::MAX), Vec::<String>::new());
        // Values travel with their entries: a directory's own entry sits in its parent.
        let (_, v) = &s.dir_children("b", "", "small/", 1).unwrap()[0];
        assert_eq!(v, b"small/");
    }

    #[test]
    fn removing_a_directory_drops_its_whole_subtree_and_nothing_beside_it() {
        let s = MetaStore::open(&tmp()).unwrap();
        let add = |dir: &str, names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            s.apply_dir("b", dir, &names, &[], Some(b"stamp"), b"info").unwrap();
        };
        add("", &["d/", "d+", "d0", "e/"]);
        add("d/", &["f", "sub/"]);
        add("d/sub/", &["g", "deeper/"]);
        add("d/sub/deeper/", &["h"]);
        add("e/", &["x"]);
        // Each directory's own entry carries its value in its parent.
        assert_eq!(s.dir_children("b", "d/", "sub/", 1).unwrap()[0].1, b"info");
        s.apply_dir("b", "", &[], &["d/".to_owned()], Some(b"stamp2"), b"").unwrap();
        let names = |dir: &str| -> Vec<String> {
            s.dir_children("b", dir, "", usize::MAX).unwrap().into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(""), ["d+", "d0", "e/"]);
        for gone in ["d/", "d/sub/", "d/sub/deeper/"] {
            assert!(names(gone).is_empty(), "{gone}");
            assert_eq!(s.dir_stamp("b", gone).unwrap(), None, "{gone}");
        }
        assert_eq!(names("e/"), ["x"]);
        assert_eq!(s.dir_stamp("b", "e/").unwrap().as_deref(), Some(b"stamp".as_slice()));
        assert_eq!(s.dir_stamp("b", "").unwrap().as_deref(), Some(b"stamp2".as_slice()));
    }

    #[test]
    fn a_listing_index_in_another_key_format_is_dropped_at_open() {
        let dir = tmp();
        {
            let s = MetaStore::open(&dir).unwrap();
            s.apply_dir("b", "", &["k".to_owned()], &[], Some(b"stamp"), b"").unwrap();
            // As a store written with format 1 would look: no format recorded.
            s.db.delete_cf(s.cf(CF_CONFIG).unwrap(), b"listing_format").unwrap();
        }
        let s = MetaStore::open(&dir).unwrap();
        assert!(s.dir_children("b", "", "", usize::MAX).unwrap().is_empty());
        assert_eq!(s.dir_stamp("b", "").unwrap(), None);
        s.apply_dir("b", "", &["k".to_owned()], &[], Some(b"stamp"), b"").unwrap();
        drop(s);
        // The current format survives a reopen.
        let s = MetaStore::open(&dir).unwrap();
        assert_eq!(s.dir_children("b", "", "", usize::MAX).unwrap().len(), 1);
    }

    #[test]
    fn uploads_are_listed_in_key_then_id_order_and_survive_reopen() {
        let dir = tmp();
        {
            let s = MetaStore::open(&dir).unwrap();
            for (k, id) in [("b", "2"), ("a/b", "1"), ("a", "3"), ("a", "1"), ("c", "9")] {
                s.put_upload(&up("bk", k, id)).unwrap();
            }
            s.put_upload(&up("bk2", "a", "5")).unwrap();
        }
        let s = MetaStore::open(&dir).unwrap();
        let all: Vec<_> =
            s.list_uploads("bk", "", None, None, 100).unwrap().into_iter().map(|u| (u.key, u.upload_id)).collect();
        let want: Vec<(String, String)> = [("a", "1"), ("a", "3"), ("a/b", "1"), ("b", "2"), ("c", "9")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(all, want);
        let pre: Vec<_> = s.list_uploads("bk", "a", None, None, 100).unwrap().into_iter().map(|u| u.key).collect();
        assert_eq!(pre, ["a", "a", "a/b"]);
        let after: Vec<_> =
            s.list_uploads("bk", "", Some("a"), Some("1"), 100).unwrap().into_iter().map(|u| u.upload_id).collect();
        assert_eq!(after, ["3", "1", "2", "9"]);
        let after_key: Vec<_> =
            s.list_uploads("bk", "", Some("a"), None, 100).unwrap().into_iter().map(|u| u.key).collect();
        assert_eq!(after_key, ["a/b", "b", "c"]);
        assert_eq!(s.get_upload("3").unwrap().unwrap().key, "a");
        let u = s.get_upload("9").unwrap().unwrap();
        let c = CompletedUpload {
            v: FORMAT_VERSION,
            bucket: "bk".into(),
            key: "c".into(),
            etag: "x-1".into(),
            parts_digest: "d".into(),
            checksum: None,
            completed_unix_ms: 5,
        };
        s.finish_upload(&u, Some(&c)).unwrap();
        assert!(s.get_upload("9").unwrap().is_none());
        assert_eq!(s.completed_upload("9").unwrap(), Some(c));
        assert_eq!(s.prune_completed(6).unwrap(), 1);
        assert!(s.completed_upload("9").unwrap().is_none());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn staging_journal_and_credentials() {
        let dir = tmp();
        let s = MetaStore::open(&dir).unwrap();
        assert!(s.root_credentials().unwrap().is_none());
        let c = RootCredentials { v: FORMAT_VERSION, access_key: "a".into(), secret_key: "s".into() };
        s.set_root_credentials(&c).unwrap();
        s.record_staging(Path::new("/x/.strait.stage.1")).unwrap();
        s.record_staging(Path::new("/x/.strait.stage.2")).unwrap();
        s.forget_staging(Path::new("/x/.strait.stage.1")).unwrap();
        drop(s);
        let s = MetaStore::open(&dir).unwrap();
        assert_eq!(s.root_credentials().unwrap(), Some(c));
        assert_eq!(s.staging_files().unwrap(), vec![PathBuf::from("/x/.strait.stage.2")]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
