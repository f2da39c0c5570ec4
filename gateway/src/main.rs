//! `strait`: an S3 gateway over (parallel) POSIX file systems.

mod access_log;
mod admin;
mod admin_iam;
mod auth;
mod catalog;
mod cli_iam;
mod config;
mod iam;
mod lease;
mod links;
mod metrics;
mod oidc;
mod s3;
mod server;
mod sts;
mod telemetry;
mod zerocopy;

/// jemalloc for every allocation in the process: Rust's through this global allocator, and,
/// because the crate is built with unprefixed symbols, RocksDB's C++ ones too (the binary
/// exports `malloc`/`free`). With glibc's malloc, per-thread arenas grew resident memory by a
/// third over a 10-minute mixed load without any leak; with jemalloc for Rust alone, by a fifth
/// (RocksDB's allocations, made from many blocking-pool threads, stayed in glibc's arenas);
/// with both on jemalloc it is flat (bench/RESULTS.md, the soaks of 2026-12-02).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use config::{Config, ConfigFile, Overrides};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strait_connectors::PosixStore;
use strait_metadata::{MetaStore, RootCredentials, FORMAT_VERSION};

#[derive(Parser)]
#[command(name = "strait", version, about = "S3 gateway over POSIX and parallel file systems")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Cmd {
    /// Serve the S3 API (the default).
    Serve(ServeArgs),
    /// Validate a configuration file and print the resulting settings.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// The listing index (derived from the file system). Run while the gateway is stopped: the
    /// metadata store is opened by one process at a time.
    Index {
        #[command(subcommand)]
        cmd: IndexCmd,
    },
    /// The dataset catalog, through a running gateway's admin listener.
    Catalog {
        /// The admin listener's URL.
        #[arg(long, default_value = "http://127.0.0.1:9001")]
        admin: String,
        /// Bearer token of the catalog API.
        #[arg(long, env = "STRAIT_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        cmd: CatalogCmd,
    },
    /// Administration of buckets. Run while the gateway is stopped (it reads links at start).
    Admin {
        #[command(subcommand)]
        cmd: AdminCmd,
    },
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// All datasets.
    List,
    /// One dataset.
    Get { id: String },
    /// Create or replace dataset ID from a JSON file (`-`: standard input).
    Put { id: String, file: PathBuf },
    /// Remove dataset ID (the data stays).
    Delete { id: String },
    /// Datasets matching every given criterion.
    Search {
        /// Words to find in title, description, keywords, domain, extra fields.
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        keyword: Option<String>,
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        steward: Option<String>,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        /// KEY=VALUE: datasets holding an object with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Objects carrying a tag (KEY=VALUE), from the object tag index.
    Objects {
        #[arg(long)]
        tag: String,
        #[arg(long)]
        bucket: Option<String>,
    },
    /// The catalog as DCAT JSON-LD.
    Dcat,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Linked buckets: buckets served from existing directories anywhere on the file system.
    Bucket {
        #[command(subcommand)]
        cmd: BucketCmd,
    },
    /// Bucket policies: validate, and simulate a request against one.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// Tenants (accounts) and their POSIX identities, through a running gateway's admin listener.
    Tenant {
        #[command(flatten)]
        conn: cli_iam::Conn,
        #[command(subcommand)]
        cmd: cli_iam::TenantCmd,
    },
    /// A tenant's users.
    User {
        #[command(flatten)]
        conn: cli_iam::Conn,
        #[command(subcommand)]
        cmd: cli_iam::UserCmd,
    },
    /// A tenant's groups.
    Group {
        #[command(flatten)]
        conn: cli_iam::Conn,
        #[command(subcommand)]
        cmd: cli_iam::GroupCmd,
    },
    /// Users' access keys.
    Key {
        #[command(flatten)]
        conn: cli_iam::Conn,
        #[command(subcommand)]
        cmd: cli_iam::KeyCmd,
    },
    /// The master key sealing every stored secret. Run while the gateway is stopped.
    MasterKey {
        #[command(subcommand)]
        cmd: MasterKeyCmd,
    },
    /// The history of bucket policies (versions, diff, rollback), through the admin listener.
    BucketPolicy {
        #[command(flatten)]
        conn: cli_iam::Conn,
        #[command(subcommand)]
        cmd: cli_iam::BucketPolicyCmd,
    },
    /// A tenant's identity policies, with their versions.
    IdentityPolicy {
        #[command(flatten)]
        conn: cli_iam::Conn,
        #[command(subcommand)]
        cmd: cli_iam::IdPolicyCmd,
    },
}

