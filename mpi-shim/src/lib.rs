//! Strait's MPI shim, Rust half: the I/O core ([`core`]) behind a C ABI (`strait_core_*`,
//! declared in `include/strait_core.h`). The MPI half is C (`src/strait_mpi.c`), compiled with the
//! user's own `mpicc`, because the MPI ABI differs between Open MPI and MPICH; it links this
//! static library. Every function here is non-blocking with respect to MPI and thread-safe.
//!
//! This file is the FFI layer: it turns C pointers into Rust values and back. Every `unsafe`
//! block states what the C caller guarantees (the contract is in the header).

pub mod core;
pub mod plain;

use crate::core::{Client, ClientConfig, Code, Error};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(e: &Error) -> c_int {
    let msg = CString::new(e.message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = msg);
    e.code as c_int
}

fn fail(code: Code, msg: impl Into<String>) -> c_int {
    set_error(&Error::new(code, msg))
}

/// A C string argument: `None` for NULL, an error for invalid UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the returned borrow.
unsafe fn opt_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and NUL-terminated, valid for 'a (the caller's contract above).
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|_| Error::new(Code::Arg, format!("{what}: not UTF-8")))
}

/// # Safety
/// As [`opt_str`]; NULL is an error.
unsafe fn req_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    // SAFETY: forwarded contract.
    unsafe { opt_str(p, what) }?.ok_or_else(|| Error::new(Code::Arg, format!("{what}: NULL")))
}

/// Copy `s` into a C buffer of `cap` bytes with a terminating NUL; an error if it does not fit.
///
/// # Safety
/// `out` points to `cap` writable bytes.
unsafe fn put_str(s: &str, out: *mut c_char, cap: usize, what: &str) -> Result<(), Error> {
    if out.is_null() || s.len() + 1 > cap {
        return Err(Error::new(Code::Arg, format!("{what}: {} bytes do not fit in {cap}", s.len() + 1)));
    }
    // SAFETY: `out` has `cap` ≥ len+1 writable bytes (checked above and the caller's contract);
    // the source is a live &str that cannot overlap a caller-owned buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), out.cast::<u8>(), s.len());
        *out.add(s.len()) = 0;
    }
    Ok(())
}

/// The message of the last failed `strait_core_*` call on this thread ("" if none). Valid until
/// the next failing call on the same thread.
#[no_mangle]
pub extern "C" fn strait_core_last_error() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// Create a client. NULL `region` means `us-east-1`, NULL `session_token`/`ca_file` none.
/// Returns NULL on error (see `strait_core_last_error`).
///
/// # Safety
/// Every non-NULL pointer is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn strait_core_new(
    endpoint: *const c_char,
    access_key: *const c_char,
    secret_key: *const c_char,
    session_token: *const c_char,
    region: *const c_char,
    ca_file: *const c_char,
) -> *mut Client {
    let cfg = (|| -> Result<ClientConfig, Error> {
        // SAFETY: the caller passes NUL-terminated strings or NULL (contract above).
        unsafe {
            Ok(ClientConfig {
                endpoint: req_str(endpoint, "endpoint")?.to_owned(),
                access_key: req_str(access_key, "access key")?.to_owned(),
                secret_key: req_str(secret_key, "secret key")?.to_owned(),
                session_token: opt_str(session_token, "session token")?.filter(|s| !s.is_empty()).map(str::to_owned),
                region: opt_str(region, "region")?.filter(|s| !s.is_empty()).unwrap_or("us-east-1").to_owned(),
                ca_file: opt_str(ca_file, "CA file")?.filter(|s| !s.is_empty()).map(str::to_owned),
            })
        }
    })();
    match cfg.and_then(Client::new) {
        Ok(c) => Box::into_raw(Box::new(c)),
        Err(e) => {
            set_error(&e);
            std::ptr::null_mut()
        }
    }
}

/// Free a client (NULL is ignored).
///
/// # Safety
/// `c` is NULL or a pointer from `strait_core_new` not yet freed, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn strait_core_free(c: *mut Client) {
    if !c.is_null() {
        // SAFETY: `c` came from Box::into_raw in strait_core_new and is freed once (contract).
        drop(unsafe { Box::from_raw(c) });
    }
}

