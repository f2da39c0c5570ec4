//! What the file system under an object is: its type (Lustre, GPFS/Storage Scale, other POSIX)
//! and the stripe layout of the file, for clients that read published files directly (the MPI
//! shim's direct path aligns its file domains to stripes, as ROMIO does with `striping_unit`).
//!
//! Lustre exposes a file's layout as the `lustre.lov` xattr (a `lov_user_md` v1 or v3: magic,
//! pattern, object id, stripe size, stripe count); GPFS and other file systems expose only the
//! preferred I/O size (`st_blksize`), which is reported as a one-stripe layout.

use rustix::fs::Stat;
use std::os::fd::AsFd;

/// `statfs.f_type` of Lustre clients (`LL_SUPER_MAGIC`).
pub const LUSTRE_SUPER_MAGIC: i64 = 0x0BD0_0BD0;
/// `statfs.f_type` of IBM Storage Scale (GPFS).
pub const GPFS_SUPER_MAGIC: i64 = 0x4750_4653;

/// `lov_user_md` magics (lustre/include/uapi/linux/lustre/lustre_user.h).
const LOV_USER_MAGIC_V1: u32 = 0x0BD1_0BD0;
const LOV_USER_MAGIC_V3: u32 = 0x0BD3_0BD0;

/// The layout of one file as a direct reader needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    /// `lustre`, `gpfs` or `posix`.
    pub fs_type: &'static str,
    /// Stripe size in bytes (Lustre), else the preferred I/O size.
    pub stripe_size: u64,
    /// Number of stripes (object storage targets); 1 where the file system has no striping.
    pub stripe_count: u32,
    /// Where the figures come from: `lustre.lov` or `st_blksize`.
    pub source: &'static str,
}

/// The file system type of an open file.
pub fn fs_type(fd: impl AsFd) -> &'static str {
    match rustix::fs::fstatfs(fd) {
        // `f_type` is a `c_long` (i64 on the 64-bit targets Strait supports).
        Ok(s) => match s.f_type {
            LUSTRE_SUPER_MAGIC => "lustre",
            GPFS_SUPER_MAGIC => "gpfs",
            _ => "posix",
        },
        Err(_) => "posix",
    }
}

/// `statfs.f_type` of the local file systems whose cached lookups, opens, xattr reads and
/// page-cache reads complete without I/O or a server round trip: ext2/3/4, XFS, Btrfs, tmpfs,
/// overlayfs, ZFS, F2FS. Network and parallel file systems (Lustre, GPFS, NFS, ...) are not
/// among them: opening a file there asks a server, cached dentry or not.
const LOCAL_MAGICS: [i64; 7] = [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0x794C_7630, 0x2FC1_2FC1, 0xF2F5_2010];

/// Whether `fd` is on a local file system (see [`LOCAL_MAGICS`]).
pub fn is_local(fd: impl AsFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|s| LOCAL_MAGICS.contains(&s.f_type))
}

/// Parse a `lov_user_md` (v1 or v3; little-endian as the Lustre client stores it):
/// `u32 magic, u32 pattern, u64 oi_id, u64 oi_seq, u32 stripe_size, u16 stripe_count, ...`.
pub fn parse_lov(b: &[u8]) -> Option<(u64, u32)> {
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let magic = u32_at(0)?;
    if magic != LOV_USER_MAGIC_V1 && magic != LOV_USER_MAGIC_V3 {
        return None;
    }
    let size = u32_at(24)?;
    let count = b.get(28..30).map(|s| u16::from_le_bytes([s[0], s[1]]))?;
    (size > 0).then_some((u64::from(size), u32::from(count.max(1))))
}

/// The layout of an open regular file.
pub fn of(fd: impl AsFd, st: &Stat) -> Layout {
    let fs = fs_type(&fd);
    if fs == "lustre" {
        if let Ok(Some(b)) = crate::fsutil::get_xattr(&fd, "lustre.lov") {
            if let Some((stripe_size, stripe_count)) = parse_lov(&b) {
                return Layout { fs_type: fs, stripe_size, stripe_count, source: "lustre.lov" };
            }
        }
    }
    let blk = u64::try_from(st.st_blksize).unwrap_or(0).max(4096);
    Layout { fs_type: fs, stripe_size: blk, stripe_count: 1, source: "st_blksize" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lov_v1_and_v3() {
        let mut b = vec![0u8; 32];
        b[0..4].copy_from_slice(&LOV_USER_MAGIC_V1.to_le_bytes());
        b[24..28].copy_from_slice(&(4u32 << 20).to_le_bytes());
        b[28..30].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(parse_lov(&b), Some((4 << 20, 8)));
        b[0..4].copy_from_slice(&LOV_USER_MAGIC_V3.to_le_bytes());
        assert_eq!(parse_lov(&b), Some((4 << 20, 8)));
        b[0..4].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        assert_eq!(parse_lov(&b), None);
        assert_eq!(parse_lov(&b[..10]), None);
    }

    #[test]
    fn local_file_is_posix_with_block_size() {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        let l = of(&f, &st);
        assert_eq!(l.stripe_count, 1);
        assert!(l.stripe_size >= 4096);
        assert_eq!(l.source, "st_blksize");
    }
}
