//! Small, safe wrappers over the syscalls the connector uses, each resolving beneath a
//! directory fd without following symlinks.

use crate::error::{ConnectorError, Ctx, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, XattrFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};

/// Resolution used for every client-derived path: stay beneath the directory, never follow a
/// symlink (in any component).
pub const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

/// Mode for new directories (the umask applies).
pub const DIR_MODE: u32 = 0o755;
/// Mode for new files (the umask applies).
pub const FILE_MODE: u32 = 0o644;

/// Open a directory beneath `dir`.
pub fn open_dir(dir: impl AsFd, rel: &str) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        dir,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
}

/// Open a path beneath `dir` with `O_PATH` (no side effects on devices or FIFOs) and stat it.
pub fn stat_beneath(dir: impl AsFd, rel: &str) -> rustix::io::Result<Stat> {
    let fd = rustix::fs::openat2(dir, rel, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), RESOLVE)?;
    rustix::fs::fstat(fd)
}

/// Open a regular file beneath `dir` for reading; anything else is refused.
pub fn open_regular(dir: impl AsFd + Copy, rel: &str) -> Result<(std::fs::File, Stat)> {
    let st = stat_beneath(dir, rel).map_err(|e| map_lookup(e, rel))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(ConnectorError::NotFound(format!("{rel} is a directory"))),
        _ => return Err(ConnectorError::NotRegularFile(rel.to_owned())),
    }
    let fd = rustix::fs::openat2(
        dir,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(|e| map_lookup(e, rel))?;
    let st2 = rustix::fs::fstat(&fd).ctx(|| format!("fstat {rel}"))?;
    if st2.st_ino != st.st_ino
        || st2.st_dev != st.st_dev
        || FileType::from_raw_mode(st2.st_mode) != FileType::RegularFile
    {
        return Err(ConnectorError::Busy(format!("{rel} changed while opening")));
    }
    Ok((std::fs::File::from(fd), st2))
}

/// Lookups: a symlink on the way (ELOOP under RESOLVE_NO_SYMLINKS) or an escape attempt (EXDEV)
/// reads as "no such object", never as a path outside the bucket.
pub fn map_lookup(e: Errno, rel: &str) -> ConnectorError {
    match e {
        Errno::LOOP | Errno::XDEV => ConnectorError::NotFound(format!("{rel}: symlink or escape refused")),
        e => ConnectorError::from_errno(e, rel.to_owned()),
    }
}

/// Read an xattr; `Ok(None)` when it is absent.
pub fn get_xattr(fd: impl AsFd, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match rustix::fs::fgetxattr(&fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => return Ok(None),
            Err(Errno::RANGE) if buf.len() < 1 << 20 => {
                let n = rustix::fs::fgetxattr_query(&fd, name).ctx(|| format!("size of xattr {name}"))?;
                buf = vec![0u8; n.max(buf.len() * 2)];
            }
            Err(e) => return Err(ConnectorError::from_errno(e, format!("getxattr {name}"))),
        }
    }
}

/// Write an xattr. Too-large values (E2BIG, ENOSPC in the xattr block) are [`ConnectorError::MetadataTooLarge`].
pub fn set_xattr(fd: impl AsFd, name: &str, value: &[u8]) -> Result<()> {
    rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()).map_err(|e| match e {
        Errno::TOOBIG | Errno::NOSPC | Errno::RANGE => {
            ConnectorError::MetadataTooLarge(format!("{name}: {} bytes do not fit", value.len()))
        }
        Errno::OPNOTSUPP => ConnectorError::NotSupported(format!("the file system has no user xattrs ({name})")),
        e => ConnectorError::from_errno(e, format!("setxattr {name}")),
    })
}

/// Remove an xattr; `Ok(false)` when it was absent.
pub fn remove_xattr(fd: impl AsFd, name: &str) -> Result<bool> {
    match rustix::fs::fremovexattr(fd, name) {
        Ok(()) => Ok(true),
        Err(Errno::NODATA) => Ok(false),
        Err(e) => Err(ConnectorError::from_errno(e, format!("removexattr {name}"))),
    }
}

/// Remove the directory entry `name` if it is an empty directory; `Ok(false)` if not empty.
pub fn rmdir_if_empty(parent: impl AsFd, name: &str) -> Result<bool> {
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) => Ok(true),
        Err(Errno::NOTEMPTY) | Err(Errno::EXIST) | Err(Errno::NOENT) | Err(Errno::BUSY) => Ok(false),
        Err(e) => Err(ConnectorError::from_errno(e, format!("rmdir {name}"))),
    }
}

/// Make sure `rel` (a relative directory path, possibly empty) exists beneath `base`, creating
/// missing components marked with the autodir xattr. Returns the directory's fd.
pub fn ensure_dirs(base: impl AsFd, rel: &str) -> Result<OwnedFd> {
    let mut cur = open_dir(&base, "").ctx(|| "open bucket".into())?;
    if rel.is_empty() {
        return Ok(cur);
    }
    for comp in rel.split('/') {
        let next = match open_dir(&cur, comp) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => create_autodir(&cur, comp)?,
            Err(Errno::NOTDIR) => return Err(ConnectorError::ParentIsFile(format!("{comp} in {rel}"))),
            Err(e) => return Err(map_lookup(e, rel)),
        };
        cur = next;
    }
    Ok(cur)
}

fn create_autodir(parent: &OwnedFd, comp: &str) -> Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, comp, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) => {
            let fd = open_dir(parent, comp).map_err(|e| map_lookup(e, comp))?;
            set_xattr(&fd, crate::meta::XATTR_AUTODIR, b"1")?;
            rustix::fs::fsync(parent).ctx(|| format!("fsync parent of {comp}"))?;
            Ok(fd)
        }
        Err(Errno::EXIST) => match open_dir(parent, comp) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOTDIR) => Err(ConnectorError::ParentIsFile(comp.to_owned())),
            Err(e) => Err(map_lookup(e, comp)),
        },
        Err(e) => Err(ConnectorError::from_errno(e, format!("mkdir {comp}"))),
    }
}

/// Nanoseconds since the epoch of a stat's mtime.
pub fn mtime_ns(st: &Stat) -> i128 {
    i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec)
}