/// HTTP requests this client has sent.
///
/// # Safety
/// `c` is a live client.
#[no_mangle]
pub unsafe extern "C" fn strait_core_requests(c: *const Client) -> u64 {
    // SAFETY: live client (contract); only an atomic is read.
    unsafe { c.as_ref() }.map_or(0, Client::requests)
}

/// One object of a lease, as `struct strait_core_lease` in `include/strait_core.h`.
#[repr(C)]
pub struct CLease {
    /// The HTTP status a GET would answer (200 readable).
    pub status: i32,
    /// `STRAIT_ERR_*` for that status (0 when readable).
    pub code: i32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub stripe_size: u64,
    pub stripe_count: u32,
    /// Whether `path` holds a file-system path (direct reading possible).
    pub has_path: i32,
    pub etag: [c_char; 128],
    pub fs_type: [c_char; 16],
    pub s3_code: [c_char; 64],
    pub path: [c_char; 4096],
}

fn fill(dst: &mut [c_char], s: &str) -> bool {
    if s.len() >= dst.len() {
        return false;
    }
    for (d, b) in dst.iter_mut().zip(s.bytes()) {
        *d = b as c_char;
    }
    dst[s.len()] = 0;
    true
}

/// Lease `n` objects in one request. `out` receives `n` entries; `expires_unix` and `direct`
/// (whether the gateway hands out paths) are written when non-NULL. Returns 0 or a code of the
/// request as a whole (per-object failures are in `out[i].code`).
///
/// # Safety
/// `c` is a live client; `buckets` and `keys` point to `n` NUL-terminated strings each; `out`
/// points to `n` writable `struct strait_core_lease`.
#[no_mangle]
pub unsafe extern "C" fn strait_core_lease(
    c: *const Client,
    n: c_int,
    buckets: *const *const c_char,
    keys: *const *const c_char,
    out: *mut CLease,
    expires_unix: *mut i64,
    direct: *mut c_int,
) -> c_int {
    // SAFETY: live client (contract).
    let Some(c) = (unsafe { c.as_ref() }) else { return fail(Code::Arg, "NULL client") };
    let Ok(n) = usize::try_from(n) else { return fail(Code::Arg, "negative count") };
    if n == 0 || buckets.is_null() || keys.is_null() || out.is_null() {
        return fail(Code::Arg, "lease: no objects");
    }
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: `buckets` and `keys` have `n` entries, each a NUL-terminated string (contract).
        let pair = unsafe { (req_str(*buckets.add(i), "bucket"), req_str(*keys.add(i), "key")) };
        match pair {
            (Ok(b), Ok(k)) => names.push((b.to_owned(), k.to_owned())),
            (Err(e), _) | (_, Err(e)) => return set_error(&e),
        }
    }
    let answer = match c.lease(&names) {
        Ok(a) => a,
        Err(e) => return set_error(&e),
    };
    // SAFETY: `out` points to `n` writable entries (contract), not aliased during this call.
    let out = unsafe { std::slice::from_raw_parts_mut(out, n) };
    for (o, l) in out.iter_mut().zip(&answer.leases) {
        o.status = i32::from(l.status);
        o.code = if l.status == 200 { 0 } else { core::code_of(l.status, l.code.as_deref().unwrap_or("")) as i32 };
        o.size = l.size;
        o.dev = l.dev;
        o.ino = l.ino;
        o.mtime_ns = l.mtime_ns;
        o.stripe_size = l.stripe_size;
        o.stripe_count = l.stripe_count;
        let path = l.path.as_deref().unwrap_or("");
        o.has_path = i32::from(!path.is_empty() && fill(&mut o.path, path));
        if o.has_path == 0 {
            o.path[0] = 0;
        }
        fill(&mut o.etag, l.etag.as_deref().unwrap_or(""));
        fill(&mut o.fs_type, l.fs_type.as_deref().unwrap_or(""));
        fill(&mut o.s3_code, l.code.as_deref().unwrap_or(""));
    }
    if !expires_unix.is_null() {
        // SAFETY: non-NULL and writable (contract).
        unsafe { *expires_unix = answer.expires_unix };
    }
    if !direct.is_null() {
        // SAFETY: non-NULL and writable (contract).
        unsafe { *direct = c_int::from(answer.direct) };
    }
    0
}

