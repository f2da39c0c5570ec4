//! Configuration: a documented TOML file, overridden by flags, validated into [`Config`].
//!
//! Precedence: command-line flag > environment (credentials only) > file > default.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Named limits, each with its unit last.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent client connections.
    pub connections_max: usize,
    /// Largest object accepted by a single PutObject (AWS: 5 GiB).
    pub object_size_bytes_max: u64,
    /// Largest part (AWS: 5 GiB).
    pub part_size_bytes_max: u64,
    /// Smallest part other than the last (AWS: 5 MiB).
    pub part_size_bytes_min: u64,
    /// Largest XML request body (DeleteObjects, CompleteMultipartUpload...).
    pub xml_body_bytes_max: usize,
    /// How long in-flight requests may run after SIGTERM before they are aborted.
    pub shutdown_grace_secs: u64,
    /// Requests being served at once (until their response body ends); more answer 503 SlowDown.
    pub requests_in_flight_max: usize,
    /// Bytes of file data buffered by all requests together (GET chunks until sent, PUT write
    /// buffers); a request waits for buffer space instead of allocating more.
    pub buffer_bytes_max: u64,
    /// Write buffers (memtables) of the metadata store's tables together.
    pub index_write_buffer_bytes_max: u64,
    /// The metadata store's block cache (data, index and filter blocks of all tables).
    pub index_block_cache_bytes_max: u64,
}

impl Limits {
    /// The metadata store's share of these limits.
    pub fn index_memory(&self) -> strait_metadata::MemoryLimits {
        strait_metadata::MemoryLimits {
            write_buffer_bytes: self.index_write_buffer_bytes_max as usize,
            block_cache_bytes: self.index_block_cache_bytes_max as usize,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_max: 1024,
            object_size_bytes_max: 5 << 30,
            part_size_bytes_max: 5 << 30,
            part_size_bytes_min: 5 << 20,
            xml_body_bytes_max: 4 << 20,
            shutdown_grace_secs: 30,
            requests_in_flight_max: 1024,
            buffer_bytes_max: 256 << 20,
            index_write_buffer_bytes_max: strait_metadata::MemoryLimits::default().write_buffer_bytes as u64,
            index_block_cache_bytes_max: strait_metadata::MemoryLimits::default().block_cache_bytes as u64,
        }
    }
}

/// The `[server]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub domains: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_sigv2: bool,
    /// Access log destination: a file path, or `-` for standard output.
    pub access_log: Option<String>,
    /// Audit log destination (denied requests, changes of buckets, policies and ACLs).
    pub audit_log: Option<String>,
    /// Address of the admin listener (/metrics, /health/live, /health/ready).
    pub admin_listen: Option<SocketAddr>,
    /// Keep the listing index (default true); false lists by reading and sorting every visited
    /// directory on every request (for comparison, or to rule the index out).
    pub listing_index: Option<bool>,
    /// With a delimiter, `stat` each child directory emitted as a common prefix from the index
    /// (default false): a directory emptied in place on the file system then stops showing at
    /// once, at the cost of one `stat` per prefix (see ARCHITECTURE.md, Listing).
    pub listing_verify_prefixes: Option<bool>,
}

/// The `[lease]` table: leases for the MPI shim's direct path (`POST /?strait-lease`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseFile {
    /// Tell authorized callers the file-system path of objects (false: callers use GETs).
    pub direct: bool,
    /// How long a lease may be used to open files, in seconds.
    pub ttl_secs: u64,
}

impl Default for LeaseFile {
    fn default() -> Self {
        Self { direct: true, ttl_secs: 300 }
    }
}

/// The `[io]` table: how object bytes move between files and sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoFile {
    /// File I/O engine: `auto` (io_uring if the start-up probe succeeds, else threads),
    /// `io_uring` (fail to start without it) or `threads`. `--io-engine` / `STRAIT_IO_ENGINE`
    /// override it.
    pub engine: strait_connectors::engine::Choice,
    /// Send GET bodies on plaintext HTTP/1.x connections with sendfile(2) (no user-space copy).
    pub zero_copy: bool,
    /// Serve the open (and small-body read) of GET and HEAD on the async thread when the kernel
    /// can do it from its caches alone, on local file systems; otherwise on the I/O pool.
    pub inline_cached: bool,
    /// How PUT, CopyObject and multipart completion stage an object's bytes before publishing
    /// them: `auto` (an unnamed `O_TMPFILE` file in the target directory where the file system
    /// supports it, else a named `.strait.stage.*` file) or `named`. `--staging` /
    /// `STRAIT_STAGING` override it.
    pub staging: Staging,
}

impl Default for IoFile {
    fn default() -> Self {
        Self {
            engine: strait_connectors::engine::Choice::Auto,
            zero_copy: true,
            inline_cached: true,
            staging: Staging::Auto,
        }
    }
}

/// `io.staging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Staging {
    /// Unnamed files (`O_TMPFILE`) where the file system supports them.
    Auto,
    /// Always a named staging file, journaled and removed at start after a crash.
    Named,
}

impl std::str::FromStr for Staging {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "named" => Ok(Self::Named),
            _ => Err(format!("unknown staging {s:?} (expected auto or named)")),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub server: ServerFile,
    pub limits: Limits,
    pub lease: LeaseFile,
    pub io: IoFile,
}

