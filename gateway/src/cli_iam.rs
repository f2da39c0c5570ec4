//! `strait admin tenant|user|group|key|policy ...`: the identity API of a running gateway
//! (`admin_iam.rs`), from the command line. Credentials: `STRAIT_ADMIN_TOKEN`, or an access key
//! pair in `STRAIT_ADMIN_ACCESS_KEY`/`STRAIT_ADMIN_SECRET_KEY` (a tenant's user acting on its
//! own tenant), else the root pair in `STRAIT_ROOT_ACCESS_KEY`/`STRAIT_ROOT_SECRET_KEY`.

use clap::Subcommand;
use std::path::PathBuf;

/// Where the admin listener is, and who calls it.
#[derive(clap::Args, Clone)]
pub struct Conn {
    /// The admin listener's URL.
    #[arg(long, default_value = "http://127.0.0.1:9001", global = true)]
    pub admin: String,
}

#[derive(Subcommand)]
pub enum TenantCmd {
    /// Create (or update) a tenant and its POSIX identity.
    Create {
        name: String,
        #[arg(long)]
        uid: u32,
        #[arg(long)]
        gid: u32,
        /// Supplementary groups (comma-separated gids).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<u32>,
        /// A fixed 12-digit account id (default: a random one).
        #[arg(long)]
        account_id: Option<String>,
        /// Identity policies applying to every user of the tenant (repeatable).
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    List,
    Get {
        name: String,
    },
    /// Delete a tenant with its users, groups, keys and policies (buckets and files stay).
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create or update a user.
    Put {
        tenant: String,
        name: String,
        /// Groups (repeatable; replaces the list).
        #[arg(long = "group")]
        groups: Option<Vec<String>>,
        /// Identity policies attached to the user (repeatable; replaces the list).
        #[arg(long = "policy")]
        policies: Option<Vec<String>>,
        /// Principal tag KEY=VALUE (repeatable; replaces the set).
        #[arg(long = "tag")]
        tags: Option<Vec<String>>,
        /// Own POSIX identity UID:GID[:G1,G2...] instead of the tenant's (administrator only).
        #[arg(long)]
        posix: Option<String>,
    },
    List {
        tenant: String,
    },
    Get {
        tenant: String,
        name: String,
    },
    /// Delete a user and its keys.
    Delete {
        tenant: String,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCmd {
    Put {
        tenant: String,
        name: String,
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    List {
        tenant: String,
    },
    Get {
        tenant: String,
        name: String,
    },
    Delete {
        tenant: String,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// A new access key for the user; the secret is printed once.
    Create {
        tenant: String,
        user: String,
    },
    List {
        tenant: String,
        user: String,
    },
    /// The key stops working at the next request.
    Deactivate {
        tenant: String,
        user: String,
        key: String,
    },
    Activate {
        tenant: String,
        user: String,
        key: String,
    },
    /// A new key; the old one becomes inactive at the same instant.
    Rotate {
        tenant: String,
        user: String,
        key: String,
    },
    Delete {
        tenant: String,
        user: String,
        key: String,
    },
}

#[derive(Subcommand)]
pub enum IdPolicyCmd {
    /// Store a new version of a tenant's identity policy (it is in force at once). Errors name
    /// the statement at fault.
    Put {
        tenant: String,
        name: String,
        file: PathBuf,
    },
    Get {
        tenant: String,
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    List {
        tenant: String,
    },
    Versions {
        tenant: String,
        name: String,
    },
    /// Unified diff between two versions (default: the one before the version in force, and it).
    Diff {
        tenant: String,
        name: String,
        #[arg(long)]
        from: Option<u32>,
        #[arg(long)]
        to: Option<u32>,
    },
    /// Put an earlier version back in force.
    Rollback {
        tenant: String,
        name: String,
        #[arg(long)]
        version: u32,
    },
    Delete {
        tenant: String,
        name: String,
    },
}

fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// How a CLI request to the admin listener authenticates.
pub enum Auth {
    None,
    Bearer(String),
    Basic(String, String),
}

/// Send one request to the admin listener and print the answer; an error answer becomes
/// `STATUS: message` (the JSON `error` field when there is one).
pub fn send(base: &str, method: &str, path: &str, body: Option<Vec<u8>>, auth: Auth) -> Result<(), String> {
    let base = base.trim_end_matches('/');
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.request(method.parse().expect("method literal"), format!("{base}{path}"));
    req = match auth {
        Auth::None => req,
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Basic(a, s) => req.basic_auth(a, Some(s)),
    };
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().map_err(|e| format!("{base}: {e}"))?;
    let status = resp.status();
    let text = resp.text().map_err(|e| e.to_string())?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(format!("{status}: {}", msg.trim()));
    }
    print!("{text}");
    Ok(())
}

/// Send one request to the identity API with the credentials of the environment.
fn call(conn: &Conn, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let auth = if let Some(t) = env("STRAIT_ADMIN_TOKEN") {
        Auth::Bearer(t)
    } else if let (Some(a), Some(s)) = (env("STRAIT_ADMIN_ACCESS_KEY"), env("STRAIT_ADMIN_SECRET_KEY")) {
        Auth::Basic(a, s)
    } else if let (Some(a), Some(s)) = (env("STRAIT_ROOT_ACCESS_KEY"), env("STRAIT_ROOT_SECRET_KEY")) {
        Auth::Basic(a, s)
    } else {
        return Err("no credentials: set STRAIT_ADMIN_TOKEN, STRAIT_ADMIN_ACCESS_KEY/STRAIT_ADMIN_SECRET_KEY or STRAIT_ROOT_ACCESS_KEY/STRAIT_ROOT_SECRET_KEY".into());
    };
    send(&conn.admin, method, path, body, auth)
}

fn json(v: serde_json::Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&v).expect("serializes"))
}

pub fn tenant(conn: &Conn, cmd: TenantCmd) -> Result<(), String> {
    match cmd {
        TenantCmd::Create { name, uid, gid, groups, account_id, policies } => {
            let mut b = serde_json::json!({"uid": uid, "gid": gid, "groups": groups, "policies": policies});
            if let Some(a) = account_id {
                b["account_id"] = serde_json::json!(a);
            }
            call(conn, "PUT", &format!("/admin/tenants/{}", enc(&name)), json(b))
        }
        TenantCmd::List => call(conn, "GET", "/admin/tenants", None),
        TenantCmd::Get { name } => call(conn, "GET", &format!("/admin/tenants/{}", enc(&name)), None),
        TenantCmd::Delete { name } => call(conn, "DELETE", &format!("/admin/tenants/{}", enc(&name)), None),
    }
}

fn parse_posix(s: &str) -> Result<serde_json::Value, String> {
    let bad = || format!("--posix {s:?}: expected UID:GID or UID:GID:G1,G2");
    let mut it = s.splitn(3, ':');
    let uid: u32 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let gid: u32 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let groups: Vec<u32> = match it.next() {
        Some(g) if !g.is_empty() => g.split(',').map(|x| x.parse().map_err(|_| bad())).collect::<Result<_, _>>()?,
        _ => vec![],
    };
    Ok(serde_json::json!({"uid": uid, "gid": gid, "groups": groups}))
}

pub fn user(conn: &Conn, cmd: UserCmd) -> Result<(), String> {
    let path = |t: &str, u: &str| format!("/admin/tenants/{}/users/{}", enc(t), enc(u));
    match cmd {
        UserCmd::Put { tenant, name, groups, policies, tags, posix } => {
            let mut b = serde_json::Map::new();
            if let Some(g) = groups {
                b.insert("groups".into(), serde_json::json!(g));
            }
            if let Some(p) = policies {
                b.insert("policies".into(), serde_json::json!(p));
            }
            if let Some(t) = tags {
                let mut m = serde_json::Map::new();
                for kv in t {
                    let (k, v) = kv.split_once('=').ok_or_else(|| format!("--tag {kv:?}: expected KEY=VALUE"))?;
                    m.insert(k.into(), serde_json::json!(v));
                }
                b.insert("tags".into(), serde_json::Value::Object(m));
            }
            if let Some(p) = posix {
                b.insert("posix".into(), parse_posix(&p)?);
            }
            call(conn, "PUT", &path(&tenant, &name), json(serde_json::Value::Object(b)))
        }
        UserCmd::List { tenant } => call(conn, "GET", &format!("/admin/tenants/{}/users", enc(&tenant)), None),
        UserCmd::Get { tenant, name } => call(conn, "GET", &path(&tenant, &name), None),
        UserCmd::Delete { tenant, name } => call(conn, "DELETE", &path(&tenant, &name), None),
    }
}

pub fn group(conn: &Conn, cmd: GroupCmd) -> Result<(), String> {
    let path = |t: &str, g: &str| format!("/admin/tenants/{}/groups/{}", enc(t), enc(g));
    match cmd {
        GroupCmd::Put { tenant, name, policies } => {
            call(conn, "PUT", &path(&tenant, &name), json(serde_json::json!({ "policies": policies })))
        }
        GroupCmd::List { tenant } => call(conn, "GET", &format!("/admin/tenants/{}/groups", enc(&tenant)), None),
        GroupCmd::Get { tenant, name } => call(conn, "GET", &path(&tenant, &name), None),
        GroupCmd::Delete { tenant, name } => call(conn, "DELETE", &path(&tenant, &name), None),
    }
}

pub fn key(conn: &Conn, cmd: KeyCmd) -> Result<(), String> {
    let keys = |t: &str, u: &str| format!("/admin/tenants/{}/users/{}/keys", enc(t), enc(u));
    match cmd {
        KeyCmd::Create { tenant, user } => call(conn, "POST", &keys(&tenant, &user), None),
        KeyCmd::List { tenant, user } => call(conn, "GET", &keys(&tenant, &user), None),
        KeyCmd::Deactivate { tenant, user, key } => call(
            conn,
            "PUT",
            &format!("{}/{}", keys(&tenant, &user), enc(&key)),
            json(serde_json::json!({"status": "Inactive"})),
        ),
        KeyCmd::Activate { tenant, user, key } => call(
            conn,
            "PUT",
            &format!("{}/{}", keys(&tenant, &user), enc(&key)),
            json(serde_json::json!({"status": "Active"})),
        ),
        KeyCmd::Rotate { tenant, user, key } => {
            call(conn, "POST", &format!("{}/{}/rotate", keys(&tenant, &user), enc(&key)), None)
        }
        KeyCmd::Delete { tenant, user, key } => {
            call(conn, "DELETE", &format!("{}/{}", keys(&tenant, &user), enc(&key)), None)
        }
    }
}

pub fn policy(conn: &Conn, cmd: IdPolicyCmd) -> Result<(), String> {
    let path = |t: &str, n: &str| format!("/admin/tenants/{}/policies/{}", enc(t), enc(n));
    match cmd {
        IdPolicyCmd::Put { tenant, name, file } => {
            let doc = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map_err(|e| e.to_string())?;
                b
            } else {
                std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?
            };
            call(conn, "PUT", &path(&tenant, &name), Some(doc))
        }
        IdPolicyCmd::Get { tenant, name, version } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            call(conn, "GET", &format!("{}{q}", path(&tenant, &name)), None)
        }
        IdPolicyCmd::List { tenant } => call(conn, "GET", &format!("/admin/tenants/{}/policies", enc(&tenant)), None),
        IdPolicyCmd::Versions { tenant, name } => {
            call(conn, "GET", &format!("{}/versions", path(&tenant, &name)), None)
        }
        IdPolicyCmd::Diff { tenant, name, from, to } => {
            let mut q = Vec::new();
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = to {
                q.push(format!("to={t}"));
            }
            call(conn, "GET", &format!("{}/diff?{}", path(&tenant, &name), q.join("&")), None)
        }
        IdPolicyCmd::Rollback { tenant, name, version } => {
            call(conn, "POST", &format!("{}/rollback?version={version}", path(&tenant, &name)), None)
        }
        IdPolicyCmd::Delete { tenant, name } => call(conn, "DELETE", &path(&tenant, &name), None),
    }
}

/// `strait admin policy simulate --admin URL --principal ARN ...`: the gateway's own decision.
pub fn simulate(conn: &Conn, body: serde_json::Value) -> Result<(), String> {
    call(conn, "POST", "/admin/simulate", json(body))
}

/// `strait admin bucket-policy ...`: the history of bucket policies set through the gateway.
#[derive(Subcommand)]
pub enum BucketPolicyCmd {
    Versions {
        bucket: String,
    },
    /// Unified diff between two versions (default: the latest and the one before it).
    Diff {
        bucket: String,
        #[arg(long)]
        from: Option<u32>,
        #[arg(long)]
        to: Option<u32>,
    },
    /// Put an earlier version back (a removed one removes the policy).
    Rollback {
        bucket: String,
        #[arg(long)]
        version: u32,
    },
}

pub fn bucket_policy(conn: &Conn, cmd: BucketPolicyCmd) -> Result<(), String> {
    let path = |b: &str| format!("/admin/buckets/{}/policy", enc(b));
    match cmd {
        BucketPolicyCmd::Versions { bucket } => call(conn, "GET", &format!("{}/versions", path(&bucket)), None),
        BucketPolicyCmd::Diff { bucket, from, to } => {
            let mut q = Vec::new();
            if let Some(f) = from {
                q.push(format!("from={f}"));
            }
            if let Some(t) = to {
                q.push(format!("to={t}"));
            }
            call(conn, "GET", &format!("{}/diff?{}", path(&bucket), q.join("&")), None)
        }
        BucketPolicyCmd::Rollback { bucket, version } => {
            call(conn, "POST", &format!("{}/rollback?version={version}", path(&bucket)), None)
        }
    }
}