/// Read `n` ranges of one object with ranged GETs, `streams` in flight, `If-Match: if_match`
/// when non-NULL. Range `i` is `lengths[i]` bytes at `offsets[i]` into `bufs[i]`; every range
/// must lie inside the object. Returns 0 or the first failure's code.
///
/// # Safety
/// `c` is live; `bucket`, `key` (and `if_match` if non-NULL) are NUL-terminated; `offsets`,
/// `lengths` and `bufs` have `n` entries; `bufs[i]` points to `lengths[i]` writable bytes and
/// no two ranges' buffers overlap.
#[no_mangle]
pub unsafe extern "C" fn strait_core_get_ranges(
    c: *const Client,
    bucket: *const c_char,
    key: *const c_char,
    if_match: *const c_char,
    n: c_int,
    offsets: *const u64,
    lengths: *const u64,
    bufs: *const *mut c_void,
    streams: c_int,
) -> c_int {
    // SAFETY: live client (contract).
    let Some(c) = (unsafe { c.as_ref() }) else { return fail(Code::Arg, "NULL client") };
    // SAFETY: NUL-terminated strings (contract).
    let names = unsafe { (req_str(bucket, "bucket"), req_str(key, "key"), opt_str(if_match, "If-Match")) };
    let (b, k, m) = match names {
        (Ok(b), Ok(k), Ok(m)) => (b, k, m),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return set_error(&e),
    };
    let Ok(n) = usize::try_from(n) else { return fail(Code::Arg, "negative count") };
    if n == 0 {
        return 0;
    }
    if offsets.is_null() || lengths.is_null() || bufs.is_null() {
        return fail(Code::Arg, "get_ranges: NULL array");
    }
    let mut ranges = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the three arrays have `n` entries (contract).
        let (off, len, p) = unsafe { (*offsets.add(i), *lengths.add(i), *bufs.add(i)) };
        let Ok(len) = usize::try_from(len) else { return fail(Code::Arg, "range too long") };
        if len == 0 {
            continue;
        }
        if p.is_null() {
            return fail(Code::Arg, "get_ranges: NULL buffer");
        }
        // SAFETY: `p` points to `len` writable bytes, disjoint from every other range's buffer
        // (contract), so the mutable slices never alias.
        ranges.push((off, unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) }));
    }
    match c.get_ranges(b, k, m, ranges, usize::try_from(streams).unwrap_or(1)) {
        Ok(()) => 0,
        Err(e) => set_error(&e),
    }
}

/// Start a multipart upload; its id goes to `id_out` (`cap` bytes).
///
/// # Safety
/// `c` live; strings NUL-terminated; `id_out` has `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn strait_core_mpu_create(
    c: *const Client,
    bucket: *const c_char,
    key: *const c_char,
    id_out: *mut c_char,
    cap: usize,
) -> c_int {
    // SAFETY: forwarded contract for every pointer.
    let r = unsafe {
        (|| -> Result<(), Error> {
            let c = c.as_ref().ok_or_else(|| Error::new(Code::Arg, "NULL client"))?;
            let id = c.mpu_create(req_str(bucket, "bucket")?, req_str(key, "key")?)?;
            put_str(&id, id_out, cap, "upload id")
        })()
    };
    r.map_or_else(|e| set_error(&e), |()| 0)
}

