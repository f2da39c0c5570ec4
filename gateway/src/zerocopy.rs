//! Zero-copy GET bodies on plaintext HTTP/1.x connections: object bytes go from the page cache
//! to the socket by sendfile(2), never through a user-space buffer.
//!
//! hyper owns the connection and writes response bodies itself, so the file cannot be handed to
//! it. Instead, a body chunk *stands for* a file region: the GET body yields a [`bytes::Bytes`]
//! that borrows a static, never-written block of memory ([`SENTINEL`]) and records the region
//! (file, offset, length) in the connection's [`Regions`] queue. The connection's socket is a
//! [`ZcStream`]; when hyper writes bytes that lie inside the sentinel block, the stream sends
//! the queued region's file bytes with sendfile(2) instead. Nothing else can point into the
//! sentinel block, so the pointer identifies the chunk without ambiguity.
//!
//! Conditions, all checked where they are decided:
//! - only HTTP/1.x over plain TCP (hyper's HTTP/2 and TLS copy every frame, which would send
//!   the sentinel's zeros): the front service inserts [`Regions`] into a request's extensions
//!   only then;
//! - hyper must queue body chunks as they are (its "queue" write strategy, i.e. writev), not
//!   copy them into its own buffer: `serve_conn` forces `writev(true)` on such connections;
//! - the stream checks that every sentinel write is the front region's remaining bytes, in
//!   order; anything else fails the connection rather than sending wrong bytes.
//!
//! sendfile runs on the async thread, as nginx runs it in its event loop: on a page-cache hit it
//! costs a memory copy inside the kernel; a miss waits for the file system.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Largest region one body chunk stands for.
pub const REGION_BYTES_MAX: usize = 8 << 20;

/// Never written, never read: only its addresses are used. A zeroed static lives in .bss and
/// costs no memory until touched.
static SENTINEL: [u8; REGION_BYTES_MAX] = [0; REGION_BYTES_MAX];

/// Bytes sent by sendfile since start (exported as `strait_sendfile_bytes_total`).
static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn sent_bytes() -> u64 {
    SENT.load(std::sync::atomic::Ordering::Relaxed)
}

fn sentinel_offset(p: *const u8) -> Option<usize> {
    let base = SENTINEL.as_ptr() as usize;
    let a = p as usize;
    (a >= base && a < base + REGION_BYTES_MAX).then(|| a - base)
}

struct Region {
    /// The request's `fs.sendfile` span, entered around each sendfile of the region.
    span: tracing::Span,
    file: Arc<File>,
    offset: u64,
    len: usize,
    sent: usize,
}

/// A connection's file regions, in the order hyper will write them.
#[derive(Clone, Default)]
pub struct Regions(Arc<Mutex<VecDeque<Region>>>);

impl Regions {
    /// A body chunk standing for `len` (1..=[`REGION_BYTES_MAX`]) bytes of `file` at `offset`.
    pub fn chunk(&self, span: tracing::Span, file: Arc<File>, offset: u64, len: usize) -> Bytes {
        assert!(len > 0 && len <= REGION_BYTES_MAX, "region of {len} bytes");
        self.lock().push_back(Region { span, file, offset, len, sent: 0 });
        Bytes::from_static(&SENTINEL[..len])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Region>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A TCP connection whose writes of sentinel chunks become sendfile(2) of their regions.
pub struct ZcStream {
    tcp: TcpStream,
    regions: Regions,
}

impl ZcStream {
    pub fn new(tcp: TcpStream) -> (Self, Regions) {
        let regions = Regions::default();
        (Self { tcp, regions: regions.clone() }, regions)
    }

    /// Send up to `len` bytes of the front region, which must have sent exactly `at` so far and
    /// have `len` left.
    fn poll_sendfile(&mut self, cx: &mut Context<'_>, at: usize, len: usize) -> Poll<io::Result<usize>> {
        let mut q = self.regions.lock();
        let Some(r) = q.front_mut() else {
            return Poll::Ready(Err(io::Error::other("zero-copy: a body chunk without its file region")));
        };
        if r.sent != at || r.len - r.sent != len {
            return Poll::Ready(Err(io::Error::other(format!(
                "zero-copy: write of {len} bytes at {at} does not match the region ({} of {} sent)",
                r.sent, r.len
            ))));
        }
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let res = r.span.in_scope(|| {
                self.tcp.try_io(Interest::WRITABLE, || {
                    let mut off = r.offset + r.sent as u64;
                    rustix::fs::sendfile(&self.tcp, &*r.file, Some(&mut off), len).map_err(io::Error::from)
                })
            });
            match res {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object shrank while being sent",
                    )))
                }
                Ok(n) => {
                    SENT.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    r.sent += n;
                    if r.sent == r.len {
                        q.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Send bytes that a file region follows (a response's head) with `MSG_MORE`, as nginx's
    /// `tcp_nopush` does: the kernel holds them and sends them in one segment with the start of
    /// the region's sendfile (which pushes when it ends), instead of a segment of its own. One
    /// segment and one wake-up of the client less per GET.
    fn poll_send_more(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let res = self.tcp.try_io(Interest::WRITABLE, || {
                rustix::net::sendmsg(
                    &self.tcp,
                    bufs,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                res => return Poll::Ready(res),
            }
        }
    }
}

impl AsyncRead for ZcStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZcStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match sentinel_offset(buf.as_ptr()) {
            Some(at) if !buf.is_empty() => self.poll_sendfile(cx, at, buf.len()),
            _ => Pin::new(&mut self.tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // No allocation on this path: the first non-empty slice decides; ordinary slices go out
        // in one writev up to (not including) the first sentinel chunk.
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else { return Poll::Ready(Ok(0)) };
        if let Some(at) = sentinel_offset(first.as_ptr()) {
            return self.poll_sendfile(cx, at, first.len());
        }
        match bufs.iter().position(|b| !b.is_empty() && sentinel_offset(b.as_ptr()).is_some()) {
            Some(plain) => self.poll_send_more(cx, &bufs[..plain]),
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A response body of `len` bytes of `file` from `offset`, as regions of at most
/// [`REGION_BYTES_MAX`] sent by the connection's [`ZcStream`].
pub fn file_body(
    regions: Regions,
    file: std::fs::File,
    offset: u64,
    len: u64,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send + Sync + 'static {
    let file = Arc::new(file);
    // Created inside the request's span (the handler runs in it); the sends happen later, on
    // the connection, and enter it.
    let span = tracing::debug_span!(target: "strait::fs", "fs.sendfile", bytes = len as i64);
    let mut pos = offset;
    let end = offset + len;
    futures::stream::iter(std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let n = (end - pos).min(REGION_BYTES_MAX as u64) as usize;
        let chunk = regions.chunk(span.clone(), file.clone(), pos, n);
        pos += n as u64;
        Some(Ok(chunk))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_addresses_are_recognised_and_nothing_else() {
        let r = Regions::default();
        let f = Arc::new(File::open("/proc/self/stat").unwrap());
        let c = r.chunk(tracing::Span::none(), f, 0, 10);
        assert_eq!(sentinel_offset(c.as_ptr()), Some(0));
        assert_eq!(sentinel_offset(c[3..].as_ptr()), Some(3));
        let other = [0u8; 10];
        assert_eq!(sentinel_offset(other.as_ptr()), None);
        assert_eq!(sentinel_offset(SENTINEL.as_ptr().wrapping_add(REGION_BYTES_MAX)), None);
    }
}
