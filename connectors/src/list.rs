//! Listing in S3 byte order over nested directories.
//!
//! S3 orders keys by their UTF-8 bytes. A directory `d` holds keys `d/...`, so inside a
//! directory its entries are ordered with directories compared as `name + "/"`: `obj+` < `obj/x`
//! < `obj1`. The walk visits only directories that can hold keys of the page: it starts at the
//! deepest directory named by the prefix, skips subtrees wholly before the start key, and with a
//! delimiter collapses a subtree into one common prefix without walking it (only looking for one
//! key in it, since an empty directory yields no prefix). Each visited directory is read whole
//! and sorted (the RocksDB listing index of the metadata crate is what keeps million-entry
//! directories cheap).

use crate::error::{Ctx, Result};
use crate::fsutil::{self, open_dir};
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
    page: ListPage,
    last_prefix: Option<String>,
}

/// List a page of `bucket`.
pub fn list(bucket: &Bucket, q: &ListQuery<'_>) -> Result<ListPage> {
    let mut w = Walker { q, state: bucket.journal(), page: ListPage::default(), last_prefix: None };
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

impl Walker<'_> {
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

    fn walk(&mut self, dir: &OwnedFd, dir_prefix: &str) -> Result<Flow> {
        let entries = read_sorted(dir, &mut self.page.skipped_non_utf8)?;
        for (name, kind) in entries {
            let full = format!("{dir_prefix}{name}");
            let flow = match kind {
                Kind::File => self.visit_file(dir, &name, full)?,
                Kind::Dir => self.visit_dir(dir, &name, &full)?,
            };
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn visit_file(&mut self, dir: &OwnedFd, name: &str, full: String) -> Result<Flow> {
        if !full.starts_with(self.q.prefix) || !self.after_ok(&full) {
            return Ok(Flow::Continue);
        }
        if let Some(cp) = &self.last_prefix {
            if full.starts_with(cp.as_str()) {
                return Ok(Flow::Continue);
            }
        }
        let Ok((file, st)) = fsutil::open_regular(dir, name) else {
            return Ok(Flow::Continue); // vanished or replaced since readdir
        };
        let meta = read_meta(&**self.state, &file, &st)?;
        Ok(self.offer(full, meta, fsutil::mtime_ns(&st)))
    }

    fn visit_dir(&mut self, dir: &OwnedFd, name_slash: &str, full: &str) -> Result<Flow> {
        if !self.subtree_wanted(full) {
            return Ok(Flow::Continue);
        }
        let name = &name_slash[..name_slash.len() - 1];
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
        for (name, kind) in read_sorted(dir, &mut self.page.skipped_non_utf8)? {
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