/// Upload part `part` (1-based) from `len` bytes at `data`; its ETag goes to `etag_out`.
///
/// # Safety
/// `c` live; strings NUL-terminated; `data` has `len` readable bytes; `etag_out` `cap` writable.
#[no_mangle]
pub unsafe extern "C" fn strait_core_mpu_upload(
    c: *const Client,
    bucket: *const c_char,
    key: *const c_char,
    upload_id: *const c_char,
    part: u32,
    data: *const c_void,
    len: u64,
    etag_out: *mut c_char,
    cap: usize,
) -> c_int {
    // SAFETY: forwarded contract for every pointer; `data` has `len` readable bytes.
    let r = unsafe {
        (|| -> Result<(), Error> {
            let c = c.as_ref().ok_or_else(|| Error::new(Code::Arg, "NULL client"))?;
            let len = usize::try_from(len).map_err(|_| Error::new(Code::Arg, "part too long"))?;
            let body = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data.cast::<u8>(), len) };
            let etag =
                c.mpu_upload(req_str(bucket, "bucket")?, req_str(key, "key")?, req_str(upload_id, "id")?, part, body)?;
            put_str(&etag, etag_out, cap, "ETag")
        })()
    };
    r.map_or_else(|e| set_error(&e), |()| 0)
}

/// Complete an upload from `n` parts (numbers ascending, with their ETags); the object's ETag
/// goes to `etag_out`.
///
/// # Safety
/// `c` live; strings NUL-terminated; `parts` and `etags` have `n` entries; `etag_out` `cap`.
#[no_mangle]
pub unsafe extern "C" fn strait_core_mpu_complete(
    c: *const Client,
    bucket: *const c_char,
    key: *const c_char,
    upload_id: *const c_char,
    n: c_int,
    parts: *const u32,
    etags: *const *const c_char,
    etag_out: *mut c_char,
    cap: usize,
) -> c_int {
    // SAFETY: forwarded contract for every pointer; the arrays have `n` entries.
    let r = unsafe {
        (|| -> Result<(), Error> {
            let c = c.as_ref().ok_or_else(|| Error::new(Code::Arg, "NULL client"))?;
            let n = usize::try_from(n).map_err(|_| Error::new(Code::Arg, "negative count"))?;
            let mut list = Vec::with_capacity(n);
            for i in 0..n {
                list.push((*parts.add(i), req_str(*etags.add(i), "ETag")?.to_owned()));
            }
            let b = req_str(bucket, "bucket")?;
            let etag = c.mpu_complete(b, req_str(key, "key")?, req_str(upload_id, "id")?, &list)?;
            put_str(&etag, etag_out, cap, "ETag")
        })()
    };
    r.map_or_else(|e| set_error(&e), |()| 0)
}

/// Abort an upload.
///
/// # Safety
/// `c` live; strings NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn strait_core_mpu_abort(
    c: *const Client,
    bucket: *const c_char,
    key: *const c_char,
    upload_id: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract for every pointer.
    let r = unsafe {
        (|| -> Result<(), Error> {
            let c = c.as_ref().ok_or_else(|| Error::new(Code::Arg, "NULL client"))?;
            c.mpu_abort(req_str(bucket, "bucket")?, req_str(key, "key")?, req_str(upload_id, "id")?)
        })()
    };
    r.map_or_else(|e| set_error(&e), |()| 0)
}

/// Split `s3://bucket/key` into `bucket` (`bcap` bytes) and `key` (`kcap` bytes).
///
/// # Safety
/// `name` NUL-terminated; `bucket` and `key` have `bcap` and `kcap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn strait_core_parse_name(
    name: *const c_char,
    bucket: *mut c_char,
    bcap: usize,
    key: *mut c_char,
    kcap: usize,
) -> c_int {
    // SAFETY: forwarded contract for every pointer.
    let r = unsafe {
        (|| -> Result<(), Error> {
            let (b, k) = core::parse_name(req_str(name, "name")?)?;
            put_str(&b, bucket, bcap, "bucket")?;
            put_str(&k, key, kcap, "key")
        })()
    };
    r.map_or_else(|e| set_error(&e), |()| 0)
}

/// A read started by [`strait_core_get_ranges_start`], finished by [`strait_core_wait`].
pub struct Pending {
    thread: std::thread::JoinHandle<Result<(), Error>>,
}

/// The caller's client and buffers, moved to the reading thread.
struct Job {
    client: *const Client,
    bucket: String,
    key: String,
    if_match: Option<String>,
    /// (offset, buffer address, length)
    ranges: Vec<(u64, usize, usize)>,
    streams: usize,
}

