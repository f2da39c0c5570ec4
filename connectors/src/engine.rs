//! The file I/O engine: reads and writes of object data, submitted from async code.
//!
//! Two implementations, one interface:
//! - **io_uring**: one ring served by a dedicated thread. Requests arrive over a channel; an
//!   eventfd read kept armed on the ring wakes the thread when a request is queued, so the
//!   thread sleeps in one `io_uring_enter` for "a completion or new work". Page-cache hits
//!   complete inline in the kernel; misses go to the kernel's own workers, not to ours.
//! - **threads**: Tokio's blocking pool with `pread`/`pwrite` (the fallback, and the engine of
//!   kernels or sandboxes without io_uring).
//!
//! [`start`] chooses once, at start: `auto` probes io_uring (a ring, a NOP and a read round
//! trip) and falls back to threads if anything fails; `io_uring` makes a failed probe an error;
//! `threads` skips the probe. The choice is logged by the caller and visible in [`kind`].
//!
//! Every request owns its file (an `Arc<File>`) and its buffer until its completion has been
//! reaped, so a caller that gives up (a dropped future: the client went away) can neither close
//! the descriptor under the kernel nor free the memory the kernel writes into.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Which engine to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// io_uring when the probe succeeds, else threads.
    Auto,
    /// io_uring or fail.
    IoUring,
    /// The blocking thread pool.
    Threads,
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(Self::IoUring),
            "threads" => Ok(Self::Threads),
            _ => Err(format!("unknown I/O engine {s:?} (auto, io_uring or threads)")),
        }
    }
}

/// The engine that runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    IoUring,
    Threads,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::IoUring => "io_uring",
            Kind::Threads => "threads",
        }
    }
}

enum Engine {
    Uring(uring::Uring),
    Threads,
}

static ENGINE: OnceLock<Engine> = OnceLock::new();
/// Requests submitted and not completed (the engine's queue depth).
static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// What [`start`] decided: the engine, and why io_uring was not used when it was not.
pub struct Started {
    pub kind: Kind,
    pub fallback_reason: Option<String>,
}

/// Choose and start the engine (once; later calls report the engine already running).
pub fn start(choice: Choice) -> Result<Started, String> {
    if let Some(e) = ENGINE.get() {
        return Ok(Started { kind: kind_of(e), fallback_reason: None });
    }
    let (engine, reason) = match choice {
        Choice::Threads => (Engine::Threads, None),
        Choice::IoUring => (Engine::Uring(uring::Uring::start().map_err(|e| format!("io_uring: {e}"))?), None),
        Choice::Auto => match uring::Uring::start() {
            Ok(u) => (Engine::Uring(u), None),
            Err(e) => (Engine::Threads, Some(e.to_string())),
        },
    };
    let _ = ENGINE.set(engine);
    Ok(Started { kind: kind(), fallback_reason: reason })
}

fn kind_of(e: &Engine) -> Kind {
    match e {
        Engine::Uring(_) => Kind::IoUring,
        Engine::Threads => Kind::Threads,
    }
}

/// The engine in use (threads when [`start`] was never called).
pub fn kind() -> Kind {
    ENGINE.get().map_or(Kind::Threads, kind_of)
}

/// Requests submitted and not yet completed.
pub fn in_flight() -> i64 {
    IN_FLIGHT.load(Relaxed)
}

struct Counted;
impl Counted {
    fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Relaxed);
        Counted
    }
}
impl Drop for Counted {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Relaxed);
    }
}

/// Largest single request (the kernel's read/write limit is a little under 2 GiB).
const REQUEST_BYTES_MAX: usize = 1 << 30;

/// Read up to `len` bytes at `offset`: exactly `len` unless the file ends first.
pub async fn read_at(file: Arc<File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    read_at_on(current(), file, offset, len).await
}

/// The engine started, or threads.
fn current() -> &'static Engine {
    ENGINE.get().unwrap_or(&Engine::Threads)
}

