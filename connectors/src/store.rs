//! The POSIX store: buckets are directories under a root, objects are files in them.

use crate::error::{ConnectorError, Ctx, Result};
use crate::fsutil::{self, open_dir, FILE_MODE};
use crate::key::ObjectKey;
use crate::meta::{FileIdentity, ObjectMeta, XATTR_AUTODIR, XATTR_MARKER, XATTR_META};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Prefix of named staging files, created in the object's target directory.
pub const STAGE_PREFIX: &str = ".strait.stage.";
/// Where a file system's `open(O_TMPFILE)` answers these, it has no unnamed files: the staging
/// file gets a name instead.
const NO_TMPFILE: [Errno; 3] = [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL];
/// Directory under a bucket holding in-progress multipart uploads.
pub const UPLOADS_DIR: &str = ".strait-uploads";
/// xattr on a bucket directory recording its creation time (RFC 3339).
pub const XATTR_BUCKET: &str = "user.strait.bucket";
/// xattr on a bucket directory holding its tag set (JSON list of pairs).
pub const XATTR_BUCKET_TAGS: &str = "user.strait.bucket-tags";
/// The bucket policy document (JSON), on the bucket directory: shared by every gateway.
pub const XATTR_BUCKET_POLICY: &str = "user.strait.bucket-policy";
/// The bucket's canned ACL (`public-read`...; absent = private).
const XATTR_BUCKET_ACL: &str = "user.strait.bucket-acl";
/// The account id of the tenant owning the bucket (absent: the administrator's account).
pub const XATTR_BUCKET_OWNER: &str = "user.strait.bucket-owner";

/// Record (`Some(account)`) or clear the owning account of a bucket directory.
pub fn set_bucket_owner(dir: impl AsFd, account: Option<&str>) -> Result<()> {
    match account {
        Some(a) => fsutil::set_xattr(&dir, XATTR_BUCKET_OWNER, a.as_bytes())?,
        None => {
            fsutil::remove_xattr(&dir, XATTR_BUCKET_OWNER)?;
        }
    }
    rustix::fs::fsync(&dir).ctx(|| "fsync bucket directory".into())
}

/// Who a new bucket belongs to: a tenant's account, and the POSIX identity its directory is
/// given (owner uid and gid, mode 0750, so other identities cannot even traverse it).
#[derive(Debug, Clone)]
pub struct BucketOwner {
    pub account: String,
    pub posix: Option<crate::ident::PosixId>,
}

/// State the connector keeps outside the file system (the gateway backs it with RocksDB):
/// - the staging journal: every staging file is recorded before it is created and forgotten
///   after it is published or removed, so that a crash leaves nothing behind;
/// - metadata records too large for the file system's xattr space (ext4: one 4 KiB block),
///   keyed by inode (`dev:ino`), with a stub in the xattr that says where the record is.
pub trait SideState: Send + Sync + 'static {
    fn record(&self, path: &Path) -> Result<()>;
    fn forget(&self, path: &Path);
    /// Store a metadata record durably (before the object is acknowledged).
    fn put_meta(&self, _inode: &str, _record: &[u8]) -> Result<()> {
        Err(ConnectorError::MetadataTooLarge("no side table for large metadata".into()))
    }
    fn get_meta(&self, _inode: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn delete_meta(&self, _inode: &str) {}
    /// An object was published, had its metadata rewritten, or was deleted (`tags` empty)
    /// through Strait: keeps derived indexes (the object tag index) current. Best effort.
    fn object_changed(&self, _bucket: &str, _key: &str, _tags: &[(String, String)]) {}
    /// The listing index, if this state keeps one ([`crate::index`]).
    fn list_index(&self) -> Option<&dyn crate::index::ListIndex> {
        None
    }
}

fn inode_key(st: &rustix::fs::Stat) -> String {
    format!("{}:{}", st.st_dev, st.st_ino)
}

/// Write `meta` into the xattr `name` of `fd`; a record that does not fit goes to the side
/// table and the xattr gets a stub (identity, ETag, `sidecar: true`).
pub(crate) fn write_meta(state: &dyn SideState, fd: impl AsFd, name: &str, meta: &ObjectMeta) -> Result<()> {
    let _s = fs_span!("fs.xattr.set");
    let bytes = meta.encode();
    match fsutil::set_xattr(&fd, name, &bytes) {
        Err(ConnectorError::MetadataTooLarge(_)) => {
            let st = rustix::fs::fstat(&fd).ctx(|| "fstat for metadata".into())?;
            state.put_meta(&inode_key(&st), &bytes)?;
            let stub = ObjectMeta {
                v: crate::meta::META_VERSION,
                id: meta.id,
                etag: meta.etag.clone(),
                stored: true,
                sidecar: true,
                ..Default::default()
            };
            fsutil::set_xattr(&fd, name, &stub.encode())
        }
        r => r,
    }
}

/// Read the record in xattr `name` (following a stub into the side table). `None` when there is
/// none or the side record is missing or describes other bytes.
pub(crate) fn load_meta(
    state: &dyn SideState,
    fd: impl AsFd,
    name: &str,
    st: &rustix::fs::Stat,
) -> Result<Option<ObjectMeta>> {
    let _s = fs_span!("fs.xattr.get");
    let Some(m) = fsutil::get_xattr(&fd, name)?.and_then(|v| ObjectMeta::decode(&v)) else { return Ok(None) };
    if !m.sidecar {
        return Ok(Some(m));
    }
    // The side store may read from disk: not in cached-only mode.
    if let Some(e) = fsutil::would_block() {
        return Err(ConnectorError::from_errno(e, name.to_owned()));
    }
    Ok(state.get_meta(&inode_key(st))?.and_then(|v| ObjectMeta::decode(&v)).filter(|full| full.id == m.id))
}

