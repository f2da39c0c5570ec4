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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Largest region one body chunk stands for.
pub const REGION_BYTES_MAX: usize = 8 << 20;

/// A region of at least this many bytes is *large*: it may be sent corked, and while it is
/// being sent it counts in [`LARGE_IN_FLIGHT`] (see `ZcStream::poll_sendfile`). Below it, two
/// more system calls per response would cost more than the segments they save.
pub const CORK_BYTES_MIN: usize = 1 << 20;

/// Large regions whose sending has begun and whose [`Region`] is not yet dropped, in the whole
/// process.
static LARGE_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Never written, never read: only its addresses are used. A zeroed static lives in .bss and
/// costs no memory until touched.
static SENTINEL: [u8; REGION_BYTES_MAX] = [0; REGION_BYTES_MAX];

/// Bytes sent by sendfile since start (exported as `strait_sendfile_bytes_total`).
static SENT: AtomicU64 = AtomicU64::new(0);

pub fn sent_bytes() -> u64 {
    SENT.load(Relaxed)
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
    /// The body's last region.
    last: bool,
    /// Counted in [`LARGE_IN_FLIGHT`] (until dropped).
    counted: bool,
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.counted {
            LARGE_IN_FLIGHT.fetch_sub(1, Relaxed);
        }
    }
}

/// A connection's file regions, in the order hyper will write them.
#[derive(Clone, Default)]
pub struct Regions(Arc<Mutex<VecDeque<Region>>>);