async fn read_at_on(engine: &Engine, file: Arc<File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let len = len.min(REQUEST_BYTES_MAX);
    let _c = Counted::new();
    match engine {
        Engine::Uring(u) => u.submit(uring::Request::read(file, offset, len)).await.map(|(_, b)| b),
        _ => {
            blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = Vec::with_capacity(len);
                // Read into the spare capacity without zeroing it first.
                let mut r = ReadAt { file: &file, pos: offset };
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut r, len as u64), &mut buf)?;
                struct ReadAt<'a> {
                    file: &'a File,
                    pos: u64,
                }
                impl std::io::Read for ReadAt<'_> {
                    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                        let n = self.file.read_at(b, self.pos)?;
                        self.pos += n as u64;
                        Ok(n)
                    }
                }
                Ok(buf)
            })
            .await
        }
    }
}

/// Write all of `buf` at `offset`; the buffer is handed back (emptied) for reuse.
pub async fn write_all_at(file: Arc<File>, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
    write_all_at_on(current(), file, buf, offset).await
}

async fn write_all_at_on(engine: &Engine, file: Arc<File>, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
    if buf.len() > REQUEST_BYTES_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "write larger than 1 GiB"));
    }
    let _c = Counted::new();
    let mut buf = match engine {
        Engine::Uring(u) => u.submit(uring::Request::write(file, buf, offset)).await?.1,
        _ => {
            blocking(move || {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&buf, offset)?;
                Ok(buf)
            })
            .await?
        }
    };
    buf.clear();
    Ok(buf)
}

/// fdatasync(2) the file.
pub async fn sync_data(file: Arc<File>) -> io::Result<()> {
    sync_data_on(current(), file).await
}

async fn sync_data_on(engine: &Engine, file: Arc<File>) -> io::Result<()> {
    let _c = Counted::new();
    match engine {
        Engine::Uring(u) => u.submit(uring::Request::fsync(file)).await.map(|_| ()),
        _ => blocking(move || file.sync_data()).await,
    }
}

/// Start writing `len` dirty bytes at `offset` of the file to its device, without waiting
/// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE). Not a durability point: it only spreads the
/// device writes of a long upload over the upload, so the fsync before publish finds the tail
/// left to write instead of the whole object.
pub async fn start_writeback(file: Arc<File>, offset: u64, len: u64) -> io::Result<()> {
    start_writeback_on(current(), file, offset, len).await
}

async fn start_writeback_on(engine: &Engine, file: Arc<File>, offset: u64, len: u64) -> io::Result<()> {
    if len > REQUEST_BYTES_MAX as u64 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "writeback range larger than 1 GiB"));
    }
    let _c = Counted::new();
    match engine {
        Engine::Uring(u) => u.submit(uring::Request::writeback(file, offset, len as usize)).await.map(|_| ()),
        _ => {
            blocking(move || {
                use std::os::fd::AsRawFd;
                let (fd, off, n) = (file.as_raw_fd(), offset as libc::off64_t, len as libc::off64_t);
                // SAFETY: sync_file_range takes no pointers; `fd` is open for the whole call
                // (`file` is owned by this closure), and any error comes back as -1 and errno.
                let r = unsafe { libc::sync_file_range(fd, off, n, libc::SYNC_FILE_RANGE_WRITE) };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            })
            .await
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(f)).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(e)),
    }
}

mod uring {
    //! The io_uring engine. The `unsafe` of this crate lives here: pushing an entry whose
    //! pointers the kernel will use, and trusting the length the kernel reports as written
    //! (the only other block is the threads engine's sync_file_range call above).

