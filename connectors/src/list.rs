//! Listing in S3 byte order over nested directories.
//!
//! S3 orders keys by their UTF-8 bytes. A directory `d` holds keys `d/...`, so inside a
//! directory its entries are ordered with directories compared as `name + "/"`: `obj+` < `obj/x`
//! < `obj1`. The walk visits only directories that can hold keys of the page: it starts at the
//! deepest directory named by the prefix, skips subtrees wholly before the start key, and with a
//! delimiter collapses a subtree into one common prefix without walking it (only looking for one
//! key in it, since an empty directory yields no prefix).
//!
//! With a listing index ([`crate::index`]), a directory whose stamp still matches is not read:
//! its entries come from the index, starting at the page's position; otherwise the directory is
//! read whole and sorted, and its snapshot replaced. Without one, every visited directory is
//! read whole and sorted.

use crate::error::{Ctx, Result};
use crate::fsutil::{self, open_dir};
use crate::index::{CachedMeta, DirBatch, DirInfo, DirStamp, ListIndex};
use crate::key::INTERNAL_PREFIX;
use crate::meta::{ObjectMeta, XATTR_MARKER};
use crate::store::{read_meta, Bucket};
use rustix::fs::{AtFlags, FileType};
use std::os::fd::OwnedFd;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Exclusive start: keys (and prefixes) after this one (marker, start-after, continuation).
    pub after: Option<&'a str>,
    pub max_keys: usize,
}

/// One entry of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum ListItem {
    Object { key: String, meta: Box<ObjectMeta>, mtime_ns: i128 },
    Prefix(String),
}

impl ListItem {
    pub fn key(&self) -> &str {
        match self {
            Self::Object { key, .. } | Self::Prefix(key) => key,
        }
    }
}

/// A page of results.
#[derive(Debug, Default)]
pub struct ListPage {
    pub items: Vec<ListItem>,
    pub truncated: bool,
    /// Entries skipped because their names are not valid UTF-8.
    pub skipped_non_utf8: u64,
}

#[derive(PartialEq)]
enum Flow {
    Continue,
    Stop,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    File,
    Dir,
}

struct Walker<'q> {
    q: &'q ListQuery<'q>,
    state: &'q std::sync::Arc<dyn crate::store::SideState>,
    index: Option<&'q dyn ListIndex>,
    bucket: &'q str,
    page: ListPage,
    last_prefix: Option<String>,
}

/// Index entries fetched by the first read of a directory (often a few are enough: a subtree
/// check, the end of a page) and by each later read.
const INDEX_FIRST_CHUNK: usize = 32;
const INDEX_CHUNK: usize = 512;

/// One directory's entries in S3 order, from its snapshot in the index or from `readdir`.
enum Entries<'q> {
    Mem(std::vec::IntoIter<(String, Kind)>),
    Index {
        ix: &'q dyn ListIndex,
        bucket: &'q str,
        dir: String,
        next_from: Option<String>,
        chunk: usize,
        buf: std::vec::IntoIter<(String, Vec<u8>)>,
    },
}

impl Entries<'_> {
    /// The next entry: name, kind, and its value in the index (empty when none).
    fn next(&mut self) -> Result<Option<(String, Kind, Vec<u8>)>> {
        match self {
            Self::Mem(it) => Ok(it.next().map(|(n, k)| (n, k, Vec::new()))),
            Self::Index { ix, bucket, dir, next_from, chunk, buf } => loop {
                if let Some((name, v)) = buf.next() {
                    let kind = if name.ends_with('/') { Kind::Dir } else { Kind::File };
                    return Ok(Some((name, kind, v)));
                }
                let Some(from) = next_from.take() else { return Ok(None) };
                let got = ix.children(bucket, dir, &from, *chunk)?;
                if got.len() == *chunk {
                    // Names never contain NUL: `last + "\0"` is the next possible name.
                    *next_from = Some(format!("{}\0", got[got.len() - 1].0));
                }
                *chunk = INDEX_CHUNK;
                *buf = got.into_iter();
            },
        }
    }
}

static DIRS_READ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static DIRS_FROM_INDEX: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Directories listings have visited since start: (read with `readdir`, served from a trusted
/// snapshot of the listing index).
pub fn directory_counts() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (DIRS_READ.load(Relaxed), DIRS_FROM_INDEX.load(Relaxed))
}

fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// List a page of `bucket`.
pub fn list(bucket: &Bucket, q: &ListQuery<'_>) -> Result<ListPage> {
    let state = bucket.journal();
    let mut w = Walker {
        q,
        state,
        index: state.list_index(),
        bucket: bucket.name(),
        page: ListPage::default(),
        last_prefix: None,
    };
    if q.max_keys == 0 {
        return Ok(w.page);
    }
    // A start key that is itself a common prefix excludes everything under it.
    if let (Some(after), Some(d)) = (q.after, q.delimiter) {
        if let Some(cp) = common_prefix(after, q.prefix, d) {
            if cp == after {
                w.last_prefix = Some(cp.to_owned());
            }
        }
    }
    // Start at the deepest directory that the prefix names completely.
    let start_rel = match q.prefix.rfind('/') {
        Some(i) => &q.prefix[..i],
        None => "",
    };
    let dir = match open_dir(bucket.fd(), start_rel) {
        Ok(fd) => fd,
        Err(_) => return Ok(w.page),
    };
    let dir_prefix = if start_rel.is_empty() { String::new() } else { format!("{start_rel}/") };
    // The start directory may itself be a marker object (`a/b/` for prefix `a/b/...`).
    if !start_rel.is_empty() && w.subtree_wanted(&dir_prefix) {
        if let Some(meta) = marker_meta(&**w.state, &dir)? {
            let st = rustix::fs::fstat(&dir).ctx(|| "fstat dir".into())?;
            if w.offer(dir_prefix.clone(), meta, fsutil::mtime_ns(&st)) == Flow::Stop {
                return Ok(w.page);
            }
        }
    }
    w.walk(&dir, &dir_prefix)?;
    Ok(w.page)
}

/// The common prefix `key` rolls up into, if any.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    if delimiter.is_empty() || !key.starts_with(prefix) {
        return None;
    }
    let rest = &key[prefix.len()..];
    rest.find(delimiter).map(|i| &key[..prefix.len() + i + delimiter.len()])
}

/// Read a directory: usable entries sorted in S3 order.
fn read_sorted(dir: &OwnedFd, skipped: &mut u64) -> Result<Vec<(String, Kind)>> {
    let _s = fs_span!("fs.readdir");
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).ctx(|| "readdir".into())? {
        let entry = entry.ctx(|| "readdir".into())?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            *skipped += 1;
            continue;
        };
        if name.starts_with(INTERNAL_PREFIX) {
            continue;
        }
        let ft = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(_) => continue,
            },
            ft => ft,
        };
        match ft {
            FileType::RegularFile => out.push((name.to_owned(), Kind::File)),
            FileType::Directory => out.push((format!("{name}/"), Kind::Dir)),
            _ => {} // symlinks, FIFOs, sockets, devices are not objects
        }
    }
    out.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

impl<'q> Walker<'q> {
    fn after_ok(&self, key: &str) -> bool {
        self.q.after.is_none_or(|a| key > a)
    }

    /// Whether a subtree whose keys all start with `full` can hold keys of this page.
    fn subtree_wanted(&self, full: &str) -> bool {
        let p = self.q.prefix;
        let prefix_ok = full.starts_with(p) || p.starts_with(full);
        let after_ok = self.q.after.is_none_or(|a| full > a || a.starts_with(full));
        let not_rolled = self.last_prefix.as_deref().is_none_or(|cp| !full.starts_with(cp));
        prefix_ok && after_ok && not_rolled
    }

    fn emit(&mut self, item: ListItem) -> Flow {
        if self.page.items.len() == self.q.max_keys {
            self.page.truncated = true;
            return Flow::Stop;
        }
        self.page.items.push(item);
        Flow::Continue
    }

    /// Offer one key; it becomes an object entry or rolls into a common prefix.
    fn offer(&mut self, key: String, meta: ObjectMeta, mtime_ns: i128) -> Flow {
        if !key.starts_with(self.q.prefix) || !self.after_ok(&key) {
            return Flow::Continue;
        }
        if let Some(d) = self.q.delimiter {
            if let Some(cp) = common_prefix(&key, self.q.prefix, d) {
                if self.last_prefix.as_deref() == Some(cp) {
                    return Flow::Continue;
                }
                let cp = cp.to_owned();
                self.last_prefix = Some(cp.clone());
                return self.emit(ListItem::Prefix(cp));
            }
        }
        self.emit(ListItem::Object { key, meta: Box::new(meta), mtime_ns })
    }

