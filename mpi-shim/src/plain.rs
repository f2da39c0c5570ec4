//! Ranged GETs over plain HTTP/1.1 whose body is read from the socket straight into the
//! caller's buffer.
//!
//! ureq reads every body through its own input buffer and copies it out, so the http data path
//! paid two copies per byte (socket to ureq, ureq to the rank's buffer) where a `pread` pays one.
//! On the node-local path that second copy was about a quarter of the read's time
//! (bench/RESULTS.md, MPI shim, 2026-12-03). For `http://`
//! endpoints a ranged GET therefore writes its signed request head itself, parses the answer's
//! head with `httparse`, and `read`s the `Content-Length` body into the destination slice.
//! Everything else (leases, multipart, https) goes through ureq.
//!
//! Connections are kept alive in a small pool. An idle connection the gateway has closed shows
//! as a write error or an end of stream before any answer byte; the request is then sent once
//! more on a new connection (a GET is idempotent).

use crate::core::{Code, Error};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept per client.
const MAX_IDLE: usize = 64;
/// Longest answer head accepted.
const MAX_HEAD: usize = 64 << 10;
/// Error bodies read at most this far (they are small XML documents).
const MAX_ERROR_BODY: usize = 64 << 10;
/// Seconds without progress before a request fails (ureq's setting on the other path).
const TIMEOUT: Duration = Duration::from_secs(120);

/// What a GET answered.
#[derive(Debug)]
pub enum Answer {
    /// 206: the buffer holds the requested range.
    Body,
    /// 200 of exactly the buffer's length: the whole object (the caller checks the offset).
    Whole,
    /// Any other status, with (the start of) its body.
    Failure(u16, String),
}

/// A failed exchange, before (`stale`) or after the answer began.
#[derive(Debug)]
pub struct Failed {
    code: Code,
    message: String,
    /// Nothing of an answer arrived on a reused connection: worth one more try.
    stale: bool,
}

impl Failed {
    fn net(message: impl Into<String>) -> Self {
        Self { code: Code::Network, message: message.into(), stale: false }
    }

    pub fn into_error(self, what: &str) -> Error {
        Error::new(self.code, format!("{what}: {}", self.message))
    }
}

/// Keep-alive connections to one `host:port`.
pub struct Pool {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl Pool {
    /// `authority` is the endpoint's `host[:port]`; port 80 when it names none.
    pub fn new(authority: &str, port: Option<u16>) -> Self {
        let addr = if port.is_some() { authority.to_owned() } else { format!("{authority}:80") };
        Self { addr, idle: Mutex::new(Vec::new()) }
    }

    fn take(&self) -> Option<TcpStream> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn put(&self, s: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(s);
        }
    }

    fn connect(&self) -> Result<TcpStream, Failed> {
        let s = TcpStream::connect(&self.addr).map_err(|e| Failed::net(format!("connect {}: {e}", self.addr)))?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(TIMEOUT))
            .and_then(|_| s.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| Failed::net(format!("socket timeouts: {e}")))?;
        Ok(s)
    }

    /// Send the signed GET `req` and read its body into `buf`, which must be exactly the
    /// requested range's length.
    pub fn get(&self, req: &http::Request<&[u8]>, buf: &mut [u8]) -> Result<Answer, Failed> {
        let head = request_head(req);
        if let Some(mut s) = self.take() {
            match exchange(&mut s, &head, buf) {
                Ok((answer, keep)) => {
                    if keep {
                        self.put(s);
                    }
                    return Ok(answer);
                }
                Err(e) if e.stale => {}
                Err(e) => return Err(e),
            }
        }
        let mut s = self.connect()?;
        let (answer, keep) = exchange(&mut s, &head, buf)?;
        if keep {
            self.put(s);
        }
        Ok(answer)
    }
}

/// `GET /path?query HTTP/1.1` and the request's headers.
fn request_head(req: &http::Request<&[u8]>) -> Vec<u8> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut head = Vec::with_capacity(1024);
    head.extend_from_slice(format!("{} {target} HTTP/1.1\r\n", req.method()).as_bytes());
    for (k, v) in req.headers() {
        head.extend_from_slice(k.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// One request and its answer on `s`; the answer and whether `s` may be reused.
fn exchange(s: &mut TcpStream, head: &[u8], buf: &mut [u8]) -> Result<(Answer, bool), Failed> {
    if let Err(e) = s.write_all(head) {
        return Err(Failed { stale: true, ..Failed::net(format!("sending the request: {e}")) });
    }
    // The head, and whatever part of the body arrived with it.
    let mut got: Vec<u8> = Vec::with_capacity(8 << 10);
    let mut chunk = [0u8; 8 << 10];
    let (status, length, close, body_start) = loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => {
                let stale = got.is_empty();
                return Err(Failed { stale, ..Failed::net("the connection closed before the answer's head ended") });
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let stale = got.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset;
                return Err(Failed { stale, ..Failed::net(format!("reading the answer: {e}")) });
            }
        };
        got.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&got) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let mut length = None;
                let mut close = resp.version == Some(0);
                for h in resp.headers.iter() {
                    let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = v.parse::<u64>().ok();
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        // A chunked body has no length up front: read it as an error body would be.
                        length = None;
                        close = true;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = v.eq_ignore_ascii_case("close");
                    }
                }
                break (status, length, close, len);
            }
            Ok(httparse::Status::Partial) if got.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(Failed::net("answer head too long")),
            Err(e) => return Err(Failed::net(format!("malformed answer head: {e}"))),
        }
    };
    let early = &got[body_start..];
    if status != 200 && status != 206 {
        let mut body = early.to_vec();
        let keep = match length {
            Some(n) if n as usize <= MAX_ERROR_BODY => {
                let rest = (n as usize).saturating_sub(body.len());
                let mut more = vec![0u8; rest];
                let complete = s.read_exact(&mut more).is_ok();
                body.extend_from_slice(&more);
                complete && !close
            }
            _ => {
                // Unknown or large length: take what comes within a short wait, then drop the
                // connection.
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.take(MAX_ERROR_BODY as u64).read_to_end(&mut body);
                false
            }
        };
        body.truncate(MAX_ERROR_BODY);
        return Ok((Answer::Failure(status, String::from_utf8_lossy(&body).into_owned()), keep));
    }
    match length {
        Some(n) if n == buf.len() as u64 => {}
        Some(n) => {
            return Err(Failed {
                code: Code::Http,
                message: format!("HTTP {status} with a body of {n} bytes for a range of {}", buf.len()),
                stale: false,
            })
        }
        None => {
            return Err(Failed {
                code: Code::Http,
                message: format!("HTTP {status} without Content-Length"),
                stale: false,
            })
        }
    }
    if early.len() > buf.len() {
        return Err(Failed::net("the gateway sent more than the answer's Content-Length"));
    }
    buf[..early.len()].copy_from_slice(early);
    let mut done = early.len();
    while done < buf.len() {
        match s.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(Failed {
                    code: Code::Range,
                    message: format!("{done} of {} bytes before the end of the body", buf.len()),
                    stale: false,
                })
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failed::net(format!("reading the body: {e}"))),
        }
    }
    let answer = if status == 206 { Answer::Body } else { Answer::Whole };
    Ok((answer, !close))
}