#[derive(Subcommand)]
enum MasterKeyCmd {
    /// Re-seal every stored secret (tenants' keys, sessions, the generated root secret) under a
    /// new master key, then replace the key file. Crash-safe: rerun it to finish.
    Rotate(StoreArgs),
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Evaluate one request against a policy; print the decision and the statement that decided.
    /// Works while the gateway runs (it reads the policy document only).
    Simulate {
        /// The policy document (a JSON file).
        #[arg(long, conflicts_with_all = ["bucket", "admin"], required_unless_present_any = ["bucket", "admin"])]
        policy: Option<PathBuf>,
        /// Or: ask a running gateway's admin listener (URL) to simulate a tenant's user (--principal
        /// arn:aws:iam::<account>:user/<name>) with all its identity policies and, for an S3
        /// resource, the bucket's policy and owner, as the gateway would decide.
        #[arg(long, conflicts_with = "bucket")]
        admin: Option<String>,
        /// Or: the stored policy of this bucket under the root (for a linked bucket, pass
        /// --policy with the document GetBucketPolicy returns).
        #[arg(long)]
        bucket: Option<String>,
        /// Directory whose sub-directories are the buckets [default: ./data].
        #[arg(long)]
        root: Option<PathBuf>,
        /// Principal of the request (repeatable: ARN, account id, access key); none = anonymous.
        #[arg(long)]
        principal: Vec<String>,
        /// Action, such as s3:GetObject.
        #[arg(long)]
        action: String,
        /// Resource ARN, such as arn:aws:s3:::bucket/key.
        #[arg(long)]
        resource: String,
        /// Condition key and value (repeatable), such as aws:SourceIp=10.1.2.3.
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
    },
    /// Validate a policy document; an error names the statement at fault.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum BucketCmd {
    /// Serve the existing directory PATH as bucket NAME (nothing is moved or copied).
    Link {
        name: String,
        path: PathBuf,
        /// The tenant the bucket belongs to (its account is recorded on the directory; the
        /// directory's owner and mode are left as they are). Default: the administrator.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create bucket NAME under the root, for a tenant (its uid/gid, mode 0750) or the administrator.
    Create {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Stop serving a linked bucket (the directory and its files stay).
    Unlink {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List linked buckets.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum IndexCmd {
    /// Report drift between the listing index and the file system; exit status 1 if any.
    Verify(StoreArgs),
    /// Forget the listing index (listings rebuild it); with --warm, rebuild it now.
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        /// Walk every bucket now instead of at the first listings.
        #[arg(long)]
        warm: bool,
    },
}

/// Where the tree and the state are (as for `serve`).
#[derive(clap::Args)]
struct StoreArgs {
    /// TOML configuration file (server.root and server.state_dir are read from it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory whose sub-directories are the buckets [default: ./data].
    #[arg(long)]
    root: Option<PathBuf>,
    /// State directory [default: <root>/.strait].
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Directory whose sub-directories are the buckets [default: ./data].
    #[arg(long)]
    root: Option<PathBuf>,
    /// State directory (metadata store, generated credentials) [default: <root>/.strait].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9000]; port 0 picks a free port.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Base domain for virtual-hosted-style addressing (bucket.DOMAIN); repeatable.
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Region reported by GetBucketLocation (signatures are accepted for any region).
    #[arg(long)]
    region: Option<String>,
    /// Serve /metrics, /health/live and /health/ready on this address.
    #[arg(long)]
    admin_listen: Option<std::net::SocketAddr>,
    /// Write an access log of JSON lines to FILE (`-`: standard output).
    #[arg(long)]
    access_log: Option<String>,
    /// Append an audit log of JSON lines to FILE: every denied request and every change to
    /// buckets, bucket policies and ACLs.
    #[arg(long)]
    audit_log: Option<String>,
    /// File I/O engine: auto (io_uring if the start-up probe succeeds), io_uring, or threads.
    #[arg(long, env = "STRAIT_IO_ENGINE")]
    io_engine: Option<strait_connectors::engine::Choice>,
    /// Staging of object bytes before publish: auto (unnamed O_TMPFILE files where the file
    /// system supports them) or named (.strait.stage.* files).
    #[arg(long, env = "STRAIT_STAGING")]
    staging: Option<config::Staging>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One process-wide TLS crypto provider (ring), for every rustls user in the process: our
    // listener, and HTTP clients built with rustls but without a provider of their own (the
    // OTLP exporter's reqwest client when features unify that way).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.cmd.unwrap_or(Cmd::Serve(ServeArgs::default())) {
        Cmd::Serve(args) => telemetry::init().and_then(|t| {
            let r = serve(args);
            t.shutdown();
            r
        }),
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Index { cmd } => index_cmd(cmd),
        Cmd::Admin { cmd: AdminCmd::Bucket { cmd } } => bucket_cmd(cmd),
        Cmd::Admin { cmd: AdminCmd::Policy { cmd } } => policy_cmd(cmd),
        Cmd::Admin { cmd: AdminCmd::Tenant { conn, cmd } } => cli_iam::tenant(&conn, cmd),
        Cmd::Admin { cmd: AdminCmd::User { conn, cmd } } => cli_iam::user(&conn, cmd),
        Cmd::Admin { cmd: AdminCmd::Group { conn, cmd } } => cli_iam::group(&conn, cmd),
        Cmd::Admin { cmd: AdminCmd::Key { conn, cmd } } => cli_iam::key(&conn, cmd),
        Cmd::Admin { cmd: AdminCmd::IdentityPolicy { conn, cmd } } => cli_iam::policy(&conn, cmd),
        Cmd::Admin { cmd: AdminCmd::BucketPolicy { conn, cmd } } => cli_iam::bucket_policy(&conn, cmd),
        Cmd::Admin { cmd: AdminCmd::MasterKey { cmd: MasterKeyCmd::Rotate(args) } } => master_key_rotate(args),
        Cmd::Catalog { admin, token, cmd } => catalog_cmd(&admin, token.as_deref(), cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strait: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> Result<(), String> {
    let cfg = Config::build(config::load_file(file)?, Overrides::default())?;
    println!("{cfg:#?}");
    Ok(())
}

fn catalog_cmd(admin: &str, token: Option<&str>, cmd: CatalogCmd) -> Result<(), String> {
    let base = admin.trim_end_matches('/');
    let enc = |s: &str| urlencoding::encode(s).into_owned();
    let (method, path, body) = match cmd {
        CatalogCmd::List => ("GET", "/catalog/datasets".to_owned(), None),
        CatalogCmd::Get { id } => ("GET", format!("/catalog/datasets/{}", enc(&id)), None),
        CatalogCmd::Delete { id } => ("DELETE", format!("/catalog/datasets/{}", enc(&id)), None),
        CatalogCmd::Put { id, file } => {
            let body = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| e.to_string())?;
                b
            } else {
                std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?
            };
            ("PUT", format!("/catalog/datasets/{}", enc(&id)), Some(body))
        }
        CatalogCmd::Search { q, keyword, format, steward, bucket, domain, tag } => {
            let params: Vec<String> = [
                ("q", q),
                ("keyword", keyword),
                ("format", format),
                ("steward", steward),
                ("bucket", bucket),
                ("domain", domain),
                ("tag", tag),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={}", enc(&v))))
            .collect();
            ("GET", format!("/catalog/search?{}", params.join("&")), None)
        }
        CatalogCmd::Objects { tag, bucket } => {
            let mut p = format!("/catalog/objects?tag={}", enc(&tag));
            if let Some(b) = bucket {
                p += &format!("&bucket={}", enc(&b));
            }
            ("GET", p, None)
        }
        CatalogCmd::Dcat => ("GET", "/catalog/dcat".to_owned(), None),
    };
    let auth = token.map_or(cli_iam::Auth::None, |t| cli_iam::Auth::Bearer(t.to_owned()));
    cli_iam::send(base, method, &path, body, auth)
}

/// The metadata store and the store of an offline command.
fn open_offline(args: StoreArgs) -> Result<(Arc<MetaStore>, PosixStore, Config), String> {
    let file = match &args.config {
        Some(p) => config::load_file(p)?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides { root: args.root, state_dir: args.state_dir, ..Default::default() };
    let cfg = Config::build(file, overrides)?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
    let meta = Arc::new(MetaStore::open_with(&cfg.state_dir.join("db"), cfg.limits.index_memory()).map_err(|e| {
        format!(
            "metadata store {}: {e} (is a gateway running on this state directory? stop it first)",
            cfg.state_dir.display()
        )
    })?);
    let store = PosixStore::open(&cfg.root, Arc::new(Journal(meta.clone(), true, cfg.listing_verify_prefixes)))
        .map_err(|e| format!("root: {e}"))?;
    store.set_links(links::load(&meta)?);
    Ok((meta, store, cfg))
}

fn master_key_path(state_dir: &Path) -> PathBuf {
    std::env::var_os("STRAIT_MASTER_KEY_FILE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir.join("master.key"))
}

fn master_key_rotate(args: StoreArgs) -> Result<(), String> {
    let (meta, _, cfg) = open_offline(args)?;
    let path = master_key_path(&cfg.state_dir);
    let n = iam::rotate_master_key(&path, |old, new| {
        let mut keys = meta.all_keys().map_err(|e| e.to_string())?;
        for k in &mut keys {
            let secret = old.open(&k.access_key, &k.secret_sealed).ok_or_else(|| {
                format!("key {}: does not open with the current master key; nothing changed", k.access_key)
            })?;
            k.secret_sealed = new.seal(&k.access_key, &secret);
        }
        meta.put_keys(&keys).map_err(|e| e.to_string())?;
        if let Some(c) = meta.root_credentials().map_err(|e| e.to_string())? {
            if let Some(sealed) = c.secret_key.strip_prefix(SEALED) {
                let aad = format!("root:{}", c.access_key);
                let secret = old.open(&aad, sealed).ok_or("the root secret does not open; nothing changed")?;
                let c = RootCredentials { secret_key: format!("{SEALED}{}", new.seal(&aad, &secret)), ..c };
                meta.set_root_credentials(&c).map_err(|e| e.to_string())?;
            }
        }
        Ok(keys.len())
    })?;
    println!("master key {} rotated; {n} key(s) re-sealed", path.display());
    Ok(())
}

fn bucket_cmd(cmd: BucketCmd) -> Result<(), String> {
    match cmd {
        BucketCmd::Link { name, path, tenant, store } => {
            let (meta, store, cfg) = open_offline(store)?;
            let r = links::link(&meta, &store, &cfg.state_dir, &name, &path, tenant.as_deref())?;
            println!("linked bucket {name} -> {}", r.path);
            Ok(())
        }
        BucketCmd::Create { name, tenant, store } => {
            let (meta, store, _) = open_offline(store)?;
            links::create(&meta, &store, &name, tenant.as_deref())?;
            println!("created bucket {name}{}", tenant.map(|t| format!(" for tenant {t}")).unwrap_or_default());
            Ok(())
        }
        BucketCmd::Unlink { name, store } => {
            let (meta, store, _) = open_offline(store)?;
            if !links::unlink(&meta, &store, &name)? {
                return Err(format!("bucket {name} is not linked"));
            }
            println!("unlinked bucket {name} (its directory is unchanged)");
            Ok(())
        }
        BucketCmd::List { store } => {
            let (meta, _, _) = open_offline(store)?;
            for r in meta.bucket_links().map_err(|e| e.to_string())? {
                println!("{}\t{}", r.name, r.path);
            }
            Ok(())
        }
    }
}

fn policy_cmd(cmd: PolicyCmd) -> Result<(), String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    match cmd {
        PolicyCmd::Check { file } => {
            let p = strait_policy::Policy::parse(&read(&file)?).map_err(|e| format!("{}: {e}", file.display()))?;
            println!("{}: valid, {} statement(s)", file.display(), p.statements.len());
            Ok(())
        }
        PolicyCmd::Simulate { policy, bucket, root, principal, action, resource, context, admin } => {
            if let Some(url) = admin {
                let [who] = principal.as_slice() else {
                    return Err("--admin: pass exactly one --principal arn:aws:iam::<account>:user/<name>".into());
                };
                let mut ctx = serde_json::Map::new();
                for kv in &context {
                    let (k, v) = kv.split_once('=').ok_or_else(|| format!("--context {kv}: expected KEY=VALUE"))?;
                    ctx.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
                }
                let body =
                    serde_json::json!({"principal": who, "action": action, "resource": resource, "context": ctx});
                return cli_iam::simulate(&cli_iam::Conn { admin: url }, body);
            }
            let doc = match (policy, bucket) {
                (Some(f), _) => read(&f)?,
                (None, Some(b)) => {
                    let root = root.unwrap_or_else(|| PathBuf::from("./data"));
                    if !root.is_dir() {
                        return Err(format!("{}: not a directory", root.display()));
                    }
                    let store = PosixStore::open(&root, Arc::new(strait_connectors::store::NoJournal))
                        .map_err(|e| format!("{}: {e}", root.display()))?;
                    let bucket = store.bucket(&b).map_err(|e| format!("bucket {b}: {e}"))?;
                    bucket.policy().map_err(|e| e.to_string())?.ok_or_else(|| format!("bucket {b} has no policy"))?
                }
                (None, None) => return Err("pass --policy FILE or --bucket NAME".into()),
            };
            let p = strait_policy::Policy::parse(&doc)?;
            let mut req = strait_policy::Request { principals: principal, action, resource, ..Default::default() };
            for kv in &context {
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("--context {kv}: expected KEY=VALUE"))?;
                req = req.with(k, v);
            }
            let (decision, by) = p.explain(&req);
            println!("decision: {decision:?}");
            match by {
                Some(i) => println!("decided by: {}", p.label(i)),
                None => println!("decided by: no statement applies (implicit deny)"),
            }
            Ok(())
        }
    }
}

fn index_cmd(cmd: IndexCmd) -> Result<(), String> {
    let (args, warm, verify) = match cmd {
        IndexCmd::Verify(a) => (a, false, true),
        IndexCmd::Rebuild { store, warm } => (store, warm, false),
    };
    let (meta, store, _) = open_offline(args)?;
    let buckets = store.list_buckets(s3s::path::check_bucket_name).map_err(|e| e.to_string())?;
    if !verify {
        meta.clear_listing().map_err(|e| e.to_string())?;
        println!("listing index cleared");
        if !warm {
            return Ok(());
        }
    }
    let mut drift = 0;
    for b in &buckets {
        let bucket = store.bucket(&b.name).map_err(|e| e.to_string())?;
        if verify {
            let r = strait_connectors::list::verify(&bucket).map_err(|e| format!("{}: {e}", b.name))?;
            println!(
                "{}: {} directories trusted, {} to re-read, {} cached records checked, {} drift",
                b.name,
                r.trusted_dirs,
                r.unstamped_dirs,
                r.cached_files,
                r.drift.len()
            );
            for d in &r.drift {
                println!("  drift: {d}");
            }
            drift += r.drift.len();
        } else {
            let (mut after, mut keys) = (None::<String>, 0usize);
            loop {
                let q = strait_connectors::list::ListQuery {
                    prefix: "",
                    delimiter: None,
                    after: after.as_deref(),
                    max_keys: 10_000,
                };
                let page = strait_connectors::list::list(&bucket, &q).map_err(|e| format!("{}: {e}", b.name))?;
                keys += page.items.len();
                for item in &page.items {
                    if let strait_connectors::list::ListItem::Object { key, meta: m, .. } = item {
                        meta.set_object_tags(&b.name, key, &m.tags).map_err(|e| e.to_string())?;
                    }
                }
                after = page.items.last().map(|i| i.key().to_owned());
                if !page.truncated {
                    break;
                }
            }
            println!("{}: indexed {keys} keys", b.name);
        }
    }
    if drift > 0 {
        return Err(format!("{drift} differences between the listing index and the file system"));
    }
    Ok(())
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect()
}

/// Root credentials: from the environment, else stored in the state directory, else generated
/// once (and printed).
/// Prefix of a root secret stored sealed under the master key (older state directories hold it
/// in the clear; it is sealed at the next start).
const SEALED: &str = "sealed:";

fn root_credentials(meta: &MetaStore, master: &iam::MasterKey) -> Result<(String, String), String> {
    let env = (std::env::var("STRAIT_ROOT_ACCESS_KEY").ok(), std::env::var("STRAIT_ROOT_SECRET_KEY").ok());
    match env {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => {
            eprintln!("strait: access key: {a} (from STRAIT_ROOT_ACCESS_KEY)");
            return Ok((a, s));
        }
        (None, None) => {}
        _ => return Err("set both STRAIT_ROOT_ACCESS_KEY and STRAIT_ROOT_SECRET_KEY, or neither".into()),
    }
    let aad = |ak: &str| format!("root:{ak}");
    let seal = |c: &RootCredentials| RootCredentials {
        v: FORMAT_VERSION,
        access_key: c.access_key.clone(),
        secret_key: format!("{SEALED}{}", master.seal(&aad(&c.access_key), &c.secret_key)),
    };
    let creds = match meta.root_credentials().map_err(|e| e.to_string())? {
        Some(c) => match c.secret_key.strip_prefix(SEALED) {
            Some(sealed) => {
                let secret = master.open(&aad(&c.access_key), sealed).ok_or(
                    "the stored root secret does not open with this master key (was master.key replaced?); \
                     set STRAIT_ROOT_ACCESS_KEY/STRAIT_ROOT_SECRET_KEY or restore the key",
                )?;
                RootCredentials { secret_key: secret, ..c }
            }
            None => {
                meta.set_root_credentials(&seal(&c)).map_err(|e| e.to_string())?;
                c
            }
        },
        None => {
            let c = RootCredentials {
                v: FORMAT_VERSION,
                access_key: format!("STRAIT{}", random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 14)),
                secret_key: random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40),
            };
            meta.set_root_credentials(&seal(&c)).map_err(|e| e.to_string())?;
            c
        }
    };
    eprintln!("strait: access key: {}", creds.access_key);
    eprintln!("strait: secret key: {}", creds.secret_key);
    Ok((creds.access_key, creds.secret_key))
}

/// The connectors' side state (staging journal, large metadata records, listing index) in the
/// metadata store; `.1`: whether the listing index is on; `.2`: whether it verifies common
/// prefixes (`server.listing_verify_prefixes`).
struct Journal(Arc<MetaStore>, bool, bool);

impl strait_connectors::SideState for Journal {
    fn record(&self, path: &Path) -> strait_connectors::Result<()> {
        privileged(|| self.0.record_staging(path))
            .map_err(|e| strait_connectors::ConnectorError::Busy(format!("staging journal: {e}")))
    }
    fn forget(&self, path: &Path) {
        if let Err(e) = privileged(|| self.0.forget_staging(path)) {
            tracing::warn!(error = %e, path = %path.display(), "staging journal");
        }
    }
    fn put_meta(&self, inode: &str, record: &[u8]) -> strait_connectors::Result<()> {
        privileged(|| self.0.put_object_meta(inode, record))
            .map_err(|e| strait_connectors::ConnectorError::Busy(format!("metadata side table: {e}")))
    }
    fn get_meta(&self, inode: &str) -> strait_connectors::Result<Option<Vec<u8>>> {
        privileged(|| self.0.object_meta(inode))
            .map_err(|e| strait_connectors::ConnectorError::Busy(format!("metadata side table: {e}")))
    }
    fn delete_meta(&self, inode: &str) {
        if let Err(e) = privileged(|| self.0.delete_object_meta(inode)) {
            tracing::warn!(error = %e, inode, "metadata side table");
        }
    }
    fn object_changed(&self, bucket: &str, key: &str, tags: &[(String, String)]) {
        if let Err(e) = privileged(|| self.0.set_object_tags(bucket, key, tags)) {
            tracing::warn!(error = %e, bucket, key, "object tag index");
        }
    }
    fn list_index(&self) -> Option<&dyn strait_connectors::index::ListIndex> {
        self.1.then_some(self as &dyn strait_connectors::index::ListIndex)
    }
}

/// The metadata store's files belong to the gateway: a closure running under a tenant's
/// identity leaves it for these calls (`ident::privileged`).
use strait_connectors::ident::privileged;

fn index_err(e: strait_metadata::MetaError) -> strait_connectors::ConnectorError {
    strait_connectors::ConnectorError::Busy(format!("listing index: {e}"))
}

impl strait_connectors::index::ListIndex for Journal {
    fn stamp(&self, bucket: &str, dir: &str) -> strait_connectors::Result<Option<strait_connectors::index::DirStamp>> {
        let v = privileged(|| self.0.dir_stamp(bucket, dir)).map_err(index_err)?;
        Ok(v.and_then(|v| strait_connectors::index::DirStamp::decode(&v)))
    }
    fn children(
        &self,
        bucket: &str,
        dir: &str,
        from: &str,
        limit: usize,
    ) -> strait_connectors::Result<Vec<(String, Vec<u8>)>> {
        privileged(|| self.0.dir_children(bucket, dir, from, limit)).map_err(index_err)
    }
    fn apply(
        &self,
        bucket: &str,
        dir: &str,
        batch: strait_connectors::index::DirBatch,
    ) -> strait_connectors::Result<()> {
        let stamp = batch.stamp.map(|s| s.encode());
        let info = batch.info.map(|i| i.encode()).unwrap_or_default();
        privileged(|| self.0.apply_dir(bucket, dir, &batch.add, &batch.remove, stamp.as_deref(), &info))
            .map_err(index_err)
    }
    fn cache_meta(
        &self,
        bucket: &str,
        key: &str,
        meta: &strait_connectors::index::CachedMeta,
    ) -> strait_connectors::Result<()> {
        privileged(|| self.0.put_listing_entry(bucket, key, &meta.encode())).map_err(index_err)
    }
    fn drop_bucket(&self, bucket: &str) -> strait_connectors::Result<()> {
        privileged(|| self.0.drop_listing(bucket)).map_err(index_err)
    }
    fn verify_prefixes(&self) -> bool {
        self.2
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(p) => config::load_file(p)?,
        None => ConfigFile::default(),
    };
    let cfg = Config::build(
        file,
        Overrides {
            listen: args.listen,
            root: args.root,
            state_dir: args.state_dir,
            region: args.region,
            domains: args.domains,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            access_log: args.access_log,
            audit_log: args.audit_log,
            admin_listen: args.admin_listen,
            io_engine: args.io_engine,
            staging: args.staging,
        },
    )?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
    // The state directory holds the master key and every tenant's metadata (it may sit inside
    // the served tree): the gateway's alone.
    std::fs::set_permissions(&cfg.state_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", cfg.state_dir.display()))?;
    let meta = Arc::new(
        MetaStore::open_with(&cfg.state_dir.join("db"), cfg.limits.index_memory())
            .map_err(|e| format!("metadata store: {e}"))?,
    );
    let master = iam::MasterKey::load_or_create(&master_key_path(&cfg.state_dir))?;
    let (ak, sk) = root_credentials(&meta, &master)?;
    let store =
        PosixStore::open(&cfg.root, Arc::new(Journal(meta.clone(), cfg.listing_index, cfg.listing_verify_prefixes)))
            .map_err(|e| format!("root: {e}"))?;
    let links = links::load(&meta)?;
    for (name, l) in &links {
        eprintln!("strait: bucket {name} is linked to {}", l.path.display());
    }
    store.set_links(links);
    let anonymous = store.set_anonymous_staging(cfg.staging == config::Staging::Auto);
    if cfg.staging == config::Staging::Auto && !anonymous {
        eprintln!("strait: staging: named (/proc/self/fd is missing, so unnamed files cannot be linked)");
    }
    for p in meta.staging_files().map_err(|e| e.to_string())? {
        store.remove_stale_staging(&p);
    }
    let week_ms = 7 * 24 * 3600 * 1000;
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    meta.prune_completed(now_ms - week_ms).map_err(|e| e.to_string())?;

    let admin_store = store.clone();
    let gate_store = store.clone();
    let admin_meta = meta.clone();
    let policies = Arc::new(s3::policy::PolicyCache::default());
    let strait = s3::Strait {
        store,
        meta,
        limits: Arc::new(cfg.limits.clone()),
        region: cfg.region.clone(),
        owner: ak.clone(),
        policies: policies.clone(),
    };
    let iam = Arc::new(iam::Iam { meta: admin_meta.clone(), master });
    let pruned =
        iam.meta.prune_sessions(time::OffsetDateTime::now_utc().unix_timestamp()).map_err(|e| e.to_string())?;
    if pruned > 0 {
        eprintln!("strait: removed {pruned} expired session credential(s)");
    }
    let tenants = iam.meta.tenants().map_err(|e| format!("metadata store: {e}"))?.len();
    if tenants > 0 {
        match strait_connectors::ident::available() {
            Ok(()) => eprintln!("strait: {tenants} tenant(s); file-system work runs as each tenant's POSIX identity"),
            Err(e) => eprintln!("strait: WARNING: {tenants} tenant(s) but POSIX identities cannot be switched ({e}): tenants' requests are refused"),
        }
    }
    let mut b = s3s::service::S3ServiceBuilder::new(strait);
    b.set_auth(auth::KeyStore::new([(ak.clone(), sk.clone())], Some(iam.clone())));
    let gate = auth::Gate {
        allow_sigv2: cfg.allow_sigv2,
        store: gate_store.clone(),
        policies,
        root_key: ak.clone(),
        iam: iam.clone(),
    };
    b.set_access(gate.clone());
    let lease = lease::LeaseRoute { gate: gate.clone(), store: gate_store, settings: cfg.lease.clone() };
    let sts = sts::StsRoute { gate, iam: iam.clone(), verifier: Arc::new(oidc::Verifier::default()) };
    b.set_route(sts::Routes { lease, sts });
    let mut s3cfg = s3s::config::S3Config::default();
    s3cfg.xml_max_body_size = cfg.limits.xml_body_bytes_max;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(s3cfg))));
    if !cfg.domains.is_empty() {
        b.set_host(auth::Domains { domains: cfg.domains.clone() });
    }
    let service = b.build();
    let metrics = Arc::new(metrics::Metrics::new());
    let audit_log = match cfg.audit_log.as_deref() {
        Some(dest) => Some(access_log::AccessLog::open(dest).map_err(|e| format!("audit log {dest}: {e}"))?),
        None => None,
    };
    let admin = admin::Admin {
        metrics: metrics.clone(),
        root: cfg.root.clone(),
        state_dir: cfg.state_dir.clone(),
        meta: admin_meta,
        store: admin_store,
        token: std::env::var("STRAIT_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
        iam: iam.clone(),
        root_credentials: (ak.clone(), sk.clone()),
        audit_log: audit_log.clone(),
    };
    let access_log = match cfg.access_log.as_deref() {
        Some(dest) => Some(access_log::AccessLog::open(dest).map_err(|e| format!("access log {dest}: {e}"))?),
        None => None,
    };
    let tls = match &cfg.tls {
        Some((c, k)) => Some(server::tls_acceptor(c, k)?),
        None => None,
    };

    s3::io::set_buffer_limit(cfg.limits.buffer_bytes_max);
    let engine = strait_connectors::engine::start(cfg.io_engine)?;
    match &engine.fallback_reason {
        Some(why) => eprintln!("strait: I/O engine: threads (io_uring unavailable: {why})"),
        None => eprintln!("strait: I/O engine: {}", engine.kind.as_str()),
    }
    let zero_copy = cfg.zero_copy && tls.is_none();
    s3::io::set_inline(cfg.inline_cached);
    if !cfg.inline_cached {
        eprintln!("strait: cached opens inline: off (every GET/HEAD open goes to the I/O pool)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| format!("listen {}: {e}", cfg.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        if let Some(a) = cfg.admin_listen {
            let l = tokio::net::TcpListener::bind(a).await.map_err(|e| format!("admin listen {a}: {e}"))?;
            eprintln!("strait: admin on http://{}", l.local_addr().map_err(|e| e.to_string())?);
            tokio::spawn(admin.serve(l));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("strait: serving {} on {scheme}://{addr}", cfg.root.display());
        eprintln!("strait: listening on {scheme}://{addr}");
        server::serve(
            listener,
            server::Front {
                inner: service,
                allow_sigv2: cfg.allow_sigv2,
                access_log,
                audit_log,
                in_flight: Arc::new(tokio::sync::Semaphore::new(cfg.limits.requests_in_flight_max)),
                metrics,
                peer: None,
                secure: tls.is_some(),
                regions: None,
            },
            tls,
            cfg.limits.connections_max,
            zero_copy,
            std::time::Duration::from_secs(cfg.limits.shutdown_grace_secs),
        )
        .await
        .map_err(|e| e.to_string())
    })
}