/// The validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub state_dir: PathBuf,
    pub region: String,
    pub domains: Vec<String>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub allow_sigv2: bool,
    pub access_log: Option<String>,
    pub audit_log: Option<String>,
    pub admin_listen: Option<SocketAddr>,
    pub listing_index: bool,
    pub listing_verify_prefixes: bool,
    pub limits: Limits,
    pub lease: crate::lease::LeaseSettings,
    pub io_engine: strait_connectors::engine::Choice,
    pub zero_copy: bool,
    pub inline_cached: bool,
    pub staging: Staging,
}

/// Flags that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub domains: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub access_log: Option<String>,
    pub audit_log: Option<String>,
    pub admin_listen: Option<SocketAddr>,
    pub io_engine: Option<strait_connectors::engine::Choice>,
    pub staging: Option<Staging>,
}

pub fn load_file(path: &std::path::Path) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Config {
    pub fn build(file: ConfigFile, o: Overrides) -> Result<Self, String> {
        let s = file.server;
        let root = o.root.or(s.root).unwrap_or_else(|| PathBuf::from("./data"));
        let state_dir = o.state_dir.or(s.state_dir).unwrap_or_else(|| root.join(".strait"));
        let tls = match (o.tls_cert.or(s.tls_cert), o.tls_key.or(s.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("server.tls_cert and server.tls_key must be given together".into()),
        };
        let domains = if o.domains.is_empty() { s.domains } else { o.domains };
        let region = o.region.or(s.region).unwrap_or_else(|| "us-east-1".into());
        if region.is_empty() {
            return Err("server.region: expected a non-empty region name".into());
        }
        let l = &file.limits;
        if l.part_size_bytes_min > l.part_size_bytes_max {
            return Err("limits.part_size_bytes_min: must not exceed limits.part_size_bytes_max".into());
        }
        if l.connections_max == 0 {
            return Err("limits.connections_max: expected at least 1".into());
        }
        if l.requests_in_flight_max == 0 {
            return Err("limits.requests_in_flight_max: expected at least 1".into());
        }
        if l.buffer_bytes_max < 2 << 20 {
            return Err("limits.buffer_bytes_max: expected at least 2097152 (two 1 MiB chunks)".into());
        }
        if l.index_write_buffer_bytes_max < 4 << 20 {
            return Err("limits.index_write_buffer_bytes_max: expected at least 4194304 (4 MiB)".into());
        }
        if file.lease.ttl_secs == 0 || file.lease.ttl_secs > 86_400 {
            return Err("lease.ttl_secs: expected 1 to 86400 seconds".into());
        }
        Ok(Self {
            listen: o.listen.or(s.listen).unwrap_or_else(|| "127.0.0.1:9000".parse().expect("literal")),
            root,
            state_dir,
            region,
            domains,
            tls,
            allow_sigv2: s.allow_sigv2,
            access_log: o.access_log.or(s.access_log),
            audit_log: o.audit_log.or(s.audit_log),
            admin_listen: o.admin_listen.or(s.admin_listen),
            listing_index: s.listing_index.unwrap_or(true),
            listing_verify_prefixes: s.listing_verify_prefixes.unwrap_or(false),
            limits: file.limits,
            lease: crate::lease::LeaseSettings { direct: file.lease.direct, ttl_secs: file.lease.ttl_secs },
            io_engine: o.io_engine.unwrap_or(file.io.engine),
            zero_copy: file.io.zero_copy,
            inline_cached: file.io.inline_cached,
            staging: o.staging.unwrap_or(file.io.staging),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_and_flag_precedence() {
        let f: ConfigFile =
            toml::from_str("[server]\nlisten = \"127.0.0.1:1234\"\nroot = \"/r\"\n[limits]\npart_size_bytes_min = 1\n")
                .unwrap();
        let c = Config::build(f.clone(), Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.state_dir, PathBuf::from("/r/.strait"));
        assert_eq!(c.limits.part_size_bytes_min, 1);
        let c = Config::build(f, Overrides { root: Some("/x".into()), ..Default::default() }).unwrap();
        assert_eq!(c.root, PathBuf::from("/x"));
    }

    #[test]
    fn bad_keys_are_named() {
        let e = toml::from_str::<ConfigFile>("[limits]\nconnection_max = 3\n").unwrap_err().to_string();
        assert!(e.contains("connection_max"), "{e}");
        let f: ConfigFile = toml::from_str("[server]\ntls_cert = \"/c\"\n").unwrap();
        assert!(Config::build(f, Overrides::default()).unwrap_err().contains("tls_key"));
        let e = toml::from_str::<ConfigFile>("[io]\nengine = \"epoll\"\n").unwrap_err().to_string();
        assert!(e.contains("epoll") && e.contains("io_uring"), "{e}");
    }

    #[test]
    fn io_engine_flag_beats_the_file() {
        use strait_connectors::engine::Choice;
        let f: ConfigFile =
            toml::from_str("[io]\nengine = \"threads\"\nzero_copy = false\ninline_cached = false\n").unwrap();
        let c = Config::build(f.clone(), Overrides::default()).unwrap();
        assert_eq!((c.io_engine, c.zero_copy, c.inline_cached), (Choice::Threads, false, false));
        let o = Overrides { io_engine: Some(Choice::IoUring), ..Default::default() };
        assert_eq!(Config::build(f, o).unwrap().io_engine, Choice::IoUring);
        assert_eq!(Config::build(ConfigFile::default(), Overrides::default()).unwrap().io_engine, Choice::Auto);
    }
}
