//! Moving bytes between request/response bodies and files without blocking the runtime.

use super::checksum::{Algo, BodyHasher, Digests};
use super::error::{body_err, obj_err};
use futures::StreamExt;
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Error, S3Result};
use std::io::Write;
use strait_connectors::multipart::PartStaging;
use strait_connectors::{ConnectorError, Staging};

/// Bytes buffered before one blocking write.
pub const WRITE_CHUNK_BYTES: usize = 1 << 20;
/// Buffer size for file → response streams.
pub const READ_CHUNK_BYTES: usize = 1 << 20;

/// Buffer space shared by all requests (`limits.buffer_bytes_max`), in pages of 4 KiB.
/// The budget, in pages (for the optional-buffer rule of [`try_reserve_buffer`]).
static BUDGET_PAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new((256 << 20) / BUFFER_PAGE);
static BUFFERS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
const BUFFER_PAGE: u64 = 4096;

/// Set the buffer budget (once, at start; the default is 256 MiB).
pub fn set_buffer_limit(bytes: u64) {
    BUDGET_PAGES.store(bytes / BUFFER_PAGE, std::sync::atomic::Ordering::Relaxed);
    let _ = BUFFERS.set(std::sync::Arc::new(tokio::sync::Semaphore::new((bytes / BUFFER_PAGE) as usize)));
}

fn buffers() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    BUFFERS.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(((256 << 20) / BUFFER_PAGE) as usize)))
}

/// Reserve `bytes` of buffer space; the space is returned when the permit is dropped.
pub async fn reserve_buffer(bytes: usize) -> tokio::sync::OwnedSemaphorePermit {
    let sem = buffers();
    let pages = (bytes as u64).div_ceil(BUFFER_PAGE).max(1) as u32;
    sem.clone().acquire_many_owned(pages).await.expect("the buffer semaphore is never closed")
}

/// Reserve `bytes` of buffer space for an optional buffer (the second buffer of a pipelined
/// upload) while at most a quarter of the budget is in use; `None` otherwise. Optional buffers
/// thus never take space that required ones wait for: pipelining is for a few fast streams,
/// and many concurrent uploads overlap their work without it.
pub fn try_reserve_buffer(bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let sem = buffers();
    let pages = (bytes as u64).div_ceil(BUFFER_PAGE).max(1);
    let budget = BUDGET_PAGES.load(std::sync::atomic::Ordering::Relaxed);
    if (sem.available_permits() as u64) < budget - budget / 4 + pages {
        return None;
    }
    sem.clone().try_acquire_many_owned(pages as u32).ok()
}

/// A chunk of a response body that holds its buffer reservation until hyper has sent it.
struct Chunk {
    data: Vec<u8>,
    _reserved: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// File-system operations submitted to the blocking pool and not finished (the I/O engine's
/// queue depth, exported as a metric).
static QUEUE_DEPTH: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

pub fn queue_depth() -> i64 {
    QUEUE_DEPTH.load(std::sync::atomic::Ordering::Relaxed) + strait_connectors::engine::in_flight()
}

/// Submit `f` to the I/O engine (Tokio's blocking pool), inside the caller's tracing span so the
/// file-system spans it opens are children of the request's span.
pub async fn submit<T, F>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    use std::sync::atomic::Ordering::Relaxed;
    struct Queued;
    impl Drop for Queued {
        fn drop(&mut self) {
            QUEUE_DEPTH.fetch_sub(1, Relaxed);
        }
    }
    QUEUE_DEPTH.fetch_add(1, Relaxed);
    let span = tracing::Span::current();
    let who = request_identity();
    tokio::task::spawn_blocking(move || {
        let _done = Queued;
        match who {
            Some(id) => strait_connectors::ident::run_as(&id, || span.in_scope(f)),
            None => span.in_scope(f),
        }
    })
    .await
}