/// Drop the side record of the inode behind `fd`, if its xattr points to one.
fn forget_meta(state: &dyn SideState, fd: impl AsFd, name: &str) {
    let stub = fsutil::get_xattr(&fd, name).ok().flatten().and_then(|v| ObjectMeta::decode(&v));
    if stub.is_some_and(|m| m.sidecar) {
        if let Ok(st) = rustix::fs::fstat(&fd) {
            state.delete_meta(&inode_key(&st));
        }
    }
}

/// A journal that records nothing (tests of the connector alone).
pub struct NoJournal;
impl SideState for NoJournal {
    fn record(&self, _: &Path) -> Result<()> {
        Ok(())
    }
    fn forget(&self, _: &Path) {}
}

const LOCK_STRIPES: usize = 256;

/// Serializes publishes to one key inside this process, so that If-Match checks and the rename
/// are one step with respect to other writers of this gateway.
struct KeyLocks(Vec<Mutex<()>>);

impl KeyLocks {
    fn new() -> Self {
        Self((0..LOCK_STRIPES).map(|_| Mutex::new(())).collect())
    }
    fn lock(&self, bucket: &str, key: &str) -> MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (bucket, key).hash(&mut h);
        let i = (h.finish() as usize) % LOCK_STRIPES;
        self.0[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    root: PathBuf,
    root_fd: OwnedFd,
    locks: KeyLocks,
    journal: Arc<dyn SideState>,
    /// Buckets linked onto directories elsewhere (`strait admin bucket link`): name → link.
    links: std::sync::RwLock<std::collections::BTreeMap<String, BucketLink>>,
    /// Stage new objects as unnamed files (`O_TMPFILE`) where the file system allows it.
    anonymous_staging: std::sync::atomic::AtomicBool,
    /// Bucket directories opened recently, reused by [`PosixStore::bucket`].
    dirs: Mutex<std::collections::HashMap<String, Vec<OpenDir>>>,
    /// Bumped whenever directories are forgotten: a directory opened before is not kept.
    dirs_generation: std::sync::atomic::AtomicU64,
}

/// How long an open bucket directory is reused before its name is looked up again. Within it, a
/// request costs one `fstat` of the directory instead of open + `fstatfs` + close.
const DIR_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many open directories are kept (descriptors held; past it, nothing more is
/// kept until some expire).
const DIR_REUSE_MAX: usize = 1024;

/// A bucket directory opened by one identity (`None`: the process's own).
struct OpenDir {
    id: Option<crate::ident::PosixId>,
    fd: Arc<OwnedFd>,
    path: PathBuf,
    local: bool,
    opened: std::time::Instant,
}

/// A bucket served from an existing directory outside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLink {
    /// Absolute, canonical path of the directory.
    pub path: PathBuf,
    pub created_unix_s: i64,
}

/// The POSIX store. Cheap to clone.
#[derive(Clone)]
pub struct PosixStore {
    inner: Arc<Inner>,
}

/// A bucket entry for ListBuckets.
#[derive(Debug, Clone)]
pub struct BucketInfo {
    pub name: String,
    pub created_unix_s: i64,
    /// The owning tenant's account id (`None`: the administrator's).
    pub owner: Option<String>,
}

/// How a staged object replaces what is at its key.
#[derive(Debug, Clone)]
pub enum PublishMode {
    /// Replace whatever object is there.
    Overwrite,
    /// Fail with PreconditionFailed if the key exists (`If-None-Match: *`).
    CreateOnly,
    /// Replace only if the current object's ETag is this one (`If-Match`).
    IfMatch(String),
}

/// A published object as a direct reader sees it ([`Bucket::lease`]).
#[derive(Debug, Clone)]
pub struct Lease {
    pub path: Option<PathBuf>,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub etag: String,
    pub layout: Option<crate::layout::Layout>,
}

/// An open object: its file (none for directory markers) and validated metadata.
pub struct OpenObject {
    pub file: Option<std::fs::File>,
    pub meta: ObjectMeta,
    pub mtime_ns: i128,
}

impl PosixStore {
    /// Open (creating if needed) the root directory.
    pub fn open(root: &Path, journal: Arc<dyn SideState>) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let root_fd = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .ctx(|| format!("open root {}", root.display()))?;
        let root = std::fs::canonicalize(root)?;
        let links = Default::default();
        let anonymous_staging = std::sync::atomic::AtomicBool::new(false);
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                root_fd,
                locks: KeyLocks::new(),
                journal,
                links,
                anonymous_staging,
                dirs: Default::default(),
                dirs_generation: Default::default(),
            }),
        })
    }

    /// Choose how [`Bucket::stage`] creates staging files: unnamed (`O_TMPFILE` in the target
    /// directory, given a name only at publish, through `/proc/self/fd`) where the file system
    /// supports it, or always named. Unnamed staging is the default of `strait serve`; it needs
    /// `/proc`, and answers false (named staging) without it.
    pub fn set_anonymous_staging(&self, on: bool) -> bool {
        let on = on && Path::new("/proc/self/fd").is_dir();
        self.inner.anonymous_staging.store(on, std::sync::atomic::Ordering::Relaxed);
        on
    }

    /// Replace the set of linked buckets (read from the metadata store at start).
    pub fn set_links(&self, links: impl IntoIterator<Item = (String, BucketLink)>) {
        *self.inner.links.write().unwrap_or_else(|p| p.into_inner()) = links.into_iter().collect();
        let mut dirs = self.lock_dirs();
        self.inner.dirs_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        dirs.clear();
    }

    fn lock_dirs(&self) -> MutexGuard<'_, std::collections::HashMap<String, Vec<OpenDir>>> {
        self.inner.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget the open directory of bucket `name` (created, deleted, linked or unlinked here).
    pub fn forget_bucket_dir(&self, name: &str) {
        let mut dirs = self.lock_dirs();
        self.inner.dirs_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        dirs.remove(name);
    }

    /// The link of a linked bucket.
    pub fn link(&self, name: &str) -> Option<BucketLink> {
        self.inner.links.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Whether `name` is a bucket directory under the root (not a link).
    pub fn has_root_bucket(&self, name: &str) -> bool {
        open_dir(&self.inner.root_fd, name).is_ok()
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Remove staging files left by a crash (paths from the journal). Only names with the
    /// staging prefix are ever removed.
    pub fn remove_stale_staging(&self, path: &Path) {
        let is_stage = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(STAGE_PREFIX));
        let in_links =
            self.inner.links.read().unwrap_or_else(|p| p.into_inner()).values().any(|l| path.starts_with(&l.path));
        if is_stage && (path.starts_with(&self.inner.root) || in_links) {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed leftover staging file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover staging file")
                }
            }
        }
        self.inner.journal.forget(path);
    }

    /// Open a bucket directory: a link's directory, else `<root>/<name>`.
    ///
    /// The directory opened by the last request of the same identity is reused for
    /// [`DIR_REUSE`]: each use checks with `fstat` that it still has a link (a bucket directory
    /// removed, or removed and made again, by anyone, on any gateway, is seen at once); one
    /// renamed away and replaced directly on the file system is seen within [`DIR_REUSE`].
    /// Buckets created, deleted, linked or unlinked through this store are forgotten at once.
    /// The cache is per identity because opening the directory is a permission check of its own.
    pub fn bucket(&self, name: &str) -> Result<Bucket> {
        let (b, local) = self.reuse_or_open(name)?;
        // In [`fsutil::try_cached`]'s mode, a bucket on a file system that is not local is left
        // to the I/O pool (its opens ask a server).
        if fsutil::cached_only() && !local {
            return Err(ConnectorError::from_errno(fsutil::would_block().unwrap_or(Errno::AGAIN), name.to_owned()));
        }
        Ok(b)
    }

    /// The bucket's directory, reused or opened (and then kept), and whether its file system
    /// is local.
    fn reuse_or_open(&self, name: &str) -> Result<(Bucket, bool)> {
        let id = crate::ident::current();
        if let Some(reused) = self.reuse_dir(name, &id) {
            return Ok(reused);
        }
        let generation = self.inner.dirs_generation.load(std::sync::atomic::Ordering::SeqCst);
        let b = self.open_bucket(name)?;
        let local = crate::layout::is_local(&*b.fd);
        let mut dirs = self.lock_dirs();
        if self.inner.dirs_generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            // Forgotten (created, deleted, relinked) while this one was being opened.
            return Ok((b, local));
        }
        // Expired directories are closed here (a miss, at most once a second per bucket and
        // identity), so none stays open long after its last use.
        dirs.retain(|_, v| {
            v.retain(|d| d.opened.elapsed() < DIR_REUSE);
            !v.is_empty()
        });
        if dirs.values().map(Vec::len).sum::<usize>() < DIR_REUSE_MAX {
            let v = dirs.entry(name.to_owned()).or_default();
            v.retain(|d| d.id != id);
            v.push(OpenDir { id, fd: b.fd.clone(), path: b.path.clone(), local, opened: std::time::Instant::now() });
        }
        Ok((b, local))
    }

    /// The reusable open directory of `name` for identity `id` (and whether it is local), if any.
    fn reuse_dir(&self, name: &str, id: &Option<crate::ident::PosixId>) -> Option<(Bucket, bool)> {
        let found = {
            let dirs = self.lock_dirs();
            dirs.get(name)
                .and_then(|v| v.iter().find(|d| &d.id == id))
                .and_then(|d| (d.opened.elapsed() < DIR_REUSE).then(|| (d.fd.clone(), d.path.clone(), d.local)))
        };
        let (fd, path, local) = found?;
        match rustix::fs::fstat(&*fd) {
            Ok(st) if st.st_nlink > 0 => Some((Bucket { store: self.clone(), name: name.to_owned(), fd, path }, local)),
            _ => {
                self.forget_bucket_dir(name);
                None
            }
        }
    }

    fn open_bucket(&self, name: &str) -> Result<Bucket> {
        if let Some(link) = self.link(name) {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let fd = fsutil::openat2_with(rustix::fs::CWD, &link.path, flags, ResolveFlags::empty()).map_err(|e| match e {
                Errno::NOENT | Errno::NOTDIR | Errno::LOOP => {
                    tracing::warn!(bucket = name, path = %link.path.display(), "linked bucket directory is missing");
                    ConnectorError::NoSuchBucket(name.to_owned())
                }
                e => ConnectorError::from_errno(e, format!("open linked bucket {name}")),
            })?;
            return Ok(Bucket { store: self.clone(), name: name.to_owned(), fd: Arc::new(fd), path: link.path });
        }
        let fd = open_dir(&self.inner.root_fd, name).map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV => ConnectorError::NoSuchBucket(name.to_owned()),
            e => ConnectorError::from_errno(e, format!("open bucket {name}")),
        })?;
        let path = self.inner.root.join(name);
        Ok(Bucket { store: self.clone(), name: name.to_owned(), fd: Arc::new(fd), path })
    }

    /// Create a bucket directory. [`ConnectorError::AlreadyExists`] if it exists. A tenant's
    /// bucket records its owner and is given the tenant's POSIX identity.
    pub fn create_bucket(&self, name: &str, created_rfc3339: &str, owner: Option<&BucketOwner>) -> Result<()> {
        if self.link(name).is_some() {
            return Err(ConnectorError::AlreadyExists(name.to_owned()));
        }
        self.forget_bucket_dir(name);
        let root = &self.inner.root_fd;
        rustix::fs::mkdirat(root, name, Mode::from_raw_mode(fsutil::DIR_MODE)).map_err(|e| match e {
            Errno::EXIST => ConnectorError::AlreadyExists(name.to_owned()),
            e => ConnectorError::from_errno(e, format!("mkdir bucket {name}")),
        })?;
        let fd = open_dir(root, name).ctx(|| format!("open new bucket {name}"))?;
        fsutil::set_xattr(&fd, XATTR_BUCKET, created_rfc3339.as_bytes())?;
        if let Some(o) = owner {
            fsutil::set_xattr(&fd, XATTR_BUCKET_OWNER, o.account.as_bytes())?;
            if let Some(p) = &o.posix {
                let (uid, gid) = (rustix::fs::Uid::from_raw(p.uid), rustix::fs::Gid::from_raw(p.gid));
                rustix::fs::fchown(&fd, Some(uid), Some(gid)).ctx(|| format!("chown new bucket {name}"))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o750)).ctx(|| format!("chmod new bucket {name}"))?;
            }
        }
        rustix::fs::fsync(&fd).ctx(|| "fsync new bucket".into())?;
        rustix::fs::fsync(root).ctx(|| "fsync root".into())?;
        Ok(())
    }

    /// Delete an empty bucket. Internal leftovers (empty upload area) do not count as content.
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        if let Some(link) = self.link(name) {
            // The directory belongs to whoever linked it; only an administrator unlinks it.
            return Err(ConnectorError::PermissionDenied(format!(
                "bucket {name} is linked to {}: remove the link with `strait admin bucket unlink {name}`",
                link.path.display()
            )));
        }
        let b = self.bucket(name)?;
        let mut has_uploads = false;
        for entry in rustix::fs::Dir::read_from(&*b.fd).ctx(|| format!("readdir {name}"))? {
            let entry = entry.ctx(|| format!("readdir {name}"))?;
            let n = entry.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            if n == UPLOADS_DIR.as_bytes() {
                has_uploads = true;
                continue;
            }
            return Err(ConnectorError::NotEmpty(name.to_owned()));
        }
        if has_uploads {
            let p = self.inner.root.join(name).join(UPLOADS_DIR);
            std::fs::remove_dir_all(&p)?;
        }
        rustix::fs::unlinkat(&self.inner.root_fd, name, AtFlags::REMOVEDIR).map_err(|e| match e {
            Errno::NOTEMPTY | Errno::EXIST => ConnectorError::NotEmpty(name.to_owned()),
            e => ConnectorError::from_errno(e, format!("rmdir bucket {name}")),
        })?;
        self.forget_bucket_dir(name);
        rustix::fs::fsync(&self.inner.root_fd).ctx(|| "fsync root".into())?;
        if let Some(ix) = self.inner.journal.list_index() {
            ix.drop_bucket(name)?;
        }
        Ok(())
    }

    /// Buckets: directories directly under the root whose names are valid bucket names.
    pub fn list_buckets(&self, is_valid_name: impl Fn(&str) -> bool) -> Result<Vec<BucketInfo>> {
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.inner.root_fd).ctx(|| "readdir root".into())? {
            let entry = entry.ctx(|| "readdir root".into())?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name.starts_with('.') || !is_valid_name(name) {
                continue;
            }
            let Ok(fd) = open_dir(&self.inner.root_fd, name) else {
                continue;
            };
            let created = fsutil::get_xattr(&fd, XATTR_BUCKET)?
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| parse_rfc3339_unix(&s))
                .unwrap_or_else(|| rustix::fs::fstat(&fd).map(|st| st.st_mtime).unwrap_or(0));
            let owner = fsutil::get_xattr(&fd, XATTR_BUCKET_OWNER)?.and_then(|v| String::from_utf8(v).ok());
            out.push(BucketInfo { name: name.to_owned(), created_unix_s: created, owner });
        }
        for (name, link) in self.inner.links.read().unwrap_or_else(|p| p.into_inner()).iter() {
            // A link shadows a directory of the same name under the root.
            out.retain(|b| &b.name != name);
            let owner =
                rustix::fs::open(&link.path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .ok()
                    .and_then(|fd| fsutil::get_xattr(&fd, XATTR_BUCKET_OWNER).ok().flatten())
                    .and_then(|v| String::from_utf8(v).ok());
            out.push(BucketInfo { name: name.clone(), created_unix_s: link.created_unix_s, owner });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

fn parse_rfc3339_unix(s: &str) -> Option<i64> {
    // The value is written by the gateway as whole seconds: "<unix>".
    s.trim().parse().ok()
}

/// An open bucket directory.
#[derive(Clone)]
pub struct Bucket {
    store: PosixStore,
    name: String,
    fd: Arc<OwnedFd>,
    /// Absolute path of the directory (for journaling and logs only).
    path: PathBuf,
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The bucket's tag set; `None` when it has none.
    pub fn tags(&self) -> Result<Option<Vec<(String, String)>>> {
        Ok(fsutil::get_xattr(&*self.fd, XATTR_BUCKET_TAGS)?.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Under a tenant's identity ([`crate::ident`]): whether that identity may read, enter and
    /// change the bucket directory itself (what removing the bucket needs, though the removal
    /// of the directory from the root is done by the gateway).
    pub fn check_caller_may_modify(&self) -> Result<()> {
        if crate::ident::current().is_none() {
            return Ok(());
        }
        let all = rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
        rustix::fs::accessat(&*self.fd, ".", all, AtFlags::EACCESS)
            .map_err(|e| ConnectorError::from_errno(e, format!("bucket {}", self.name)))
    }

    /// The owning tenant's account id (`None`: the administrator's).
    pub fn owner(&self) -> Result<Option<String>> {
        Ok(fsutil::get_xattr(&*self.fd, XATTR_BUCKET_OWNER)?.and_then(|v| String::from_utf8(v).ok()))
    }

    /// The bucket policy document, if any.
    pub fn policy(&self) -> Result<Option<String>> {
        Ok(fsutil::get_xattr(&*self.fd, XATTR_BUCKET_POLICY)?.and_then(|v| String::from_utf8(v).ok()))
    }

    /// Replace (`Some`) or remove (`None`) the bucket policy; false if there was none to remove.
    pub fn set_policy(&self, policy: Option<&str>) -> Result<bool> {
        let had = match policy {
            Some(p) => {
                fsutil::set_xattr(&*self.fd, XATTR_BUCKET_POLICY, p.as_bytes())?;
                true
            }
            None => fsutil::remove_xattr(&*self.fd, XATTR_BUCKET_POLICY)?,
        };
        rustix::fs::fsync(&*self.fd).ctx(|| format!("fsync bucket {}", self.name))?;
        Ok(had)
    }

    /// The bucket's canned ACL (`None`: private).
    pub fn acl(&self) -> Result<Option<String>> {
        Ok(fsutil::get_xattr(&*self.fd, XATTR_BUCKET_ACL)?.and_then(|v| String::from_utf8(v).ok()))
    }

    /// Set (`Some`) or reset to private (`None`) the bucket's canned ACL.
    pub fn set_acl(&self, acl: Option<&str>) -> Result<()> {
        match acl {
            Some(a) => fsutil::set_xattr(&*self.fd, XATTR_BUCKET_ACL, a.as_bytes())?,
            None => {
                fsutil::remove_xattr(&*self.fd, XATTR_BUCKET_ACL)?;
            }
        }
        rustix::fs::fsync(&*self.fd).ctx(|| format!("fsync bucket {}", self.name))?;
        Ok(())
    }

    /// Replace (`Some`) or remove (`None`) the bucket's tag set.
    pub fn set_tags(&self, tags: Option<&[(String, String)]>) -> Result<()> {
        match tags {
            Some(t) => {
                let v = serde_json::to_vec(t).expect("tags serialize");
                fsutil::set_xattr(&*self.fd, XATTR_BUCKET_TAGS, &v)?;
            }
            None => {
                fsutil::remove_xattr(&*self.fd, XATTR_BUCKET_TAGS)?;
            }
        }
        rustix::fs::fsync(&*self.fd).ctx(|| format!("fsync bucket {}", self.name))
    }

    /// Absolute path of the bucket directory (for journaling and logs only; all I/O goes
    /// through the directory fd).
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Open an object for reading, with metadata validated against the file's identity.
    pub fn open_object(&self, key: &ObjectKey) -> Result<OpenObject> {
        let _s = fs_span!("fs.open");
        if key.is_dir_marker() {
            let fd = open_dir(&*self.fd, key.path()).map_err(|e| fsutil::map_lookup(e, key.as_str()))?;
            let st = rustix::fs::fstat(&fd).ctx(|| format!("fstat {}", key.as_str()))?;
            let meta = load_meta(&*self.store.inner.journal, &fd, XATTR_MARKER, &st)?
                .ok_or_else(|| ConnectorError::NotFound(key.as_str().to_owned()))?;
            return Ok(OpenObject { file: None, meta, mtime_ns: fsutil::mtime_ns(&st) });
        }
        let (file, st) = fsutil::open_regular(&*self.fd, key.path())?;
        let meta = read_meta(&*self.store.inner.journal, &file, &st)?;
        Ok(OpenObject { file: Some(file), mtime_ns: fsutil::mtime_ns(&st), meta })
    }

    /// What a direct reader (the MPI shim) needs to read the object itself: its absolute path,
    /// file identity, size, ETag and stripe layout. Published files are never written in place
    /// (a new version is a new inode renamed over the key), so a reader that opens the path and
    /// finds this `dev`/`ino` holds exactly this version for as long as it keeps the file open.
    /// Directory markers have no file (`path` is `None`).
    pub fn lease(&self, key: &ObjectKey) -> Result<Lease> {
        let o = self.open_object(key)?;
        let Some(file) = &o.file else {
            return Ok(Lease {
                path: None,
                dev: 0,
                ino: 0,
                size: 0,
                mtime_ns: o.mtime_ns,
                etag: o.meta.etag,
                layout: None,
            });
        };
        let st = rustix::fs::fstat(file).ctx(|| format!("fstat {}", key.as_str()))?;
        Ok(Lease {
            path: Some(self.path.join(key.path())),
            dev: st.st_dev,
            ino: st.st_ino,
            size: o.meta.id.size,
            mtime_ns: o.mtime_ns,
            etag: o.meta.etag,
            layout: Some(crate::layout::of(file, &st)),
        })
    }

    /// Create a staging file for `key` in the key's target directory (creating parents).
    pub fn stage(&self, key: &ObjectKey) -> Result<Staging> {
        if key.is_dir_marker() {
            return Err(ConnectorError::InvalidKey("directory markers are not staged".into()));
        }
        let _s = fs_span!("fs.create");
        let (parent_rel, name) = key.split_parent();
        let mut tries = 0;
        let mut anonymous = self.store.inner.anonymous_staging.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let dir = fsutil::ensure_dirs(&*self.fd, parent_rel)?;
            // A key that names something already is replaced by a rename, which needs a named
            // file anyway: stage it named from the start (one name made and one renamed, as
            // before, instead of an unnamed file, a link under a staging name and a rename).
            if anonymous && rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                anonymous = false;
            }
            if anonymous {
                // An unnamed file in the target directory for a new key: nothing to journal,
                // nothing left behind by a crash (the kernel frees it), no entry a reader of the
                // directory could see, and one directory entry made at publish instead of three
                // changes.
                match rustix::fs::openat(
                    &dir,
                    ".",
                    OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
                    Mode::from_raw_mode(FILE_MODE),
                ) {
                    Ok(fd) => return Ok(self.staging(key, dir, fd, None)),
                    Err(e) if NO_TMPFILE.contains(&e) => anonymous = false,
                    Err(Errno::NOENT) if tries < 3 => {
                        tries += 1;
                        continue;
                    }
                    Err(e) => {
                        return Err(ConnectorError::from_errno(e, format!("create staging file for {}", key.as_str())))
                    }
                }
            }
            let stage_name = format!("{STAGE_PREFIX}{}", uuid::Uuid::new_v4().simple());
            let journal_path = self.path().join(parent_rel).join(&stage_name);
            self.store.inner.journal.record(&journal_path)?;
            match rustix::fs::openat(
                &dir,
                stage_name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(FILE_MODE),
            ) {
                Ok(fd) => return Ok(self.staging(key, dir, fd, Some((stage_name, journal_path)))),
                // The directory was pruned by a concurrent delete between open and create.
                Err(Errno::NOENT) if tries < 3 => {
                    self.store.inner.journal.forget(&journal_path);
                    tries += 1;
                }
                Err(e) => {
                    self.store.inner.journal.forget(&journal_path);
                    return Err(ConnectorError::from_errno(e, format!("create staging file for {}", key.as_str())));
                }
            }
        }
    }

    /// The staging file `fd` for `key` in `dir`: unnamed, or with its name and journal path.
    fn staging(&self, key: &ObjectKey, dir: OwnedFd, fd: OwnedFd, named: Option<(String, PathBuf)>) -> Staging {
        let anonymous = named.is_none();
        let (stage_name, journal_path) = named.unwrap_or_default();
        Staging {
            bucket: self.clone(),
            key: key.clone(),
            dir,
            anonymous,
            stage_name,
            target: key.split_parent().1.to_owned(),
            journal_path,
            file: Some(std::fs::File::from(fd)),
            hold: None,
        }
    }

    /// A staging name for `key` in its target directory that is a hard link to the file
    /// `src_name` of `src_dir` (the same file system): publishing it publishes that file's inode
    /// without a copy, and dropping it unpublished removes only the link. The staging file is
    /// open for reading and writing; `hold` stays open (with its locks) until publish or drop.
    /// `Ok(None)` when the link cannot be made across file systems (EXDEV).
    pub fn stage_link(
        &self,
        key: &ObjectKey,
        src_dir: &OwnedFd,
        src_name: &str,
        hold: std::fs::File,
    ) -> Result<Option<Staging>> {
        if key.is_dir_marker() {
            return Err(ConnectorError::InvalidKey("directory markers are not staged".into()));
        }
        let _s = fs_span!("fs.link");
        let parent_rel = key.split_parent().0;
        let dir = fsutil::ensure_dirs(&*self.fd, parent_rel)?;
        let stage_name = format!("{STAGE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let journal_path = self.path().join(parent_rel).join(&stage_name);
        self.store.inner.journal.record(&journal_path)?;
        let opened =
            rustix::fs::linkat(src_dir, src_name, &dir, stage_name.as_str(), AtFlags::empty()).and_then(|()| {
                rustix::fs::openat(
                    &dir,
                    stage_name.as_str(),
                    OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
            });
        match opened {
            Ok(fd) => {
                let mut st = self.staging(key, dir, fd, Some((stage_name, journal_path)));
                st.hold = Some(hold);
                Ok(Some(st))
            }
            Err(e) => {
                let _ = rustix::fs::unlinkat(&dir, stage_name.as_str(), AtFlags::empty());
                self.store.inner.journal.forget(&journal_path);
                match e {
                    Errno::XDEV => Ok(None),
                    e => Err(ConnectorError::from_errno(e, format!("link staging file for {}", key.as_str()))),
                }
            }
        }
    }

    /// Create or replace a directory-marker object (`a/b/`).
    pub fn put_marker(&self, key: &ObjectKey, mut meta: ObjectMeta, mode: &PublishMode) -> Result<ObjectMeta> {
        let _g = self.store.inner.locks.lock(&self.name, key.as_str());
        let existing = fsutil::stat_beneath(&*self.fd, key.path());
        if let Ok(st) = &existing {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(ConnectorError::ParentIsFile(format!("{} is an object", key.path())));
            }
        }
        let dir = fsutil::ensure_dirs(&*self.fd, key.path())?;
        let dst = rustix::fs::fstat(&dir).ctx(|| format!("fstat {}", key.path()))?;
        let current = load_meta(&*self.store.inner.journal, &dir, XATTR_MARKER, &dst)?;
        check_mode(mode, current.as_ref().map(|m| m.etag.as_str()))?;
        meta.v = crate::meta::META_VERSION;
        meta.stored = true;
        forget_meta(&*self.store.inner.journal, &dir, XATTR_MARKER);
        write_meta(&*self.store.inner.journal, &dir, XATTR_MARKER, &meta)?;
        rustix::fs::fsync(&dir).ctx(|| format!("fsync {}", key.path()))?;
        self.store.inner.journal.object_changed(&self.name, key.as_str(), &meta.tags);
        Ok(meta)
    }

    /// Replace the metadata record of an existing object in place (tagging). The file identity
    /// must still be the one `expected` describes.
    pub fn rewrite_meta(&self, key: &ObjectKey, expected: &ObjectMeta, new: &ObjectMeta) -> Result<()> {
        let _g = self.store.inner.locks.lock(&self.name, key.as_str());
        let cur = self.open_object(key)?;
        if cur.meta.etag != expected.etag || cur.meta.id != expected.id {
            return Err(ConnectorError::Busy(format!("{} changed concurrently", key.as_str())));
        }
        let mut new = new.clone();
        new.v = crate::meta::META_VERSION;
        new.stored = true;
        match &cur.file {
            Some(f) => {
                // setxattr needs ownership of the inode, not a writable descriptor.
                forget_meta(&*self.store.inner.journal, f, XATTR_META);
                write_meta(&*self.store.inner.journal, f, XATTR_META, &new)?;
                f.sync_all()?;
            }
            None => {
                let fd = open_dir(&*self.fd, key.path()).map_err(|e| fsutil::map_lookup(e, key.as_str()))?;
                forget_meta(&*self.store.inner.journal, &fd, XATTR_MARKER);
                write_meta(&*self.store.inner.journal, &fd, XATTR_MARKER, &new)?;
                rustix::fs::fsync(&fd).ctx(|| format!("fsync {}", key.as_str()))?;
            }
        }
        self.store.inner.journal.object_changed(&self.name, key.as_str(), &new.tags);
        Ok(())
    }

    /// Delete an object. [`ConnectorError::NotFound`] when there is none (S3 answers 204 anyway).
    /// Empty directories that Strait created as implied parents are removed; directories created
    /// by users (on the file system, or as directory markers) stay.
    pub fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        let _s = fs_span!("fs.unlink");
        let _g = self.store.inner.locks.lock(&self.name, key.as_str());
        let (parent_rel, name) = key.split_parent();
        if key.is_dir_marker() {
            let dir = open_dir(&*self.fd, key.path()).map_err(|e| fsutil::map_lookup(e, key.as_str()))?;
            forget_meta(&*self.store.inner.journal, &dir, XATTR_MARKER);
            if !fsutil::remove_xattr(&dir, XATTR_MARKER)? {
                return Err(ConnectorError::NotFound(key.as_str().to_owned()));
            }
            rustix::fs::fsync(&dir).ctx(|| format!("fsync {}", key.path()))?;
            drop(dir);
            self.prune_empty(key.path());
            self.store.inner.journal.object_changed(&self.name, key.as_str(), &[]);
            return Ok(());
        }
        let parent = open_dir(&*self.fd, parent_rel).map_err(|e| fsutil::map_lookup(e, key.as_str()))?;
        // Only a regular file is an object: a FIFO, device, symlink or directory is never deleted.
        let (file, _) = fsutil::open_regular(&parent, name).map_err(|e| match e {
            ConnectorError::NotRegularFile(m) => ConnectorError::NotFound(m),
            e => e,
        })?;
        forget_meta(&*self.store.inner.journal, &file, XATTR_META);
        drop(file);
        rustix::fs::unlinkat(&parent, name, AtFlags::empty()).ctx(|| format!("unlink {}", key.as_str()))?;
        rustix::fs::fsync(&parent).ctx(|| format!("fsync parent of {}", key.as_str()))?;
        drop(parent);
        if !parent_rel.is_empty() {
            self.prune_empty(parent_rel);
        }
        self.store.inner.journal.object_changed(&self.name, key.as_str(), &[]);
        Ok(())
    }

    /// Remove `rel` and its ancestors while each is an empty, Strait-created, non-marker directory.
    fn prune_empty(&self, rel: &str) {
        let mut rel = rel.to_owned();
        loop {
            let Ok(dir) = open_dir(&*self.fd, &rel) else {
                return;
            };
            let auto = fsutil::get_xattr(&dir, XATTR_AUTODIR).ok().flatten().is_some();
            let marker = fsutil::get_xattr(&dir, XATTR_MARKER).ok().flatten().is_some();
            drop(dir);
            if !auto || marker {
                return;
            }
            let (parent_rel, name) = match rel.rfind('/') {
                Some(i) => (rel[..i].to_owned(), rel[i + 1..].to_owned()),
                None => (String::new(), rel.clone()),
            };
            let Ok(parent) = open_dir(&*self.fd, &parent_rel) else {
                return;
            };
            match fsutil::rmdir_if_empty(&parent, &name) {
                Ok(true) => {
                    let _ = rustix::fs::fsync(&parent);
                }
                _ => return,
            }
            if parent_rel.is_empty() {
                return;
            }
            rel = parent_rel;
        }
    }

    pub(crate) fn journal(&self) -> &Arc<dyn SideState> {
        &self.store.inner.journal
    }
}

/// The metadata of an open regular file: its stored record if it still describes the file,
/// otherwise a derived one (the file was written or edited outside Strait).
pub(crate) fn read_meta(state: &dyn SideState, file: &std::fs::File, st: &rustix::fs::Stat) -> Result<ObjectMeta> {
    let id = FileIdentity::of(st);
    Ok(match load_meta(state, file, XATTR_META, st)? {
        Some(m) if m.id == id => m,
        Some(_) => {
            tracing::debug!(ino = id.ino, "metadata record is stale: file changed outside Strait");
            ObjectMeta::derived(id)
        }
        None => ObjectMeta::derived(id),
    })
}

/// Whether a publish in `mode` may replace an object with `current_etag` (None: no object).
pub fn check_mode(mode: &PublishMode, current_etag: Option<&str>) -> Result<()> {
    match (mode, current_etag) {
        (PublishMode::Overwrite, _) => Ok(()),
        (PublishMode::CreateOnly, None) => Ok(()),
        (PublishMode::CreateOnly, Some(_)) => Err(ConnectorError::PreconditionFailed("the key exists".into())),
        (PublishMode::IfMatch(_), None) => Err(ConnectorError::NotFound("If-Match on a missing key".into())),
        (PublishMode::IfMatch(want), Some(cur)) if etag_matches(want, cur) => Ok(()),
        (PublishMode::IfMatch(_), Some(_)) => Err(ConnectorError::PreconditionFailed("ETag does not match".into())),
    }
}

/// Compare an If-Match value (quoted or not, or `*`) with a stored ETag.
pub fn etag_matches(want: &str, cur: &str) -> bool {
    let want = want.trim();
    want == "*" || want.trim_matches('"') == cur
}

/// A staging file in the key's target directory, unnamed (`O_TMPFILE`) or named with
/// [`STAGE_PREFIX`]. Dropped without publish, it is removed.
pub struct Staging {
    bucket: Bucket,
    key: ObjectKey,
    dir: OwnedFd,
    /// Opened with `O_TMPFILE`: the file has no name until publish links it.
    anonymous: bool,
    /// The staging name while the file has one (journaled as `journal_path`), else empty.
    stage_name: String,
    target: String,
    journal_path: PathBuf,
    file: Option<std::fs::File>,
    /// A file kept open (and locked) until publish or drop (see [`Bucket::stage_link`]).
    hold: Option<std::fs::File>,
}

impl Staging {
    pub fn file(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("staging file is open until publish")
    }

    /// Make the staged bytes the object at the key: record the metadata, fsync, then rename
    /// (or rename-noreplace for create-only), then fsync the directory. Readers see the old
    /// object or the new one, never a mix.
    pub fn publish(mut self, mut meta: ObjectMeta, mode: &PublishMode) -> Result<ObjectMeta> {
        let file = self.file.take().expect("staging file is open until publish");
        let st = rustix::fs::fstat(&file).ctx(|| "fstat staging".into())?;
        meta.v = crate::meta::META_VERSION;
        meta.id = FileIdentity::of(&st);
        meta.stored = true;
        write_meta(&**self.bucket.journal(), &file, XATTR_META, &meta)?;
        fs_span!("fs.fsync").in_scope(|| file.sync_all())?;
        // An unnamed file is linked through its descriptor: it stays open until then.
        let file = if self.anonymous { Some(file) } else { None };
        {
            let store = self.bucket.store.clone();
            let _g = store.inner.locks.lock(&self.bucket.name, self.key.as_str());
            let current = match mode {
                PublishMode::Overwrite => None,
                _ => match self.bucket.open_object(&self.key) {
                    Ok(o) => Some(o.meta.etag),
                    Err(ConnectorError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                },
            };
            check_mode(mode, current.as_deref())?;
            let no_replace = matches!(mode, PublishMode::CreateOnly);
            match &file {
                Some(f) => fs_span!("fs.link").in_scope(|| self.link_into_place(f, no_replace))?,
                None => fs_span!("fs.rename").in_scope(|| self.rename_into_place(no_replace))?,
            }
        }
        drop(file);
        fs_span!("fs.fsync").in_scope(|| rustix::fs::fsync(&self.dir)).ctx(|| "fsync target directory".into())?;
        if !self.stage_name.is_empty() {
            self.bucket.journal().forget(&self.journal_path);
            self.stage_name.clear();
        }
        self.bucket.journal().object_changed(&self.bucket.name, self.key.as_str(), &meta.tags);
        drop(self.hold.take());
        Ok(meta)
    }

    /// Give the unnamed staging file `file` the key's name: `linkat` makes the entry only if
    /// the name is free, which is all a create-only write needs. A name that is taken (an
    /// object to replace, or a directory) is replaced as named staging does: the file is linked
    /// under a journaled staging name, then renamed over the key.
    fn link_into_place(&mut self, file: &std::fs::File, no_replace: bool) -> Result<()> {
        use std::os::fd::AsRawFd;
        // The descriptor's magic link: linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH.
        let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
        let link = |dir: &OwnedFd, name: &str| {
            rustix::fs::linkat(rustix::fs::CWD, proc.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)
        };
        let mut tries = 0;
        loop {
            match link(&self.dir, self.target.as_str()) {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) if !no_replace => break,
                // The directory was removed since staging: an unnamed file does not keep it
                // from looking empty to a concurrent delete pruning implied parents.
                Err(Errno::NOENT) if tries < 3 => {
                    tries += 1;
                    self.dir = fsutil::ensure_dirs(&*self.bucket.fd, self.key.split_parent().0)?;
                }
                Err(e) => return Err(self.publish_error(e)),
            }
        }
        let stage_name = format!("{STAGE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let journal_path = self.bucket.path().join(self.key.split_parent().0).join(&stage_name);
        self.bucket.journal().record(&journal_path)?;
        // From here Drop removes the name and its record if the rename does not happen.
        self.stage_name = stage_name;
        self.journal_path = journal_path;
        link(&self.dir, self.stage_name.as_str())
            .map_err(|e| ConnectorError::from_errno(e, format!("link staging file for {}", self.key.as_str())))?;
        self.rename_into_place(false)
    }

    fn rename_into_place(&self, no_replace: bool) -> Result<()> {
        let (d, s, t) = (&self.dir, self.stage_name.as_str(), self.target.as_str());
        let r = if no_replace {
            match rustix::fs::renameat_with(d, s, d, t, RenameFlags::NOREPLACE) {
                // File systems without RENAME_NOREPLACE: link(2) also fails if the name exists.
                Err(Errno::INVAL) | Err(Errno::NOSYS) => rustix::fs::linkat(d, s, d, t, AtFlags::empty())
                    .and_then(|()| rustix::fs::unlinkat(d, s, AtFlags::empty())),
                r => r,
            }
        } else {
            rustix::fs::renameat(d, s, d, t)
        };
        r.map_err(|e| self.publish_error(e))
    }

    /// What a failed rename or link of the staging file onto the key means.
    fn publish_error(&self, e: Errno) -> ConnectorError {
        match e {
            Errno::ISDIR | Errno::NOTEMPTY => ConnectorError::ExistingIsDirectory(self.key.as_str().to_owned()),
            Errno::EXIST => match fsutil::stat_beneath(&self.dir, self.target.as_str()) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                    ConnectorError::ExistingIsDirectory(self.key.as_str().to_owned())
                }
                _ => ConnectorError::PreconditionFailed("the key exists".into()),
            },
            e => ConnectorError::from_errno(e, format!("publish {}", self.key.as_str())),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.stage_name.is_empty() {
            drop(self.file.take());
            let _ = rustix::fs::unlinkat(&self.dir, self.stage_name.as_str(), AtFlags::empty());
            self.bucket.journal().forget(&self.journal_path);
        }
    }
}

impl AsFd for Staging {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_ref().expect("open").as_fd()
    }
}