    /// The first name in the directory at `dir_prefix` that can matter for this page: names
    /// before it hold no key at or after the prefix and the start key.
    fn seek_from(&self, dir_prefix: &str) -> String {
        let mut from = String::new();
        for bound in [Some(self.q.prefix), self.q.after].into_iter().flatten() {
            if bound.len() > dir_prefix.len() && bound.starts_with(dir_prefix) {
                let r = &bound[dir_prefix.len()..];
                // A deeper bound `x/y` starts at the directory entry `x/`.
                let r = r.find('/').map_or(r, |i| &r[..=i]);
                if r > from.as_str() {
                    from = r.to_owned();
                }
            }
        }
        from
    }

    /// The entries of `dir` from `from` on: from the index when its stamp still holds, else by
    /// reading the directory (and replacing its snapshot).
    fn entries(&mut self, dir: &OwnedFd, dir_prefix: &str, from: &str) -> Result<Entries<'q>> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(ix) = self.index else {
            DIRS_READ.fetch_add(1, Relaxed);
            let mut all = read_sorted(dir, &mut self.page.skipped_non_utf8)?;
            let start = all.partition_point(|(n, _)| n.as_str() < from);
            all.drain(..start);
            return Ok(Entries::Mem(all.into_iter()));
        };
        let st = rustix::fs::fstat(dir).ctx(|| "fstat dir".into())?;
        let stamp = DirStamp::of(&st);
        if ix.stamp(self.bucket, dir_prefix)? == Some(stamp) {
            DIRS_FROM_INDEX.fetch_add(1, Relaxed);
        } else {
            DIRS_READ.fetch_add(1, Relaxed);
            let now = now_ns();
            let fresh = read_sorted(dir, &mut self.page.skipped_non_utf8)?;
            let old = ix.children(self.bucket, dir_prefix, "", usize::MAX)?;
            let settled = stamp.settled(now).then_some(stamp);
            let has_file = fresh.iter().any(|(_, k)| *k == Kind::File);
            let info = settled.map(|stamp| DirInfo { stamp, has_file });
            let mut batch = DirBatch { stamp: settled, info, ..Default::default() };
            // Both sides are sorted: one merge pass yields additions and removals.
            let (mut i, mut j) = (0, 0);
            while i < fresh.len() || j < old.len() {
                match (fresh.get(i), old.get(j)) {
                    (Some((f, _)), Some((o, _))) if f == o => (i, j) = (i + 1, j + 1),
                    (Some((f, _)), Some((o, _))) if f.as_bytes() < o.as_bytes() => {
                        batch.add.push(f.clone());
                        i += 1;
                    }
                    (Some((f, _)), None) => {
                        batch.add.push(f.clone());
                        i += 1;
                    }
                    (_, Some((o, _))) => {
                        batch.remove.push(o.clone());
                        j += 1;
                    }
                    (None, None) => unreachable!(),
                }
            }
            let _s = tracing::debug_span!(target: "strait::index", "index.refresh_dir", entries = fresh.len() as i64)
                .entered();
            ix.apply(self.bucket, dir_prefix, batch)?;
        }
        Ok(Entries::Index {
            ix,
            bucket: self.bucket,
            dir: dir_prefix.to_owned(),
            next_from: Some(from.to_owned()),
            chunk: INDEX_FIRST_CHUNK,
            buf: Vec::new().into_iter(),
        })
    }

    fn walk(&mut self, dir: &OwnedFd, dir_prefix: &str) -> Result<Flow> {
        let from = self.seek_from(dir_prefix);
        let mut entries = self.entries(dir, dir_prefix, &from)?;
        while let Some((name, kind, value)) = entries.next()? {
            let full = format!("{dir_prefix}{name}");
            // Sorted: once past every key with the prefix, nothing later in this directory matches.
            let p = self.q.prefix;
            if full.as_str() > p && !full.starts_with(p) && !p.starts_with(full.as_str()) {
                break;
            }
            let flow = match kind {
                Kind::File => self.visit_file(dir, &name, full, CachedMeta::decode(&value))?,
                Kind::Dir => self.visit_dir(dir, &name, &full, DirInfo::decode(&value))?,
            };
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn visit_file(&mut self, dir: &OwnedFd, name: &str, full: String, cached: Option<CachedMeta>) -> Result<Flow> {
        if !full.starts_with(self.q.prefix) || !self.after_ok(&full) {
            return Ok(Flow::Continue);
        }
        if let Some(cp) = &self.last_prefix {
            if full.starts_with(cp.as_str()) {
                return Ok(Flow::Continue);
            }
        }
        if let Some(c) = cached {
            // The cached record stands while the file is the same inode with the same size,
            // mtime and ctime (an in-place overwrite or a metadata rewrite changes them).
            let _s = fs_span!("fs.stat");
            match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st)
                    if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                        && crate::meta::FileIdentity::of(&st) == c.meta.id
                        && crate::index::ctime_ns(&st) == c.ctime_ns =>
                {
                    // Under a tenant's identity, list only files that identity may read, as
                    // the uncached path (which opens the file) does.
                    if crate::ident::current().is_some()
                        && rustix::fs::accessat(dir, name, rustix::fs::Access::READ_OK, AtFlags::EACCESS).is_err()
                    {
                        return Ok(Flow::Continue);
                    }
                    return Ok(self.offer(full, c.meta, fsutil::mtime_ns(&st)));
                }
                Err(rustix::io::Errno::NOENT) => return Ok(Flow::Continue),
                _ => {}
            }
        }
        let Ok((file, st)) = fsutil::open_regular(dir, name) else {
            return Ok(Flow::Continue); // vanished or replaced since readdir
        };
        let meta = read_meta(&**self.state, &file, &st)?;
        if let Some(ix) = self.index {
            // A derived-data cache: a failure to write it only costs a re-read later.
            let c = CachedMeta { v: 1, ctime_ns: crate::index::ctime_ns(&st), meta: meta.clone() };
            if let Err(e) = ix.cache_meta(self.bucket, &full, &c) {
                tracing::debug!(error = %e, "listing index: cannot cache metadata");
            }
        }
        Ok(self.offer(full, meta, fsutil::mtime_ns(&st)))
    }

    fn visit_dir(&mut self, dir: &OwnedFd, name_slash: &str, full: &str, info: Option<DirInfo>) -> Result<Flow> {
        if !self.subtree_wanted(full) {
            return Ok(Flow::Continue);
        }
        let name = &name_slash[..name_slash.len() - 1];
        // Rolled into a common prefix, and recorded as holding a file directly: emitted from
        // the parent's snapshot without opening it (after one stat against its stamp when the
        // index verifies prefixes; see `index`'s guarantee). Not when the start key lies inside
        // it: then only keys after the start count.
        if let (Some(d), Some(info)) = (self.q.delimiter, info) {
            if let Some(cp) = common_prefix(full, self.q.prefix, d) {
                let start_inside = self.q.after.is_some_and(|a| a.starts_with(full));
                if info.has_file && !start_inside && self.last_prefix.as_deref() != Some(cp) {
                    let verify = self.index.is_none_or(|ix| ix.verify_prefixes());
                    let unchanged = !verify || {
                        let _s = fs_span!("fs.stat");
                        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok_and(|st| DirStamp::of(&st) == info.stamp)
                    };
                    if unchanged {
                        let cp = cp.to_owned();
                        self.last_prefix = Some(cp.clone());
                        return Ok(self.emit(ListItem::Prefix(cp)));
                    }
                }
            }
        }
        let Ok(sub) = open_dir(dir, name) else {
            return Ok(Flow::Continue);
        };
        // The whole subtree rolls into one common prefix: emit it if the subtree has a key.
        if let Some(d) = self.q.delimiter {
            if let Some(cp) = common_prefix(full, self.q.prefix, d) {
                if self.last_prefix.as_deref() == Some(cp) {
                    return Ok(Flow::Continue);
                }
                if !self.has_key(&sub, full)? {
                    return Ok(Flow::Continue);
                }
                let cp = cp.to_owned();
                self.last_prefix = Some(cp.clone());
                return Ok(self.emit(ListItem::Prefix(cp)));
            }
        }
        if let Some(meta) = marker_meta(&**self.state, &sub)? {
            let st = rustix::fs::fstat(&sub).ctx(|| "fstat dir".into())?;
            if self.offer(full.to_owned(), meta, fsutil::mtime_ns(&st)) == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        self.walk(&sub, full)
    }

    /// Whether the subtree at `dir` (keys starting with `full`) holds any key after the start.
    fn has_key(&mut self, dir: &OwnedFd, full: &str) -> Result<bool> {
        if marker_meta(&**self.state, dir)?.is_some() && self.after_ok(full) {
            return Ok(true);
        }
        let from = self.seek_from(full);
        let mut entries = self.entries(dir, full, &from)?;
        while let Some((name, kind, _)) = entries.next()? {
            let sub_full = format!("{full}{name}");
            match kind {
                Kind::File if self.after_ok(&sub_full) => return Ok(true),
                Kind::File => {}
                Kind::Dir => {
                    if self.q.after.is_some_and(|a| sub_full.as_str() <= a && !a.starts_with(&sub_full)) {
                        continue;
                    }
                    if let Ok(sub) = open_dir(dir, &name[..name.len() - 1]) {
                        if self.has_key(&sub, &sub_full)? {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok(false)
    }
}

fn marker_meta(state: &dyn crate::store::SideState, dir: &OwnedFd) -> Result<Option<ObjectMeta>> {
    let st = rustix::fs::fstat(dir).ctx(|| "fstat dir".into())?;
    crate::store::load_meta(state, dir, XATTR_MARKER, &st)
}

/// What `strait index verify` found in one bucket.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Directories whose stamp matches the file system (their snapshot is served as is).
    pub trusted_dirs: u64,
    /// Directories without a stamp or with a stale one (re-read at their next listing: no drift).
    pub unstamped_dirs: u64,
    /// Cached file records checked against the files they describe.
    pub cached_files: u64,
    /// Differences that a listing would serve: trusted snapshots whose entries differ from the
    /// directory, cached records that differ from the file's record.
    pub drift: Vec<String>,
}

/// Compare the listing index of `bucket` with the file system.
pub fn verify(bucket: &Bucket) -> Result<VerifyReport> {
    let mut r = VerifyReport::default();
    let state = bucket.journal();
    let Some(ix) = state.list_index() else { return Ok(r) };
    let dir = open_dir(bucket.fd(), "").ctx(|| "open bucket".into())?;
    verify_dir(bucket.name(), &**state, ix, &dir, "", &mut r)?;
    Ok(r)
}

fn verify_dir(
    bucket: &str,
    state: &dyn crate::store::SideState,
    ix: &dyn ListIndex,
    dir: &OwnedFd,
    prefix: &str,
    r: &mut VerifyReport,
) -> Result<()> {
    let st = rustix::fs::fstat(dir).ctx(|| "fstat dir".into())?;
    let mut skipped = 0;
    let fresh = read_sorted(dir, &mut skipped)?;
    let indexed = ix.children(bucket, prefix, "", usize::MAX)?;
    if ix.stamp(bucket, prefix)? == Some(DirStamp::of(&st)) {
        r.trusted_dirs += 1;
        let names: Vec<&str> = indexed.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = fresh.iter().map(|(n, _)| n.as_str()).collect();
        if names != want {
            let missing = want.iter().filter(|n| !names.contains(n)).count();
            let extra = names.iter().filter(|n| !want.contains(n)).count();
            r.drift.push(format!("{bucket}/{prefix}: trusted snapshot has {extra} names too many, {missing} missing"));
        }
    } else {
        r.unstamped_dirs += 1;
    }
    for (name, v) in &indexed {
        let Some(c) = CachedMeta::decode(v) else { continue };
        let Ok((file, st)) = fsutil::open_regular(dir, name) else { continue };
        if crate::meta::FileIdentity::of(&st) != c.meta.id || crate::index::ctime_ns(&st) != c.ctime_ns {
            continue; // not served: a listing re-reads it
        }
        r.cached_files += 1;
        if read_meta(state, &file, &st)? != c.meta {
            r.drift.push(format!("{bucket}/{prefix}{name}: cached record differs from the file's"));
        }
    }
    for (name, kind) in fresh {
        if kind == Kind::Dir {
            if let Ok(sub) = open_dir(dir, &name[..name.len() - 1]) {
                verify_dir(bucket, state, ix, &sub, &format!("{prefix}{name}"), r)?;
            }
        }
    }
    Ok(())
}
