//! Per-request POSIX identity: the file-system work of a tenant's request runs with the
//! thread's credentials switched to the tenant's uid, gid and supplementary groups, so the kernel
//! checks every permission and new files and directories get the tenant's owner.
//!
//! Linux credentials belong to a thread. glibc's `setresuid` changes every thread of the process
//! (it signals each one); the raw system calls rustix makes change only the calling thread. The
//! switch is made on a blocking-pool thread around one synchronous closure ([`run_as`]) and undone
//! before that thread runs anything else, by a guard that also runs on unwinding: a switched
//! identity is never held across an `.await`, and no other request ever runs under it.
//!
//! Real and saved ids stay those of the process (root), only the effective ids change. The
//! kernel clears the effective capabilities when the effective uid leaves 0 (so
//! `CAP_DAC_OVERRIDE` and `CAP_FOWNER` no longer apply) and restores them from the permitted set
//! when it returns to 0; file permission checks use the file-system uid, which follows the
//! effective uid.
//!
//! Work that must keep the process's identity while a closure runs switched (the metadata
//! store's files in the state directory) goes through [`privileged`].

use rustix::process::{Gid, Uid};
use std::cell::RefCell;
use std::sync::OnceLock;

/// A POSIX identity: uid, primary gid, supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PosixId {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub groups: Vec<u32>,
}

impl std::fmt::Display for PosixId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} gid {}", self.uid, self.gid)?;
        if !self.groups.is_empty() {
            let g: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            write!(f, " groups {}", g.join(","))?;
        }
        Ok(())
    }
}

/// The process's own credentials, captured once (what a thread returns to).
struct Process {
    ruid: Uid,
    euid: Uid,
    rgid: Gid,
    egid: Gid,
    groups: Vec<Gid>,
}

fn process() -> &'static Process {
    static P: OnceLock<Process> = OnceLock::new();
    P.get_or_init(|| Process {
        ruid: rustix::process::getuid(),
        euid: rustix::process::geteuid(),
        rgid: rustix::process::getgid(),
        egid: rustix::process::getegid(),
        groups: rustix::process::getgroups().unwrap_or_default(),
    })
}

thread_local! {
    /// The identity this thread runs as, if switched.
    static CURRENT: RefCell<Option<PosixId>> = const { RefCell::new(None) };
}

fn switch_to(id: &PosixId) -> rustix::io::Result<()> {
    let p = process();
    let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    rustix::thread::set_thread_groups(&groups)?;
    rustix::thread::set_thread_res_gid(p.rgid, Gid::from_raw(id.gid), p.egid)?;
    rustix::thread::set_thread_res_uid(p.ruid, Uid::from_raw(id.uid), p.euid)?;
    Ok(())
}

fn switch_back() -> rustix::io::Result<()> {
    let p = process();
    // The uid first: returning the effective uid to 0 gives back the capabilities needed to
    // change the gid and the groups.
    rustix::thread::set_thread_res_uid(p.ruid, p.euid, p.euid)?;
    rustix::thread::set_thread_res_gid(p.rgid, p.egid, p.egid)?;
    rustix::thread::set_thread_groups(&p.groups)?;
    Ok(())
}

/// Undoes a switch when dropped. Failing to switch back would leave a pool thread running
/// other requests under a tenant's identity (or denied everything), so it aborts the process.
struct Restore {
    previous: Option<PosixId>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let back = switch_back().and_then(|()| match &self.previous {
            Some(prev) => switch_to(prev),
            None => Ok(()),
        });
        if let Err(e) = back {
            eprintln!("strait: cannot restore the thread's identity: {e}; aborting");
            std::process::abort();
        }
        CURRENT.with(|c| *c.borrow_mut() = self.previous.take());
    }
}