// SAFETY: the pointers in a Job are only used by the one thread it is moved to, and the caller
// of strait_core_get_ranges_start guarantees the client and every buffer stay valid and untouched
// until strait_core_wait returns (the header's contract); Client itself is Sync.
unsafe impl Send for Job {}

impl Job {
    fn run(self) -> Result<(), Error> {
        // SAFETY: see `unsafe impl Send for Job`: the client outlives this thread (joined by
        // strait_core_wait before the caller may free it).
        let c = unsafe { &*self.client };
        let ranges = self
            .ranges
            .iter()
            // SAFETY: each buffer is `len` writable bytes, disjoint from the others, and not
            // accessed by the caller until strait_core_wait (the start function's contract).
            .map(|&(off, p, len)| (off, unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) }))
            .collect();
        c.get_ranges(&self.bucket, &self.key, self.if_match.as_deref(), ranges, self.streams)
    }
}

/// Start the reads of [`strait_core_get_ranges`] on a background thread and return at once.
/// Returns NULL on a bad argument (see `strait_core_last_error`); otherwise the handle must be
/// passed to `strait_core_wait` exactly once.
///
/// # Safety
/// As `strait_core_get_ranges`, and moreover the client and every buffer stay valid, and the
/// buffers unread and unwritten by the caller, until `strait_core_wait` returns.
#[no_mangle]
pub unsafe extern "C" fn strait_core_get_ranges_start(
    c: *const Client,
    bucket: *const c_char,
    key: *const c_char,
    if_match: *const c_char,
    n: c_int,
    offsets: *const u64,
    lengths: *const u64,
    bufs: *const *mut c_void,
    streams: c_int,
) -> *mut Pending {
    let job = (|| -> Result<Job, Error> {
        if c.is_null() {
            return Err(Error::new(Code::Arg, "NULL client"));
        }
        let n = usize::try_from(n).map_err(|_| Error::new(Code::Arg, "negative count"))?;
        if n > 0 && (offsets.is_null() || lengths.is_null() || bufs.is_null()) {
            return Err(Error::new(Code::Arg, "get_ranges: NULL array"));
        }
        let mut ranges = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: the three arrays have `n` entries (contract).
            let (off, len, p) = unsafe { (*offsets.add(i), *lengths.add(i), *bufs.add(i)) };
            let len = usize::try_from(len).map_err(|_| Error::new(Code::Arg, "range too long"))?;
            if len > 0 && p.is_null() {
                return Err(Error::new(Code::Arg, "get_ranges: NULL buffer"));
            }
            if len > 0 {
                ranges.push((off, p as usize, len));
            }
        }
        // SAFETY: NUL-terminated strings (contract); copied before this call returns.
        let (b, k, m) = unsafe { (req_str(bucket, "bucket")?, req_str(key, "key")?, opt_str(if_match, "If-Match")?) };
        Ok(Job {
            client: c,
            bucket: b.to_owned(),
            key: k.to_owned(),
            if_match: m.map(str::to_owned),
            ranges,
            streams: usize::try_from(streams).unwrap_or(1),
        })
    })();
    match job {
        Ok(job) => match std::thread::Builder::new().name("strait-get".into()).spawn(move || job.run()) {
            Ok(thread) => Box::into_raw(Box::new(Pending { thread })),
            Err(e) => {
                set_error(&Error::new(Code::NoMem, format!("cannot start a reading thread: {e}")));
                std::ptr::null_mut()
            }
        },
        Err(e) => {
            set_error(&e);
            std::ptr::null_mut()
        }
    }
}

/// Wait for a read started by `strait_core_get_ranges_start`; returns its code (message in
/// `strait_core_last_error` on this thread).
///
/// # Safety
/// `p` came from `strait_core_get_ranges_start` and is waited for once.
#[no_mangle]
pub unsafe extern "C" fn strait_core_wait(p: *mut Pending) -> c_int {
    if p.is_null() {
        return fail(Code::Arg, "NULL pending read");
    }
    // SAFETY: `p` came from Box::into_raw in strait_core_get_ranges_start, waited for once.
    let p = unsafe { Box::from_raw(p) };
    match p.thread.join() {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => set_error(&e),
        Err(_) => fail(Code::Http, "the reading thread panicked"),
    }
}
