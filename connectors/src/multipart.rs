//! Multipart upload storage, under `<bucket>/.strait-uploads/<upload-id>/`.
//!
//! **In place** (the usual case: parts of one size, the last one smaller). The first part to
//! arrive sets the upload's slot size S (the file `slot`, linked into place complete, so the first
//! link wins); a part of at most S bytes claims its slot (`NNNNN.slot`, an empty file created
//! exclusively) and is written at offset
//! (n − 1) × S of the upload's data file `data`; when its bytes are synced it marks the slot done
//! (`NNNNN.done`) and publishes its record `NNNNN`: an empty file whose xattrs hold the part's
//! metadata and its `offset:length`. Completion of parts 1..k, all but the last of size S, links
//! `data` into the object's target directory (a hard link: the same file system), copies into
//! their slots the chosen parts that were stored on their own, truncates to the object's size
//! and publishes the link by rename: no byte of an in-place part is copied.
//!
//! **On their own** (a part larger than S, a second upload of a part number whose slot is
//! claimed, UploadPartCopy, parts uploaded after a completion began): the part is staged and
//! published by rename as its own file `NNNNN`, its metadata in its xattr. Completion falls back
//! to concatenating the chosen parts into a fresh staging file (copy_file_range, then
//! read/write) whenever the in-place layout does not hold.
//!
//! Safety of the shared data file: a completion first seals the upload (`sealed`); a part claims
//! its slot before it looks for the seal, so a completion sees every claim made by a writer that
//! may still write in place, and takes the copying path while any claim is not done (a writer in
//! progress, or one that died). The completion holds an exclusive flock on `data` while it works,
//! and never modifies a `data` with another link (an earlier completion published it), so a
//! published file is never written again.

use crate::error::{ConnectorError, Ctx, Result};
use crate::fsutil::{self, open_dir, FILE_MODE};
use crate::key::ObjectKey;
use crate::meta::{ObjectMeta, XATTR_META};
use crate::store::{Bucket, STAGE_PREFIX, UPLOADS_DIR};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// A part as stored.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub number: u32,
    pub size: u64,
    pub meta: ObjectMeta,
    pub mtime_ns: i128,
    /// Offset of the part's bytes in the upload's data file (in place), or None (its own file).
    pub in_place: Option<u64>,
}

fn part_name(n: u32) -> String {
    format!("{n:05}")
}

/// The upload's data file (in-place parts at their slots).
const DATA_FILE: &str = "data";
/// The upload's slot size in bytes (decimal).
const SLOT_SIZE: &str = "slot";
/// Marker created by a completion before it looks at the claims.
const SEALED: &str = "sealed";
/// `offset:length` of an in-place part in the data file, on the part's record.
pub const XATTR_PART_SLOT: &str = "user.strait.part-slot";

fn claim_name(n: u32) -> String {
    format!("{n:05}.slot")
}

fn done_name(n: u32) -> String {
    format!("{n:05}.done")
}

fn read_slot_size(dir: &OwnedFd) -> Result<Option<u64>> {
    use std::io::Read;
    let fd =
        match rustix::fs::openat(dir, SLOT_SIZE, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(ConnectorError::from_errno(e, "open upload slot size")),
        };
    let mut text = String::new();
    std::fs::File::from(fd).take(32).read_to_string(&mut text)?;
    Ok(text.trim().parse().ok().filter(|&n: &u64| n > 0))
}

/// Set the upload's slot size to `len` unless a part set it first: the size is written to a
/// staging file that is then linked as `slot` (link(2) fails if the name exists), so a reader
/// finds no `slot` or a complete one. Returns the slot size in force.
fn set_slot_size(dir: &OwnedFd, len: u64) -> Result<u64> {
    let tmp = format!("{STAGE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let fd = rustix::fs::openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| match e {
        Errno::NOENT => ConnectorError::NotFound("upload".into()),
        e => ConnectorError::from_errno(e, "create upload slot size"),
    })?;
    let wrote = std::io::Write::write_all(&mut std::fs::File::from(fd), len.to_string().as_bytes());
    let linked = wrote.map_err(ConnectorError::from).and_then(|()| {
        match rustix::fs::linkat(dir, tmp.as_str(), dir, SLOT_SIZE, AtFlags::empty()) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(ConnectorError::from_errno(e, "link upload slot size")),
        }
    });
    let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    linked?;
    Ok(read_slot_size(dir)?.unwrap_or(0))
}