/// Run `f` on this thread as `id`, and switch back. Panics if the switch is refused (the
/// gateway checks [`available`] before it serves a request under an identity), so `f` never
/// runs under the wrong identity.
pub fn run_as<T>(id: &PosixId, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.borrow().clone());
    if previous.as_ref() == Some(id) {
        return f();
    }
    if previous.is_some() {
        if let Err(e) = switch_back() {
            eprintln!("strait: cannot restore the thread's identity: {e}; aborting");
            std::process::abort();
        }
    }
    let guard = Restore { previous };
    if let Err(e) = switch_to(id) {
        // `guard` restores the previous state.
        panic!("cannot switch the thread to {id}: {e}");
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(id.clone()));
    let r = f();
    drop(guard);
    r
}

/// Run `f` with the process's own identity, even inside [`run_as`] (for the gateway's own
/// files: the metadata store, journals).
pub fn privileged<T>(f: impl FnOnce() -> T) -> T {
    let Some(id) = CURRENT.with(|c| c.borrow().clone()) else { return f() };
    if let Err(e) = switch_back() {
        eprintln!("strait: cannot restore the thread's identity: {e}; aborting");
        std::process::abort();
    }
    CURRENT.with(|c| *c.borrow_mut() = None);
    struct Again(PosixId);
    impl Drop for Again {
        fn drop(&mut self) {
            if let Err(e) = switch_to(&self.0) {
                eprintln!("strait: cannot switch the thread back to {}: {e}; aborting", self.0);
                std::process::abort();
            }
            CURRENT.with(|c| *c.borrow_mut() = Some(self.0.clone()));
        }
    }
    let _again = Again(id);
    f()
}

/// The identity this thread runs as (`None`: the process's own).
pub fn current() -> Option<PosixId> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether this process can switch identities: probed once, on a thread of its own, by
/// switching to `nobody` (65534) and back.
pub fn available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            std::thread::spawn(|| {
                let nobody = PosixId { uid: 65534, gid: 65534, groups: vec![] };
                switch_to(&nobody).map_err(|e| format!("switching to uid 65534 failed: {e} (run as root)"))?;
                let now = rustix::process::geteuid().as_raw();
                switch_back().map_err(|e| format!("switching back failed: {e}"))?;
                if now != 65534 {
                    return Err(format!("effective uid after the switch is {now}, not 65534"));
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err("probe thread panicked".into()))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn switch_is_per_thread_and_undone() {
        if !root() || available().is_err() {
            eprintln!("skipped: not root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("strait-ident-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = PosixId { uid: 4321, gid: 4322, groups: vec![4323] };
        let (inside, other) = std::thread::scope(|s| {
            let other = s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                rustix::process::geteuid().as_raw()
            });
            let inside = run_as(&id, || {
                let f = dir.join("made");
                std::fs::write(&f, b"x").unwrap_err(); // the directory is root's, 0755
                (
                    rustix::process::geteuid().as_raw(),
                    rustix::process::getegid().as_raw(),
                    privileged(|| rustix::process::geteuid().as_raw()),
                    rustix::process::geteuid().as_raw(),
                )
            });
            (inside, other.join().unwrap())
        });
        assert_eq!(inside, (4321, 4322, 0, 4321));
        assert_eq!(other, 0, "another thread kept the process identity");
        assert_eq!(rustix::process::geteuid().as_raw(), 0);
        assert_eq!(current(), None);
        // Files made as the identity belong to it.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        run_as(&id, || std::fs::write(dir.join("mine"), b"x").unwrap());
        let md = std::fs::metadata(dir.join("mine")).unwrap();
        assert_eq!((std::os::unix::fs::MetadataExt::uid(&md), std::os::unix::fs::MetadataExt::gid(&md)), (4321, 4322));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn panics_restore_the_thread() {
        if !root() || available().is_err() {
            return;
        }
        let id = PosixId { uid: 4400, gid: 4400, groups: vec![] };
        let r = std::panic::catch_unwind(|| run_as(&id, || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(rustix::process::geteuid().as_raw(), 0);
        assert_eq!(current(), None);
    }
}