/// Whether [`inline`] tries the kernel's caches first (`io.inline_cached`; on by default).
static INLINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
/// Object opens [`inline`] served on the async thread, and those it left to the I/O pool.
static INLINE_DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static INLINE_DEFERRED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Set whether [`inline`] is tried (once, at start).
pub fn set_inline(on: bool) {
    INLINE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// (served inline, left to the pool) counts of [`inline`] attempts.
pub fn inline_counts() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (INLINE_DONE.load(Relaxed), INLINE_DEFERRED.load(Relaxed))
}

/// Run read-only file-system work `f` on this async thread, as the request's identity, if the
/// kernel can do it from its caches alone (`strait_connectors::try_cached`: cached lookups,
/// page-cache reads, local file systems). `None` when some step would have blocked (or inline
/// work is off): the caller then submits the same work to the I/O pool with [`fs`]. A small
/// GET of a hot file thus costs no hand-off between threads; anything that would wait for a
/// device or a server still waits on the pool, never on the thread serving other requests.
pub fn inline<T>(f: impl FnOnce() -> Result<T, ConnectorError>) -> Option<Result<T, ConnectorError>> {
    use std::sync::atomic::Ordering::Relaxed;
    if !INLINE.load(Relaxed) {
        return None;
    }
    let run = || strait_connectors::try_cached(f);
    let r = match request_identity() {
        Some(id) => strait_connectors::ident::run_as(&id, run),
        None => run(),
    };
    match r {
        Some(_) => INLINE_DONE.fetch_add(1, Relaxed),
        None => INLINE_DEFERRED.fetch_add(1, Relaxed),
    };
    r
}

tokio::task_local! {
    /// The POSIX identity the current request's file-system work runs as, set by the access
    /// check once it knows the principal (empty: the gateway's own identity).
    pub static REQUEST_IDENTITY: std::sync::Arc<std::sync::OnceLock<strait_connectors::ident::PosixId>>;
}

/// The identity [`submit`] runs closures as in this task.
pub fn request_identity() -> Option<strait_connectors::ident::PosixId> {
    REQUEST_IDENTITY.try_with(|c| c.get().cloned()).ok().flatten()
}

/// Set the current request's identity; false when this task has no request scope (or it is
/// already set to something else), in which case the caller must refuse the request.
pub fn set_request_identity(id: strait_connectors::ident::PosixId) -> bool {
    REQUEST_IDENTITY.try_with(|c| c.get_or_init(|| id.clone()) == &id).unwrap_or(false)
}

/// Run blocking file-system work off the async threads; map connector errors with `map`.
pub async fn blocking<T, F>(map: fn(ConnectorError) -> S3Error, f: F) -> S3Result<T>
where
    F: FnOnce() -> Result<T, ConnectorError> + Send + 'static,
    T: Send + 'static,
{
    match submit(f).await {
        Ok(r) => r.map_err(map),
        Err(e) => Err(S3Error::internal_error(e)),
    }
}

/// Object-scoped [`blocking`].
pub async fn fs<T, F>(f: F) -> S3Result<T>
where
    F: FnOnce() -> Result<T, ConnectorError> + Send + 'static,
    T: Send + 'static,
{
    blocking(obj_err, f).await
}

/// Something with a file to stream a body into.
pub trait StageFile: Send + 'static {
    fn file_mut(&mut self) -> &mut std::fs::File;
    /// Where the body's first byte goes in the file.
    fn base_offset(&self) -> u64 {
        0
    }
}

impl StageFile for strait_connectors::multipart::PartSlot {
    fn file_mut(&mut self) -> &mut std::fs::File {
        self.file()
    }
    fn base_offset(&self) -> u64 {
        self.offset()
    }
}

impl StageFile for Staging {
    fn file_mut(&mut self) -> &mut std::fs::File {
        self.file()
    }
}

impl StageFile for PartStaging {
    fn file_mut(&mut self) -> &mut std::fs::File {
        self.file()
    }
}