/// Create the empty marker file `name` in `dir`; false if it exists.
fn create_exclusive(dir: &OwnedFd, name: &str) -> Result<bool> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)) {
        Ok(_) => Ok(true),
        Err(Errno::EXIST) => Ok(false),
        Err(Errno::NOENT) => Err(ConnectorError::NotFound("upload".into())),
        Err(e) => Err(ConnectorError::from_errno(e, format!("create {name}"))),
    }
}

fn exists(dir: &OwnedFd, name: &str) -> Result<bool> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(ConnectorError::from_errno(e, format!("stat {name}"))),
    }
}

/// Upload IDs are generated by the gateway; refuse anything else as a path component.
fn check_upload_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConnectorError::NotFound(format!("upload {id}")));
    }
    Ok(())
}

impl Bucket {
    fn uploads_dir(&self, create: bool) -> Result<OwnedFd> {
        match open_dir(self.fd(), UPLOADS_DIR) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(self.fd(), UPLOADS_DIR, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(ConnectorError::from_errno(e, "mkdir uploads dir")),
                }
                open_dir(self.fd(), UPLOADS_DIR).ctx(|| "open uploads dir".into())
            }
            Err(e) => Err(ConnectorError::from_errno(e, "open uploads dir")),
        }
    }

    fn upload_dir(&self, id: &str) -> Result<OwnedFd> {
        check_upload_id(id)?;
        let ups = self.uploads_dir(false).map_err(|_| ConnectorError::NotFound(format!("upload {id}")))?;
        open_dir(&ups, id).map_err(|_| ConnectorError::NotFound(format!("upload {id}")))
    }

    /// Create the directory of a new upload.
    pub fn create_upload(&self, id: &str) -> Result<()> {
        check_upload_id(id)?;
        let ups = self.uploads_dir(true)?;
        rustix::fs::mkdirat(&ups, id, Mode::from_raw_mode(0o700)).ctx(|| format!("mkdir upload {id}"))?;
        rustix::fs::fsync(&ups).ctx(|| "fsync uploads dir".into())?;
        Ok(())
    }

    /// Remove an upload and all its parts.
    pub fn remove_upload(&self, id: &str) -> Result<()> {
        check_upload_id(id)?;
        let ups = self.uploads_dir(false)?;
        let dir = open_dir(&ups, id).map_err(|_| ConnectorError::NotFound(format!("upload {id}")))?;
        for entry in rustix::fs::Dir::read_from(&dir).ctx(|| "readdir upload".into())? {
            let entry = entry.ctx(|| "readdir upload".into())?;
            let n = entry.file_name();
            if n.to_bytes() == b"." || n.to_bytes() == b".." {
                continue;
            }
            let _ = rustix::fs::unlinkat(&dir, n, AtFlags::empty());
        }
        rustix::fs::unlinkat(&ups, id, AtFlags::REMOVEDIR).ctx(|| format!("rmdir upload {id}"))?;
        Ok(())
    }

    /// Stage a part's bytes; publish with [`PartStaging::publish`].
    pub fn stage_part(&self, id: &str, number: u32) -> Result<PartStaging> {
        let dir = self.upload_dir(id)?;
        let stage_name = format!("{STAGE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let journal_path = self.path().join(UPLOADS_DIR).join(id).join(&stage_name);
        self.journal().record(&journal_path)?;
        let fd = rustix::fs::openat(
            &dir,
            stage_name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(FILE_MODE),
        );
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) => {
                self.journal().forget(&journal_path);
                return Err(ConnectorError::from_errno(e, "create part staging file"));
            }
        };
        Ok(PartStaging {
            bucket: self.clone(),
            dir,
            stage_name,
            number,
            journal_path,
            file: Some(std::fs::File::from(fd)),
        })
    }

    /// The stored parts of an upload, by part number.
    pub fn list_parts(&self, id: &str) -> Result<Vec<StoredPart>> {
        let dir = self.upload_dir(id)?;
        let mut parts = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir).ctx(|| "readdir upload".into())? {
            let entry = entry.ctx(|| "readdir upload".into())?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            let Ok(number) = name.parse::<u32>() else {
                continue;
            };
            if let Some(p) = self.read_part(&dir, number)? {
                parts.push(p);
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    fn read_part(&self, dir: &OwnedFd, number: u32) -> Result<Option<StoredPart>> {
        let (file, st) = match fsutil::open_regular(dir, &part_name(number)) {
            Ok(x) => x,
            Err(ConnectorError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(meta) = fsutil::get_xattr(&file, XATTR_META)?.and_then(|v| ObjectMeta::decode(&v)) else {
            return Ok(None);
        };
        let slot = fsutil::get_xattr(&file, XATTR_PART_SLOT)?;
        let (size, in_place) = match slot.as_deref().map(parse_slot) {
            Some(Some((offset, len))) => (len, Some(offset)),
            Some(None) => return Err(ConnectorError::Busy(format!("part {number}: unreadable slot record"))),
            None => (u64::try_from(st.st_size).unwrap_or(0), None),
        };
        Ok(Some(StoredPart { number, size, meta, mtime_ns: fsutil::mtime_ns(&st), in_place }))
    }

    /// Open a stored part for reading: the file holding its bytes and their offset in it.
    pub fn open_part(&self, id: &str, number: u32) -> Result<(std::fs::File, u64)> {
        let dir = self.upload_dir(id)?;
        let (file, _) = fsutil::open_regular(&dir, &part_name(number))?;
        match fsutil::get_xattr(&file, XATTR_PART_SLOT)? {
            None => Ok((file, 0)),
            Some(v) => {
                let (offset, _) = parse_slot(&v)
                    .ok_or_else(|| ConnectorError::Busy(format!("part {number}: unreadable slot record")))?;
                Ok((fsutil::open_regular(&dir, DATA_FILE)?.0, offset))
            }
        }
    }

    /// Claim the slot of part `number`, `len` bytes, in the upload's data file. `None` when the
    /// part cannot go in place: `len` is 0 or larger than the upload's slot size (set by the
    /// first part that claims a slot), its slot was claimed before (an earlier upload of this
    /// part number), or a completion has begun. The caller then stages it as its own file.
    pub fn claim_slot(&self, id: &str, number: u32, len: u64) -> Result<Option<PartSlot>> {
        if len == 0 || number == 0 {
            return Ok(None);
        }
        let dir = self.upload_dir(id)?;
        let slot = match read_slot_size(&dir)? {
            Some(s) => s,
            None => set_slot_size(&dir, len)?,
        };
        let Some(offset) = u64::from(number - 1).checked_mul(slot) else {
            return Ok(None);
        };
        if len > slot || !create_exclusive(&dir, &claim_name(number))? {
            return Ok(None);
        }
        // The claim is made before looking for the seal (see the module notes); a part that finds
        // the seal writes no byte in place, so its claim is withdrawn.
        if exists(&dir, SEALED)? {
            let _ = rustix::fs::unlinkat(&dir, claim_name(number).as_str(), AtFlags::empty());
            return Ok(None);
        }
        let data = rustix::fs::openat(
            &dir,
            DATA_FILE,
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(FILE_MODE),
        )
        .ctx(|| "open upload data file".into())?;
        let record = self.stage_part(id, number)?;
        Ok(Some(PartSlot { record, dir, number, offset, data: std::fs::File::from(data) }))
    }

    /// Prepare the completion of upload `id` from `chosen` (its parts, in order) in place: the
    /// upload is sealed, and when the layout allows it (parts 1..k, all but the last of the slot
    /// size, every claimed slot done, none beyond part k, the data file never published), the
    /// data file is locked and linked as the staging file of `key`. `Ok(None)`: concatenate.
    pub fn stage_in_place(&self, id: &str, key: &ObjectKey, chosen: &[&StoredPart]) -> Result<Option<InPlace>> {
        let dir = self.upload_dir(id)?;
        create_exclusive(&dir, SEALED)?;
        let Some(slot) = read_slot_size(&dir)? else {
            return Ok(None);
        };
        let Some(last) = chosen.last() else {
            return Ok(None);
        };
        for (i, p) in chosen.iter().enumerate() {
            let at = u64::from(p.number - 1).checked_mul(slot);
            let regular = p.number as usize == i + 1 && (p.size == slot || i + 1 == chosen.len());
            if !regular || at.is_none() || p.in_place.is_some_and(|o| Some(o) != at) {
                return Ok(None);
            }
        }
        let data = match rustix::fs::openat(
            &dir,
            DATA_FILE,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => std::fs::File::from(fd),
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(ConnectorError::from_errno(e, "open upload data file")),
        };
        rustix::fs::flock(&data, rustix::fs::FlockOperation::LockExclusive).ctx(|| "lock upload data file".into())?;
        let st = rustix::fs::fstat(&data).ctx(|| "fstat upload data file".into())?;
        if st.st_nlink != 1 {
            return Ok(None); // published by an earlier completion: never written again
        }
        let (mut claims, mut done) = (Vec::new(), std::collections::HashSet::new());
        for entry in rustix::fs::Dir::read_from(&dir).ctx(|| "readdir upload".into())? {
            let entry = entry.ctx(|| "readdir upload".into())?;
            let Ok(name) = entry.file_name().to_str() else { continue };
            if let Some(n) = name.strip_suffix(".slot").and_then(|n| n.parse::<u32>().ok()) {
                claims.push(n);
            } else if let Some(n) = name.strip_suffix(".done").and_then(|n| n.parse::<u32>().ok()) {
                done.insert(n);
            }
        }
        if claims.iter().any(|n| !done.contains(n) || *n > last.number) {
            return Ok(None);
        }
        let copies = chosen
            .iter()
            .filter(|p| p.in_place.is_none())
            .map(|p| (p.number, u64::from(p.number - 1) * slot, p.size))
            .collect();
        let size = u64::from(last.number - 1) * slot + last.size;
        let Some(staging) = self.stage_link(key, &dir, DATA_FILE, data)? else {
            return Ok(None);
        };
        Ok(Some(InPlace { staging, copies, size }))
    }
}

fn parse_slot(v: &[u8]) -> Option<(u64, u64)> {
    let (a, b) = std::str::from_utf8(v).ok()?.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A completion in place: the upload's data file linked as the object's staging file.
pub struct InPlace {
    /// Open for reading and writing; publish it once `copies` are in and it is `size` long.
    pub staging: crate::store::Staging,
    /// Chosen parts stored on their own: (part number, offset in the data file, size).
    pub copies: Vec<(u32, u64, u64)>,
    /// The object's size.
    pub size: u64,
}

/// A part being written in place: at `offset` of the upload's data file.
pub struct PartSlot {
    record: PartStaging,
    dir: OwnedFd,
    number: u32,
    offset: u64,
    data: std::fs::File,
}

impl PartSlot {
    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.data
    }

    /// Where the part's bytes go in the data file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The `len` bytes written at the slot become part `number`: synced, the slot marked done,
    /// then the part's record published (replacing an earlier upload of the part number).
    pub fn publish(mut self, meta: ObjectMeta, len: u64) -> Result<()> {
        fs_span!("fs.fsync").in_scope(|| self.data.sync_data())?;
        create_exclusive(&self.dir, &done_name(self.number))?;
        let slot = format!("{}:{len}", self.offset);
        fsutil::set_xattr(self.record.file(), XATTR_PART_SLOT, slot.as_bytes())?;
        self.record.publish(meta)
    }
}

/// A part being written.
pub struct PartStaging {
    bucket: Bucket,
    dir: OwnedFd,
    stage_name: String,
    number: u32,
    journal_path: PathBuf,
    file: Option<std::fs::File>,
}

impl PartStaging {
    pub fn file(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("open until publish")
    }

    /// Make the part visible, replacing an earlier upload of the same part number.
    pub fn publish(mut self, mut meta: ObjectMeta) -> Result<()> {
        let file = self.file.take().expect("open until publish");
        let st = rustix::fs::fstat(&file).ctx(|| "fstat part".into())?;
        meta.v = crate::meta::META_VERSION;
        meta.id = crate::meta::FileIdentity::of(&st);
        meta.stored = true;
        fs_span!("fs.xattr.set").in_scope(|| fsutil::set_xattr(&file, XATTR_META, &meta.encode()))?;
        fs_span!("fs.fsync").in_scope(|| file.sync_all())?;
        drop(file);
        let _rename = fs_span!("fs.rename");
        rustix::fs::renameat(&self.dir, self.stage_name.as_str(), &self.dir, part_name(self.number).as_str()).map_err(
            |e| match e {
                // The upload was aborted or completed meanwhile.
                Errno::NOENT => ConnectorError::NotFound("upload".into()),
                e => ConnectorError::from_errno(e, "publish part"),
            },
        )?;
        drop(_rename);
        fs_span!("fs.fsync").in_scope(|| rustix::fs::fsync(&self.dir)).ctx(|| "fsync upload dir".into())?;
        self.bucket.journal().forget(&self.journal_path);
        self.stage_name.clear();
        Ok(())
    }
}

impl Drop for PartStaging {
    fn drop(&mut self) {
        if !self.stage_name.is_empty() {
            drop(self.file.take());
            let _ = rustix::fs::unlinkat(&self.dir, self.stage_name.as_str(), AtFlags::empty());
            self.bucket.journal().forget(&self.journal_path);
        }
    }
}