impl Regions {
    /// A body chunk standing for `len` (1..=[`REGION_BYTES_MAX`]) bytes of `file` at `offset`.
    pub fn chunk(&self, span: tracing::Span, file: Arc<File>, offset: u64, len: usize, last: bool) -> Bytes {
        assert!(len > 0 && len <= REGION_BYTES_MAX, "region of {len} bytes");
        self.lock().push_back(Region { span, file, offset, len, sent: 0, last, counted: false });
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
    corked: bool,
}

impl ZcStream {
    pub fn new(tcp: TcpStream) -> (Self, Regions) {
        let regions = Regions::default();
        (Self { tcp, regions: regions.clone(), corked: false }, regions)
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
        // A large region goes out corked (nginx's `tcp_nopush` around sendfile) while it is the
        // only large region the process is sending: with TCP_NODELAY alone, every sendfile call
        // after the send buffer drained a little pushes what it could append as a short
        // segment, and each wakes the reader. With several in flight the cork gained nothing
        // and cost server CPU (bench/RESULTS.md, 2026-12-04), so it is decided again at every
        // call (a flip is one setsockopt; uncorking pushes what is queued). The body's last
        // region uncorks when it ends, which pushes its tail.
        if !r.counted && r.sent == 0 && r.len >= CORK_BYTES_MIN {
            r.counted = true;
            LARGE_IN_FLIGHT.fetch_add(1, Relaxed);
        }
        let cork = r.counted && LARGE_IN_FLIGHT.load(Relaxed) == 1;
        if cork != self.corked {
            rustix::net::sockopt::set_tcp_cork(&self.tcp, cork)?;
            self.corked = cork;
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
                    SENT.fetch_add(n as u64, Relaxed);
                    r.sent += n;
                    if r.sent == r.len {
                        if r.last && self.corked {
                            rustix::net::sockopt::set_tcp_cork(&self.tcp, false)?;
                            self.corked = false;
                        }
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
        let chunk = regions.chunk(span.clone(), file.clone(), pos, n, pos + n as u64 >= end);
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
        let c = r.chunk(tracing::Span::none(), f, 0, 10, true);
        assert_eq!(sentinel_offset(c.as_ptr()), Some(0));
        assert_eq!(sentinel_offset(c[3..].as_ptr()), Some(3));
        let other = [0u8; 10];
        assert_eq!(sentinel_offset(other.as_ptr()), None);
        assert_eq!(sentinel_offset(SENTINEL.as_ptr().wrapping_add(REGION_BYTES_MAX)), None);
    }

    /// The cork tests count large regions in flight in the whole process: one at a time.
    static LARGE_SENDERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// An unlinked temporary file of `len` patterned bytes, and its content.
    fn temp_file(len: usize) -> (Arc<File>, Vec<u8>) {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("strait-cork-test-{}-{len}", std::process::id()));
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let content: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        f.write_all(&content).unwrap();
        (Arc::new(f), content)
    }

    /// A loopback connection: the server side as a [`ZcStream`], and a task reading `want`
    /// bytes at the client once `go` fires (at once when `go` is `None`).
    async fn connection(
        want: usize,
        go: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> (ZcStream, Regions, tokio::task::JoinHandle<Vec<u8>>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if go.is_some() {
            socket.set_recv_buffer_size(64 << 10).unwrap();
        }
        let mut client = socket.connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        if go.is_some() {
            rustix::net::sockopt::set_socket_send_buffer_size(&server, 64 << 10).unwrap();
        }
        let (zc, regions) = ZcStream::new(server);
        let reader = tokio::spawn(async move {
            if let Some(go) = go {
                go.await.unwrap();
            }
            let mut got = vec![0u8; want];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        (zc, regions, reader)
    }

    /// Sends `file` as a body of two regions, the first of `cut` bytes; whether the connection
    /// was corked between them.
    async fn send_in_two_regions(
        zc: &mut ZcStream,
        regions: &Regions,
        file: &Arc<File>,
        len: usize,
        cut: usize,
    ) -> bool {
        use tokio::io::AsyncWriteExt;
        let first = regions.chunk(tracing::Span::none(), file.clone(), 0, cut, false);
        let second = regions.chunk(tracing::Span::none(), file.clone(), cut as u64, len - cut, true);
        zc.write_all(&first).await.unwrap();
        let corked = rustix::net::sockopt::tcp_cork(&zc.tcp).unwrap();
        zc.write_all(&second).await.unwrap();
        assert!(!rustix::net::sockopt::tcp_cork(&zc.tcp).unwrap(), "uncorked after the last region");
        assert!(regions.lock().is_empty());
        corked
    }

    /// A large body, alone, is sent corked and uncorked after its last region: every byte
    /// arrives, in order, and the connection is left uncorked for the next response.
    #[tokio::test]
    async fn a_large_body_alone_is_corked_until_its_last_region() {
        let _one = LARGE_SENDERS.lock().await;
        let (file, content) = temp_file(3 * CORK_BYTES_MIN + 17);
        let (mut zc, regions, reader) = connection(content.len(), None).await;
        let corked = send_in_two_regions(&mut zc, &regions, &file, content.len(), 2 * CORK_BYTES_MIN).await;
        assert!(corked, "corked between the body's regions");
        assert!(reader.await.unwrap() == content, "the body's bytes, in order");
        assert_eq!(LARGE_IN_FLIGHT.load(Relaxed), 0);
    }

    /// While another connection is in the middle of a large region, a large body is sent
    /// uncorked; both arrive whole.
    #[tokio::test]
    async fn a_large_body_is_not_corked_while_another_is_in_flight() {
        use tokio::io::AsyncWriteExt;
        let _one = LARGE_SENDERS.lock().await;
        let (file, content) = temp_file(3 * CORK_BYTES_MIN + 17);
        // The other connection's reader waits, and its buffers are small: its region stalls.
        let (go, wait) = tokio::sync::oneshot::channel();
        let (mut other, other_regions, other_reader) = connection(content.len(), Some(wait)).await;
        let chunk = other_regions.chunk(tracing::Span::none(), file.clone(), 0, content.len(), true);
        let other_writer = tokio::spawn(async move {
            other.write_all(&chunk).await.unwrap();
            other
        });
        let t0 = std::time::Instant::now();
        while LARGE_IN_FLIGHT.load(Relaxed) == 0 {
            assert!(t0.elapsed() < std::time::Duration::from_secs(10), "the other region never started");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(!other_writer.is_finished(), "the other region stalls on its small buffers");
        let (mut zc, regions, reader) = connection(content.len(), None).await;
        let corked = send_in_two_regions(&mut zc, &regions, &file, content.len(), 2 * CORK_BYTES_MIN).await;
        assert!(!corked, "not corked while another large region is in flight");
        assert!(reader.await.unwrap() == content, "the body's bytes, in order");
        go.send(()).unwrap();
        let other = other_writer.await.unwrap();
        assert!(other_reader.await.unwrap() == content, "the other body's bytes, in order");
        assert!(!rustix::net::sockopt::tcp_cork(&other.tcp).unwrap());
        drop(other_regions);
        assert_eq!(LARGE_IN_FLIGHT.load(Relaxed), 0);
    }
}
