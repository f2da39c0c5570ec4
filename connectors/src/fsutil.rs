//! Small, safe wrappers over the syscalls the connector uses, each resolving beneath a
//! directory fd without following symlinks.

use crate::error::{ConnectorError, Ctx, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, XattrFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};

/// Resolution used for every client-derived path: stay beneath the directory, never follow a
/// symlink (in any component).
pub const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

// Cached-only mode (see [`try_cached`]) and whether a call in it would have blocked.
thread_local! {
    static CACHED_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static WOULD_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` in cached-only mode: every lookup resolves with `RESOLVE_CACHED` (no I/O, no
/// revalidation of a network file system's dentries), reads use `RWF_NOWAIT` (page cache
/// only), metadata kept in the side store is not read, lookups beneath a bucket do not cross
/// into another mount (`RESOLVE_NO_XDEV`), and no work is done in a bucket on a file system
/// that is not local ([`crate::layout::is_local`]). Any such step that would block
/// fails with `EAGAIN`, and then `None` is returned: the caller runs `f` again where blocking
/// is allowed (the I/O pool). `f` must be free of side effects, since it may run twice. This is
/// how a small GET of a cached file is served on the async thread that parsed the request,
/// without a hand-off to another thread and back.
pub fn try_cached<T>(f: impl FnOnce() -> Result<T>) -> Option<Result<T>> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CACHED_ONLY.set(false);
        }
    }
    WOULD_BLOCK.set(false);
    CACHED_ONLY.set(true);
    let r = {
        let _reset = Reset;
        f()
    };
    (!WOULD_BLOCK.replace(false)).then_some(r)
}

/// Whether this thread is in [`try_cached`]'s cached-only mode.
pub fn cached_only() -> bool {
    CACHED_ONLY.get()
}

/// In cached-only mode: note that the current step would block, and return the error to
/// unwind with (`EAGAIN`). Outside it, `None`.
pub fn would_block() -> Option<Errno> {
    cached_only().then(|| {
        WOULD_BLOCK.set(true);
        Errno::AGAIN
    })
}

/// `openat2` with [`RESOLVE`]. In cached-only mode also `RESOLVE_NO_XDEV`: a mount inside a
/// bucket may be a network file system, so crossing one gives way to the pool (which resolves
/// it, or refuses an escape, as always).
fn openat2_beneath(dir: impl AsFd, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let resolve = if cached_only() { RESOLVE | ResolveFlags::NO_XDEV } else { RESOLVE };
    openat2_with(dir, rel, flags, resolve)
}

/// `openat2` with `resolve` (plus `RESOLVE_CACHED` in cached-only mode, where `EAGAIN`, or
/// `EXDEV` from a mount crossing, marks the attempt as one that would block).
pub fn openat2_with(
    dir: impl AsFd,
    rel: impl rustix::path::Arg,
    flags: OFlags,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    if !cached_only() {
        return rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve);
    }
    rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve | ResolveFlags::CACHED).map_err(|e| match e {
        Errno::AGAIN | Errno::XDEV => would_block().unwrap_or(e),
        e => e,
    })
}

/// Read `buf.len()` bytes at `offset`, or fewer at the end of the file (the count read is
/// returned). In cached-only mode only what is in the page cache is read (`RWF_NOWAIT`); a
/// page that is not, or a file system without that flag, makes the attempt one that would block.
pub fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        let n = if cached_only() {
            let mut io = [std::io::IoSliceMut::new(&mut buf[got..])];
            match rustix::io::preadv2(file, &mut io, offset + got as u64, rustix::io::ReadWriteFlags::NOWAIT) {
                Ok(n) => n,
                Err(Errno::AGAIN) | Err(Errno::OPNOTSUPP) | Err(Errno::INVAL) => {
                    return Err(ConnectorError::from_errno(would_block().unwrap_or(Errno::AGAIN), "read"));
                }
                Err(e) => return Err(ConnectorError::from_errno(e, "read")),
            }
        } else {
            file.read_at(&mut buf[got..], offset + got as u64)?
        };
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Mode for new directories (the umask applies).
pub const DIR_MODE: u32 = 0o755;
/// Mode for new files (the umask applies).
pub const FILE_MODE: u32 = 0o644;

/// Open a directory beneath `dir`.
pub fn open_dir(dir: impl AsFd, rel: &str) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    openat2_beneath(dir, rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC)
}

/// Open a path beneath `dir` with `O_PATH` (no side effects on devices or FIFOs) and stat it.
pub fn stat_beneath(dir: impl AsFd, rel: &str) -> rustix::io::Result<Stat> {
    let fd = openat2_beneath(dir, rel, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
    rustix::fs::fstat(fd)
}

/// Open a regular file beneath `dir` for reading; anything else is refused.
pub fn open_regular(dir: impl AsFd + Copy, rel: &str) -> Result<(std::fs::File, Stat)> {
    // The type is checked on an O_PATH descriptor first, so opening a FIFO or a device has no
    // side effect; the file opened next must be the one checked. A key replaced in between (a
    // PUT renaming its new version over the key) is looked up again: a GET racing an
    // overwrite gets one version or the other, not an error.
    let mut tries = 0;
    loop {
        let st = stat_beneath(dir, rel).map_err(|e| map_lookup(e, rel))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => return Err(ConnectorError::NotFound(format!("{rel} is a directory"))),
            _ => return Err(ConnectorError::NotRegularFile(rel.to_owned())),
        }
        let fd = openat2_beneath(dir, rel, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC)
            .map_err(|e| map_lookup(e, rel))?;
        let st2 = rustix::fs::fstat(&fd).ctx(|| format!("fstat {rel}"))?;
        if st2.st_ino == st.st_ino && st2.st_dev == st.st_dev {
            return Ok((std::fs::File::from(fd), st2));
        }
        tries += 1;
        if tries == 8 {
            return Err(ConnectorError::Busy(format!("{rel} changed while opening, {tries} times")));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("strait-fsutil-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        dir
    }

    /// Write back and drop a file's pages from the page cache.
    fn evict(path: &std::path::Path) {
        let f = std::fs::File::open(path).unwrap();
        f.sync_all().unwrap();
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }

    #[test]
    fn cached_only_mode_serves_hot_files_and_gives_way_on_cold_pages() {
        let dir = scratch("cached");
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("sub/f"), &data).unwrap();
        let root = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let read = || -> Result<Vec<u8>> {
            let (f, st) = open_regular(&root, "sub/f")?;
            let mut buf = vec![0u8; st.st_size as usize];
            let n = read_full_at(&f, &mut buf, 0)?;
            buf.truncate(n);
            Ok(buf)
        };
        // Just written: the dentries and pages are cached, so it completes in cached-only mode.
        assert_eq!(try_cached(read).expect("served from the caches").unwrap(), data);
        // A missing key answers from the (negative) dentry cache or gives way; never a wrong answer.
        if let Some(r) = try_cached(|| open_regular(&root, "sub/missing")) {
            assert!(matches!(r, Err(ConnectorError::NotFound(_))), "{:?}", r.map(|_| ()));
        }
        let local = crate::layout::is_local(&root);
        if local && rustix::fs::fstatfs(&root).unwrap().f_type != 0x0102_1994 {
            // Pages not in memory: the read would wait for the device, so the attempt gives way…
            // (fadvise cannot drop pages still in another CPU's LRU batch: retry until it did.)
            let gave_way = (0..50).any(|_| {
                evict(&dir.join("sub/f"));
                std::thread::sleep(std::time::Duration::from_millis(20));
                try_cached(read).is_none()
            });
            assert!(gave_way, "a cold read must not run in cached-only mode");
        }
        assert!(!cached_only(), "the mode ends with the attempt");
        // …and the same work outside the mode reads the file.
        assert_eq!(read().unwrap(), data);
        assert_eq!(try_cached(read).expect("hot again").unwrap(), data);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cached_only_lookups_do_not_cross_mounts() {
        let dir = scratch("xdev");
        let mnt = dir.join("sub");
        // A mount inside the bucket (tmpfs stands in for a network file system); needs root.
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            std::fs::write(mnt.join("f"), b"on another mount").unwrap();
            let root = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
            let open = || open_regular(&root, "sub/f").map(|(_, st)| st.st_size);
            assert!(try_cached(open).is_none(), "a lookup crossing a mount must give way to the pool");
            assert_eq!(open().unwrap(), 16, "outside cached-only mode the mount is crossed");
            let _ = std::process::Command::new("umount").arg(&mnt).status();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_mode_ends_when_the_work_panics() {
        let r = std::panic::catch_unwind(|| try_cached(|| -> Result<()> { panic!("boom") }));
        assert!(r.is_err());
        assert!(!cached_only());
        assert!(would_block().is_none());
    }

    #[test]
    fn local_file_systems_are_told_from_others() {
        let proc_fd = rustix::fs::open("/proc", OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert!(!crate::layout::is_local(&proc_fd), "procfs is not a local data file system");
        let tmp = rustix::fs::open(std::env::temp_dir(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let t = rustix::fs::fstatfs(&tmp).unwrap().f_type;
        if [0xEF53, 0x5846_5342, 0x0102_1994].contains(&t) {
            assert!(crate::layout::is_local(&tmp), "ext4, XFS and tmpfs are local");
        }
    }
}