    use io_uring::{opcode, squeue, types, IoUring};
    use std::collections::VecDeque;
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};

    /// Submission-queue entries (and the most requests in flight on the ring at once).
    const ENTRIES: u32 = 256;
    /// The user_data of the armed eventfd read.
    const WAKE: u64 = u64::MAX;

    enum Op {
        Read,
        Write,
        Fsync,
        /// sync_file_range(SYNC_FILE_RANGE_WRITE) of `want` bytes at `offset`.
        Writeback,
    }

    type Reply = tokio::sync::oneshot::Sender<io::Result<(usize, Vec<u8>)>>;

    pub struct Request {
        op: Op,
        file: Arc<File>,
        /// Read: the destination, filled up to `done` (its capacity is the length wanted).
        /// Write: the source; `done` bytes of it are written.
        buf: Vec<u8>,
        offset: u64,
        want: usize,
        done: usize,
        reply: Option<Reply>,
    }

    impl Request {
        pub fn read(file: Arc<File>, offset: u64, len: usize) -> Self {
            Self { op: Op::Read, file, buf: Vec::with_capacity(len), offset, want: len, done: 0, reply: None }
        }
        pub fn write(file: Arc<File>, buf: Vec<u8>, offset: u64) -> Self {
            let want = buf.len();
            Self { op: Op::Write, file, buf, offset, want, done: 0, reply: None }
        }
        pub fn fsync(file: Arc<File>) -> Self {
            Self { op: Op::Fsync, file, buf: Vec::new(), offset: 0, want: 0, done: 0, reply: None }
        }

        pub fn writeback(file: Arc<File>, offset: u64, len: usize) -> Self {
            Self { op: Op::Writeback, file, buf: Vec::new(), offset, want: len, done: 0, reply: None }
        }

        fn entry(&mut self, user_data: u64) -> squeue::Entry {
            let fd = types::Fd(self.file.as_raw_fd());
            let left = (self.want - self.done) as u32;
            let at = self.offset + self.done as u64;
            match self.op {
                Op::Read => {
                    let ptr = self.buf.as_mut_ptr().wrapping_add(self.done);
                    opcode::Read::new(fd, ptr, left).offset(at).build()
                }
                Op::Write => {
                    let ptr = self.buf.as_ptr().wrapping_add(self.done);
                    opcode::Write::new(fd, ptr, left).offset(at).build()
                }
                Op::Fsync => opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build(),
                // `left` fits: the caller refuses ranges over REQUEST_BYTES_MAX (1 GiB).
                Op::Writeback => {
                    opcode::SyncFileRange::new(fd, left).offset(at).flags(libc::SYNC_FILE_RANGE_WRITE).build()
                }
            }
            .user_data(user_data)
        }

        /// Account for a completion; true when the request is finished.
        fn complete(&mut self, res: i32) -> bool {
            if res < 0 {
                let e = io::Error::from_raw_os_error(-res);
                if e.kind() == io::ErrorKind::Interrupted {
                    return false; // resubmit
                }
                self.reply(Err(e));
                return true;
            }
            let n = res as usize;
            match self.op {
                Op::Fsync | Op::Writeback => {
                    self.reply(Ok(0));
                    true
                }
                Op::Read => {
                    debug_assert!(self.done + n <= self.want);
                    // SAFETY: the kernel reported `n` bytes written into the spare capacity at
                    // `done` (the entry asked for at most `want - done` there), so the first
                    // `done + n` bytes are initialized; `done + n <= want <= capacity`.
                    unsafe { self.buf.set_len(self.done + n) };
                    self.done += n;
                    // A short read is resubmitted for the rest; 0 is the end of the file.
                    if n == 0 || self.done == self.want {
                        self.reply(Ok(self.done));
                        return true;
                    }
                    false
                }
                Op::Write => {
                    self.done += n;
                    if n == 0 {
                        self.reply(Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")));
                        return true;
                    }
                    if self.done == self.want {
                        self.reply(Ok(self.done));
                        return true;
                    }
                    false
                }
            }
        }

        fn reply(&mut self, r: io::Result<usize>) {
            if let Some(tx) = self.reply.take() {
                let buf = std::mem::take(&mut self.buf);
                let _ = tx.send(r.map(|n| (n, buf)));
            }
        }
    }

    pub struct Uring {
        tx: Option<Mutex<mpsc::Sender<Request>>>,
        wake: Arc<OwnedFd>,
    }

    impl Drop for Uring {
        fn drop(&mut self) {
            // Disconnect, then wake the thread so it sees it and exits once its ring is empty.
            drop(self.tx.take());
            let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
        }
    }

    impl Uring {
        /// Create the ring, prove that it works (a NOP and a read of /proc/self/stat), then start
        /// its thread.
        pub fn start() -> io::Result<Self> {
            let mut ring = IoUring::new(ENTRIES)?;
            probe(&mut ring)?;
            let wake = Arc::new(rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?);
            let (tx, rx) = mpsc::channel();
            let w = wake.clone();
            std::thread::Builder::new().name("strait-uring".into()).spawn(move || run(ring, rx, w))?;
            Ok(Self { tx: Some(Mutex::new(tx)), wake })
        }

        pub async fn submit(&self, mut req: Request) -> io::Result<(usize, Vec<u8>)> {
            let (tx, rx) = tokio::sync::oneshot::channel();
            req.reply = Some(tx);
            self.tx
                .as_ref()
                .expect("set until drop")
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .send(req)
                .map_err(|_| io::Error::other("the io_uring thread has stopped"))?;
            rustix::io::write(&*self.wake, &1u64.to_ne_bytes())?;
            rx.await.map_err(|_| io::Error::other("the io_uring thread dropped a request"))?
        }
    }

    fn probe(ring: &mut IoUring) -> io::Result<()> {
        let nop = opcode::Nop::new().build().user_data(1);
        // SAFETY: a NOP carries no pointers.
        unsafe { ring.submission().push(&nop) }.map_err(|_| io::Error::other("submission queue full"))?;
        ring.submit_and_wait(1)?;
        let res = ring.completion().next().map(|c| c.result());
        if res != Some(0) {
            return Err(io::Error::other(format!("NOP completed with {res:?}")));
        }
        let file = File::open("/proc/self/stat")?;
        let mut buf = [0u8; 64];
        let read = opcode::Read::new(types::Fd(file.as_raw_fd()), buf.as_mut_ptr(), buf.len() as u32).build();
        // SAFETY: `buf` and `file` outlive the wait for this entry's completion just below.
        unsafe { ring.submission().push(&read.user_data(2)) }.map_err(|_| io::Error::other("submission queue full"))?;
        ring.submit_and_wait(1)?;
        match ring.completion().next().map(|c| c.result()) {
            Some(n) if n > 0 => Ok(()),
            Some(n) if n < 0 => Err(io::Error::from_raw_os_error(-n)),
            r => Err(io::Error::other(format!("probe read completed with {r:?}"))),
        }
    }

    fn run(mut ring: IoUring, rx: mpsc::Receiver<Request>, wake: Arc<OwnedFd>) {
        // Requests live in `slots` (index = user_data) from submission until completion; the
        // heap buffers they own do not move when the slot vector grows.
        let mut slots: Vec<Option<Request>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut ready: VecDeque<usize> = VecDeque::new();
        let mut on_ring = 0u32;
        // Leaked (8 bytes per engine): the armed wake read may still be cancelled or completed
        // by the kernel after this thread has returned and dropped the ring.
        let wake_buf: &'static mut [u8; 8] = Box::leak(Box::new([0u8; 8]));
        let mut wake_armed = false;
        let mut senders_gone = false;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(r) => {
                        let i = free.pop().unwrap_or_else(|| {
                            slots.push(None);
                            slots.len() - 1
                        });
                        slots[i] = Some(r);
                        ready.push_back(i);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        senders_gone = true;
                        break;
                    }
                }
            }
            if senders_gone && on_ring == 0 && ready.is_empty() {
                return;
            }
            if !wake_armed && !senders_gone {
                let e =
                    opcode::Read::new(types::Fd(wake.as_raw_fd()), wake_buf.as_mut_ptr(), 8).build().user_data(WAKE);
                // SAFETY: `wake_buf` is leaked (never freed) and the eventfd is held by `wake`,
                // which lives as long as the ring (both are dropped when this thread returns).
                if unsafe { ring.submission().push(&e) }.is_ok() {
                    wake_armed = true;
                }
            }
            while on_ring < ENTRIES - 1 {
                let Some(&i) = ready.front() else { break };
                let e = slots[i].as_mut().expect("a ready slot holds its request").entry(i as u64);
                // SAFETY: the entry points into the request's own buffer and file, and the
                // request stays in `slots[i]` (not moved out, not dropped) until its completion
                // is reaped below.
                if unsafe { ring.submission().push(&e) }.is_err() {
                    break;
                }
                ready.pop_front();
                on_ring += 1;
            }
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EBUSY: the completion queue is full; reaping below makes room.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {}
                Err(e) => {
                    tracing::error!(error = %e, "io_uring_enter failed; failing queued requests");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    for i in ready.drain(..) {
                        if let Some(mut r) = slots[i].take() {
                            r.reply(Err(io::Error::other(format!("io_uring: {e}"))));
                        }
                        free.push(i);
                    }
                }
            }
            let done: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
            for (ud, res) in done {
                if ud == WAKE {
                    wake_armed = false;
                    continue;
                }
                let i = ud as usize;
                on_ring -= 1;
                let finished = slots[i].as_mut().is_none_or(|r| r.complete(res));
                if finished {
                    slots[i] = None;
                    free.push(i);
                } else {
                    ready.push_back(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip(engine: &Engine, name: &str) {
        let dir = std::env::temp_dir().join(format!("strait-engine-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let f = Arc::new(
            std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap(),
        );
        // Writes at offsets, last first, all in flight at once.
        let writes = data
            .chunks(100_000)
            .enumerate()
            .rev()
            .map(|(i, c)| write_all_at_on(engine, f.clone(), c.to_vec(), (i * 100_000) as u64));
        for r in futures_join_all(writes).await {
            assert!(r.unwrap().is_empty(), "the buffer comes back emptied");
        }
        // Writeback of a written range starts (it changes no byte), then the sync.
        start_writeback_on(engine, f.clone(), 0, 2_000_000).await.unwrap();
        let huge = start_writeback_on(engine, f.clone(), 0, (REQUEST_BYTES_MAX + 1) as u64).await;
        assert_eq!(huge.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        sync_data_on(engine, f.clone()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // Reads: exact, across the end (short), past the end (empty).
        let r = read_at_on(engine, f.clone(), 12_345, 1 << 20).await.unwrap();
        assert_eq!(r, data[12_345..12_345 + (1 << 20)]);
        assert_eq!(read_at_on(engine, f.clone(), 2_999_000, 5000).await.unwrap(), data[2_999_000..]);
        assert!(read_at_on(engine, f.clone(), 4_000_000, 10).await.unwrap().is_empty());
        // Many reads in flight at once, more than the ring holds.
        let reads = (0..600u64).map(|i| read_at_on(engine, f.clone(), i * 4096, 4096));
        for (i, r) in futures_join_all(reads).await.into_iter().enumerate() {
            assert_eq!(r.unwrap(), data[i * 4096..(i + 1) * 4096]);
        }
        // A read on a descriptor opened write-only fails with the kernel's error (EBADF).
        let wo = Arc::new(std::fs::OpenOptions::new().write(true).open(&path).unwrap());
        assert_eq!(read_at_on(engine, wo, 0, 10).await.unwrap_err().raw_os_error(), Some(9));
        // Writeback of something that is not a file fails with the kernel's error (ESPIPE).
        let (pipe, _w) = std::io::pipe().unwrap();
        let pipe = Arc::new(File::from(std::os::fd::OwnedFd::from(pipe)));
        assert_eq!(start_writeback_on(engine, pipe, 0, 10).await.unwrap_err().raw_os_error(), Some(29));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
        let mut out = Vec::new();
        let mut pending: Vec<_> = fs.map(Box::pin).collect();
        // Poll all together: each one's request is submitted before any is awaited to the end.
        let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut all = true;
            for (i, f) in pending.iter_mut().enumerate() {
                if results[i].is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => results[i] = Some(v),
                        std::task::Poll::Pending => all = false,
                    }
                }
            }
            if all {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        out.extend(results.into_iter().map(Option::unwrap));
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn io_uring_engine_reads_and_writes() {
        match uring::Uring::start() {
            Ok(u) => {
                let e = Engine::Uring(u);
                roundtrip(&e, "uring").await;
                // Dropping the engine stops its thread (it would hang a join otherwise).
                drop(e);
            }
            // Kernels or sandboxes without io_uring: nothing to test here; `auto` falls back.
            Err(err) => eprintln!("io_uring unavailable: {err}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_engine_reads_and_writes() {
        roundtrip(&Engine::Threads, "threads").await;
    }

    #[test]
    fn choices_parse() {
        assert_eq!("auto".parse::<Choice>().unwrap(), Choice::Auto);
        assert_eq!("io_uring".parse::<Choice>().unwrap(), Choice::IoUring);
        assert_eq!("threads".parse::<Choice>().unwrap(), Choice::Threads);
        assert!("epoll".parse::<Choice>().is_err());
    }
}