/// Stream `body` into `target`, hashing inline. At most `max_bytes` are accepted.
pub async fn write_body<W: StageFile>(
    mut target: W,
    body: Option<StreamingBlob>,
    algo: Option<Algo>,
    max_bytes: u64,
) -> S3Result<(W, u64, Digests)> {
    let mut hasher = Some(BodyHasher::new(algo));
    let mut size: u64 = 0;
    // The write buffer counts against limits.buffer_bytes_max for the whole upload.
    let _reserved = reserve_buffer(WRITE_CHUNK_BYTES).await;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK_BYTES);
    // One span for all writes of this body: entered around each write, so its busy time is the
    // time spent writing and its idle time the time spent waiting for the client.
    let span = tracing::debug_span!(target: "strait::fs", "fs.write", bytes = tracing::field::Empty);
    // The I/O engine writes at explicit offsets through its own handle on the staging file (a
    // request in flight owns it, so a dropped upload cannot close it under the kernel).
    let file = std::sync::Arc::new(target.file_mut().try_clone().map_err(|e| obj_err(e.into()))?);
    let mut at: u64 = target.base_offset();
    // A pipeline when the budget has room for a second buffer: while one buffer is hashed (MD5
    // and the requested checksum, in order: the hasher travels with the buffer) and written by
    // another task, the next one fills from the socket, so receiving, hashing and writing
    // overlap on different cores. Without room, each buffer is hashed and written in turn.
    let mut second: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut stage: Option<tokio::task::JoinHandle<Staged>> = None;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_err(&*e))?;
            size += chunk.len() as u64;
            if size > max_bytes {
                return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size"));
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= WRITE_CHUNK_BYTES {
                let n = buf.len() as u64;
                let next = match stage.take() {
                    // The stage before this one hands back the hasher and its buffer.
                    Some(w) => {
                        let (h, b) = joined(w).await?;
                        hasher = Some(h);
                        Some(b)
                    }
                    None => {
                        if second.is_none() {
                            second = try_reserve_buffer(WRITE_CHUNK_BYTES);
                        }
                        second.is_some().then(|| Vec::with_capacity(WRITE_CHUNK_BYTES))
                    }
                };
                let mut h = hasher.take().expect("the hasher is here between stages");
                match next {
                    Some(next) => {
                        let full = std::mem::replace(&mut buf, next);
                        let (file, span) = (file.clone(), span.clone());
                        stage = Some(tokio::spawn(async move {
                            h.update(&full);
                            let b = flush_and_write_back(&file, full, at, &span).await?;
                            Ok((h, b))
                        }));
                    }
                    None => {
                        h.update(&buf);
                        buf = flush_and_write_back(&file, buf, at, &span).await?;
                        hasher = Some(h);
                    }
                }
                at += n;
            }
        }
    }
    if let Some(w) = stage.take() {
        hasher = Some(joined(w).await?.0);
    }
    drop(second);
    let mut hasher = hasher.expect("the hasher is back after the last stage");
    if !buf.is_empty() {
        hasher.update(&buf);
        flush(&file, buf, at, &span).await?;
    }
    // All writes were positional: the staging file's offset is left at 0 (nothing after this
    // writes through it; publish only stats it, sets its xattr and syncs it).
    span.record("bytes", size as i64); // i64: tracing-opentelemetry stringifies u64
    Ok((target, size, hasher.finalize()))
}

/// What a pipeline stage of [`write_body`] hands back: the hasher and the emptied buffer.
type Staged = S3Result<(BodyHasher, Vec<u8>)>;

async fn joined<T>(w: tokio::task::JoinHandle<S3Result<T>>) -> S3Result<T> {
    w.await.map_err(S3Error::internal_error)?
}

/// Bytes of a body after which their writeback to the device is started during the upload.
pub const WRITEBACK_BYTES: u64 = 8 << 20;

/// [`flush`] a full buffer of a body, then, when the body has crossed a multiple of
/// [`WRITEBACK_BYTES`], start the device writes of the block it completed (sync_file_range):
/// by the fsync before publish only the tail is left to write, so a large PUT does not wait
/// for its whole object to reach the device after its last byte arrived. Every byte of this
/// body before `at` is written when this runs (at most one stage is in flight, and stages run
/// in order); pages of the block that are not dirty (another part's, in an upload's data file)
/// are skipped by the kernel.
async fn flush_and_write_back(
    file: &std::sync::Arc<std::fs::File>,
    buf: Vec<u8>,
    at: u64,
    span: &tracing::Span,
) -> S3Result<Vec<u8>> {
    let end = at + buf.len() as u64;
    let buf = flush(file, buf, at, span).await?;
    if end / WRITEBACK_BYTES > at / WRITEBACK_BYTES {
        let block = (end / WRITEBACK_BYTES - 1) * WRITEBACK_BYTES;
        let w = strait_connectors::engine::start_writeback(file.clone(), block, WRITEBACK_BYTES);
        tracing::Instrument::instrument(w, span.clone()).await.map_err(|e| obj_err(e.into()))?;
    }
    Ok(buf)
}

async fn flush(file: &std::sync::Arc<std::fs::File>, buf: Vec<u8>, at: u64, span: &tracing::Span) -> S3Result<Vec<u8>> {
    let w = strait_connectors::engine::write_all_at(file.clone(), buf, at);
    tracing::Instrument::instrument(w, span.clone()).await.map_err(|e| obj_err(e.into()))
}

/// Copy `len` bytes at `offset` of `src` into `target`, hashing them (blocking; run in [`fs`]).
pub fn copy_hashed(
    src: &std::fs::File,
    offset: u64,
    len: u64,
    target: &mut std::fs::File,
    hasher: &mut BodyHasher,
) -> Result<(), ConnectorError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; READ_CHUNK_BYTES.min(len.max(1) as usize)];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(buf.len());
        let n = src.read_at(&mut buf[..want], offset + done)?;
        if n == 0 {
            return Err(ConnectorError::Busy("source object shrank during the copy".into()));
        }
        hasher.update(&buf[..n]);
        target.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

/// A response body streaming `len` bytes of `file` from `offset`.
pub fn file_body(file: std::fs::File, offset: u64, len: u64) -> StreamingBlob {
    StreamingBlob::wrap(async_stream(file, offset, len))
}

fn async_stream(
    file: std::fs::File,
    offset: u64,
    len: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static {
    let file = std::sync::Arc::new(file);
    // Created here, inside the request's span; the stream is polled after the handler returned.
    // Entered around each read (busy time = reading).
    let span = tracing::debug_span!(target: "strait::fs", "fs.read", bytes = len as i64);
    futures::stream::unfold((file, offset, len), move |(file, pos, left)| {
        let span = span.clone();
        async move {
            if left == 0 {
                return None;
            }
            let want = (left as usize).min(READ_CHUNK_BYTES);
            let reserved = reserve_buffer(want).await;
            // Entered around the read (busy time = reading).
            let r = tracing::Instrument::instrument(
                strait_connectors::engine::read_at(file.clone(), pos, want),
                span.clone(),
            )
            .await;
            match r {
                Ok(buf) if buf.is_empty() => Some((
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "object shrank while being read")),
                    (file, pos, 0),
                )),
                Ok(buf) => {
                    let n = buf.len() as u64;
                    let chunk = bytes::Bytes::from_owner(Chunk { data: buf, _reserved: reserved });
                    Some((Ok(chunk), (file, pos + n, left - n)))
                }
                Err(e) => Some((Err(e), (file, pos, 0))),
            }
        }
    })
}

/// Read a body that must be empty (directory markers), hashing it like any other body.
pub async fn empty_body(body: Option<StreamingBlob>, algo: Option<Algo>) -> S3Result<Digests> {
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            if !chunk.map_err(|e| body_err(&*e))?.is_empty() {
                return Err(s3_error!(
                    InvalidRequest,
                    "A directory-marker key (ending in '/') must have an empty body"
                ));
            }
        }
    }
    Ok(BodyHasher::new(algo).finalize())
}
