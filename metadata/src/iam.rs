//! Identities: tenants (accounts), users, groups, access keys and identity policies, in the
//! `iam` column family.
//!
//! | key | value |
//! |---|---|
//! | `t 0x00 tenant` | [`TenantRecord`] |
//! | `a 0x00 account-id` | tenant name (lookup by account id) |
//! | `u 0x00 tenant 0x00 user` | [`UserRecord`] |
//! | `g 0x00 tenant 0x00 group` | [`GroupRecord`] |
//! | `k 0x00 access-key-id` | [`KeyRecord`] (the secret sealed by the gateway's master key) |
//! | `p 0x00 tenant 0x00 policy` | [`PolicyRecord`] (every version of a named identity policy) |
//! | `r 0x00 tenant 0x00 role` | [`RoleRecord`] (a role federated identities assume) |
//! | `o 0x00 provider` | [`OidcProviderRecord`] (a trusted OpenID provider) |
//! | `b 0x00 bucket 0x00 version (8 hex digits)` | [`BucketPolicyVersion`]: the bucket policies set through this gateway, oldest first |
//!
//! Names never contain NUL (the gateway validates them), so a tenant's users are the range
//! `u 0x00 tenant 0x00 ...`, in name order. Every change is one synced WriteBatch: a deleted
//! user's keys go with it, and a revoked key is gone for the next request.

use super::{decode, encode, MetaError, MetaStore, Result, CF_IAM};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// A POSIX identity as stored (uid, primary gid, supplementary groups).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PosixRecord {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub groups: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TenantRecord {
    pub v: u32,
    pub name: String,
    /// 12 digits, as an AWS account id: `arn:aws:iam::<account>:user/<name>`.
    pub account_id: String,
    /// The identity of the tenant's file-system work (users may override it).
    pub posix: PosixRecord,
    /// Identity policies that apply to every user of the tenant.
    #[serde(default)]
    pub policies: Vec<String>,
    pub created_unix_s: i64,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct UserRecord {
    pub v: u32,
    pub tenant: String,
    pub name: String,
    /// Stable id (`aws:userid`), `AIDA...`.
    pub user_id: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub policies: Vec<String>,
    /// Overrides the tenant's POSIX identity.
    #[serde(default)]
    pub posix: Option<PosixRecord>,
    /// Principal tags (`aws:PrincipalTag/...`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub created_unix_s: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct GroupRecord {
    pub v: u32,
    pub tenant: String,
    pub name: String,
    #[serde(default)]
    pub policies: Vec<String>,
    pub created_unix_s: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct KeyRecord {
    pub v: u32,
    pub access_key: String,
    pub tenant: String,
    pub user: String,
    /// The secret, sealed (encrypted and authenticated) under the master key: base64 of
    /// nonce ‖ ciphertext ‖ tag, with the access key id as associated data.
    pub secret_sealed: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created_unix_s: i64,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// Temporary credentials from AssumeRoleWithWebIdentity (`user` is then `role/<name>`).
    #[serde(default)]
    pub session: Option<SessionRecord>,
}

/// What a set of temporary credentials stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct SessionRecord {
    pub role: String,
    pub session_name: String,
    /// SHA-256 (hex) of the session token the client must present with every request.
    pub token_sha256: String,
    pub issued_unix_s: i64,
    pub expires_unix_s: i64,
    /// The web identity: the token's issuer and subject.
    pub issuer: String,
    pub subject: String,
    /// The session policy passed to AssumeRoleWithWebIdentity (it can only narrow the role's).
    #[serde(default)]
    pub session_policy: Option<String>,
}

/// A role: who may assume it (a trust policy over token claims), what it may do (identity
/// policies of its tenant) and which POSIX identity its sessions run as.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RoleRecord {
    pub v: u32,
    pub tenant: String,
    pub name: String,
    /// `AROA...`
    pub role_id: String,
    pub trust_policy: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub posix: Option<PosixRecord>,
    pub max_session_secs: u32,
    /// Sessions issued before this instant are refused (revocation of a role's sessions).
    #[serde(default)]
    pub revoked_before_unix_s: i64,
    pub created_unix_s: i64,
}

/// One bucket policy as set (or removed: `document` absent) through this gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BucketPolicyVersion {
    pub v: u32,
    pub bucket: String,
    pub version: u32,
    pub document: Option<String>,
    pub created_unix_s: i64,
    pub author: String,
}

/// A trusted OpenID provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct OidcProviderRecord {
    pub v: u32,
    pub name: String,
    /// The issuer URL (`iss` of its tokens; discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Accepted `aud` values (client ids).
    pub audiences: Vec<String>,
    /// Accepted signing algorithms (`RS256`, `ES256`, ...); never `none` or HMAC.
    pub algorithms: Vec<String>,
    pub created_unix_s: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PolicyVersion {
    pub version: u32,
    pub document: String,
    pub created_unix_s: i64,
    /// Who put it (the admin API's caller).
    pub author: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PolicyRecord {
    pub v: u32,
    pub tenant: String,
    pub name: String,
    /// The version in force.
    pub default_version: u32,
    /// Oldest first; the newest is the largest `version`.
    pub versions: Vec<PolicyVersion>,
}

impl PolicyRecord {
    /// The document in force.
    pub fn document(&self) -> Option<&str> {
        self.versions.iter().find(|v| v.version == self.default_version).map(|v| v.document.as_str())
    }
}

fn ikey(kind: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = vec![kind, 0];
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// The key prefix of every record of `kind` under `tenant` (`kind 0x00 tenant 0x00`).
fn tenant_prefix(kind: u8, tenant: &str) -> Vec<u8> {
    let mut k = ikey(kind, &[tenant]);
    k.push(0);
    k
}

const TENANT: u8 = b't';
const ACCOUNT: u8 = b'a';
const USER: u8 = b'u';
const GROUP: u8 = b'g';
const KEY: u8 = b'k';
const POLICY: u8 = b'p';
const ROLE: u8 = b'r';
const OIDC: u8 = b'o';
const BUCKET_POLICY: u8 = b'b';

impl MetaStore {
    fn iam_get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.db.get_cf(self.cf(CF_IAM)?, key)? {
            Some(v) => Ok(Some(decode(CF_IAM, &v)?)),
            None => Ok(None),
        }
    }

    fn iam_scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_IAM)?, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(decode(CF_IAM, &v)?);
        }
        Ok(out)
    }

    fn iam_write(&self, f: impl FnOnce(&mut WriteBatch, &rocksdb::ColumnFamily)) -> Result<()> {
        let cf = self.cf(CF_IAM)?;
        let mut b = WriteBatch::default();
        f(&mut b, cf);
        self.db.write_opt(b, &Self::synced())?;
        Ok(())
    }

    // --- tenants ----------------------------------------------------------------------------

    pub fn tenant(&self, name: &str) -> Result<Option<TenantRecord>> {
        self.iam_get(&ikey(TENANT, &[name]))
    }

    pub fn tenant_by_account(&self, account_id: &str) -> Result<Option<TenantRecord>> {
        match self.db.get_cf(self.cf(CF_IAM)?, ikey(ACCOUNT, &[account_id]))? {
            Some(name) => self.tenant(&String::from_utf8_lossy(&name)),
            None => Ok(None),
        }
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.iam_scan(&[TENANT, 0])
    }

    /// Create or replace a tenant (its account id must not belong to another tenant).
    pub fn put_tenant(&self, t: &TenantRecord) -> Result<()> {
        if let Some(other) = self.tenant_by_account(&t.account_id)? {
            if other.name != t.name {
                return Err(MetaError::Conflict(format!("account {} belongs to tenant {}", t.account_id, other.name)));
            }
        }
        self.iam_write(|b, cf| {
            b.put_cf(cf, ikey(TENANT, &[&t.name]), encode(t));
            b.put_cf(cf, ikey(ACCOUNT, &[&t.account_id]), t.name.as_bytes());
        })
    }

    /// Remove a tenant with all its users, groups, keys and policies, in one batch.
    pub fn delete_tenant(&self, name: &str) -> Result<bool> {
        let Some(t) = self.tenant(name)? else { return Ok(false) };
        let keys: Vec<KeyRecord> = self.iam_scan::<KeyRecord>(&[KEY, 0])?;
        let cf = self.cf(CF_IAM)?;
        let mut doomed = Vec::new();
        for kind in [USER, GROUP, POLICY, ROLE] {
            let prefix = tenant_prefix(kind, name);
            for item in self.db.iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward)) {
                let (k, _) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                doomed.push(k.to_vec());
            }
        }
        self.iam_write(|b, cf| {
            for k in &doomed {
                b.delete_cf(cf, k);
            }
            for k in keys.iter().filter(|k| k.tenant == name) {
                b.delete_cf(cf, ikey(KEY, &[&k.access_key]));
            }
            b.delete_cf(cf, ikey(ACCOUNT, &[&t.account_id]));
            b.delete_cf(cf, ikey(TENANT, &[name]));
        })?;
        Ok(true)
    }

    // --- users --------------------------------------------------------------------------------

    pub fn user(&self, tenant: &str, name: &str) -> Result<Option<UserRecord>> {
        self.iam_get(&ikey(USER, &[tenant, name]))
    }

    pub fn users(&self, tenant: &str) -> Result<Vec<UserRecord>> {
        self.iam_scan(&tenant_prefix(USER, tenant))
    }

    pub fn put_user(&self, u: &UserRecord) -> Result<()> {
        self.iam_write(|b, cf| b.put_cf(cf, ikey(USER, &[&u.tenant, &u.name]), encode(u)))
    }

    /// Remove a user and every access key of it, in one batch.
    pub fn delete_user(&self, tenant: &str, name: &str) -> Result<bool> {
        if self.user(tenant, name)?.is_none() {
            return Ok(false);
        }
        let keys = self.keys_of(tenant, Some(name))?;
        self.iam_write(|b, cf| {
            for k in &keys {
                b.delete_cf(cf, ikey(KEY, &[&k.access_key]));
            }
            b.delete_cf(cf, ikey(USER, &[tenant, name]));
        })?;
        Ok(true)
    }

    // --- groups -------------------------------------------------------------------------------

    pub fn group(&self, tenant: &str, name: &str) -> Result<Option<GroupRecord>> {
        self.iam_get(&ikey(GROUP, &[tenant, name]))
    }

    pub fn groups(&self, tenant: &str) -> Result<Vec<GroupRecord>> {
        self.iam_scan(&tenant_prefix(GROUP, tenant))
    }

    pub fn put_group(&self, g: &GroupRecord) -> Result<()> {
        self.iam_write(|b, cf| b.put_cf(cf, ikey(GROUP, &[&g.tenant, &g.name]), encode(g)))
    }

    /// Remove a group, and its name from every member, in one batch.
    pub fn delete_group(&self, tenant: &str, name: &str) -> Result<bool> {
        if self.group(tenant, name)?.is_none() {
            return Ok(false);
        }
        let mut members = self.users(tenant)?;
        members.retain(|u| u.groups.iter().any(|g| g == name));
        self.iam_write(|b, cf| {
            for mut u in members {
                u.groups.retain(|g| g != name);
                b.put_cf(cf, ikey(USER, &[&u.tenant, &u.name]), encode(&u));
            }
            b.delete_cf(cf, ikey(GROUP, &[tenant, name]));
        })?;
        Ok(true)
    }

    // --- access keys --------------------------------------------------------------------------

    pub fn key(&self, access_key: &str) -> Result<Option<KeyRecord>> {
        self.iam_get(&ikey(KEY, &[access_key]))
    }

    /// A tenant's keys (of one user, when given).
    pub fn keys_of(&self, tenant: &str, user: Option<&str>) -> Result<Vec<KeyRecord>> {
        let mut all: Vec<KeyRecord> = self.iam_scan(&[KEY, 0])?;
        all.retain(|k| k.tenant == tenant && user.is_none_or(|u| k.user == u));
        Ok(all)
    }

    pub fn put_key(&self, k: &KeyRecord) -> Result<()> {
        self.iam_write(|b, cf| b.put_cf(cf, ikey(KEY, &[&k.access_key]), encode(k)))
    }

    /// Replace one key by another in one batch (rotation: the new key works and the old one
    /// stops at the same instant).
    pub fn replace_key(&self, old: &KeyRecord, new: &KeyRecord) -> Result<()> {
        self.iam_write(|b, cf| {
            b.put_cf(cf, ikey(KEY, &[&old.access_key]), encode(old));
            b.put_cf(cf, ikey(KEY, &[&new.access_key]), encode(new));
        })
    }

    pub fn delete_key(&self, access_key: &str) -> Result<bool> {
        if self.key(access_key)?.is_none() {
            return Ok(false);
        }
        self.iam_write(|b, cf| b.delete_cf(cf, ikey(KEY, &[access_key])))?;
        Ok(true)
    }

    /// Every key record (for re-sealing under a new master key).
    pub fn all_keys(&self) -> Result<Vec<KeyRecord>> {
        self.iam_scan(&[KEY, 0])
    }

    /// Write many key records in one batch.
    pub fn put_keys(&self, keys: &[KeyRecord]) -> Result<()> {
        self.iam_write(|b, cf| {
            for k in keys {
                b.put_cf(cf, ikey(KEY, &[&k.access_key]), encode(k));
            }
        })
    }

    /// Remove expired temporary credentials; returns how many.
    pub fn prune_sessions(&self, now_unix_s: i64) -> Result<usize> {
        let old: Vec<KeyRecord> = self
            .all_keys()?
            .into_iter()
            .filter(|k| k.session.as_ref().is_some_and(|s| s.expires_unix_s <= now_unix_s))
            .collect();
        self.iam_write(|b, cf| {
            for k in &old {
                b.delete_cf(cf, ikey(KEY, &[&k.access_key]));
            }
        })?;
        Ok(old.len())
    }

    // --- roles and OpenID providers -------------------------------------------------------------

    pub fn role(&self, tenant: &str, name: &str) -> Result<Option<RoleRecord>> {
        self.iam_get(&ikey(ROLE, &[tenant, name]))
    }

    pub fn roles(&self, tenant: &str) -> Result<Vec<RoleRecord>> {
        self.iam_scan(&tenant_prefix(ROLE, tenant))
    }

    pub fn put_role(&self, r: &RoleRecord) -> Result<()> {
        self.iam_write(|b, cf| b.put_cf(cf, ikey(ROLE, &[&r.tenant, &r.name]), encode(r)))
    }

    /// Remove a role and every session of it, in one batch.
    pub fn delete_role(&self, tenant: &str, name: &str) -> Result<bool> {
        if self.role(tenant, name)?.is_none() {
            return Ok(false);
        }
        let sessions = self.keys_of(tenant, Some(&format!("role/{name}")))?;
        self.iam_write(|b, cf| {
            for k in &sessions {
                b.delete_cf(cf, ikey(KEY, &[&k.access_key]));
            }
            b.delete_cf(cf, ikey(ROLE, &[tenant, name]));
        })?;
        Ok(true)
    }

    pub fn oidc_provider(&self, name: &str) -> Result<Option<OidcProviderRecord>> {
        self.iam_get(&ikey(OIDC, &[name]))
    }

    pub fn oidc_providers(&self) -> Result<Vec<OidcProviderRecord>> {
        self.iam_scan(&[OIDC, 0])
    }

    pub fn put_oidc_provider(&self, p: &OidcProviderRecord) -> Result<()> {
        self.iam_write(|b, cf| b.put_cf(cf, ikey(OIDC, &[&p.name]), encode(p)))
    }

    pub fn delete_oidc_provider(&self, name: &str) -> Result<bool> {
        if self.oidc_provider(name)?.is_none() {
            return Ok(false);
        }
        self.iam_write(|b, cf| b.delete_cf(cf, ikey(OIDC, &[name])))?;
        Ok(true)
    }

    // --- bucket policy history ------------------------------------------------------------------

    pub fn bucket_policy_versions(&self, bucket: &str) -> Result<Vec<BucketPolicyVersion>> {
        self.iam_scan(&tenant_prefix(BUCKET_POLICY, bucket))
    }

    /// Record the bucket's policy as just set (`None`: removed); its version number.
    pub fn add_bucket_policy_version(
        &self,
        bucket: &str,
        document: Option<&str>,
        author: &str,
        now_unix_s: i64,
    ) -> Result<u32> {
        let version = self.bucket_policy_versions(bucket)?.last().map_or(1, |v| v.version + 1);
        let rec = BucketPolicyVersion {
            v: crate::FORMAT_VERSION,
            bucket: bucket.to_owned(),
            version,
            document: document.map(str::to_owned),
            created_unix_s: now_unix_s,
            author: author.to_owned(),
        };
        let key = ikey(BUCKET_POLICY, &[bucket, &format!("{version:08x}")]);
        self.iam_write(|b, cf| b.put_cf(cf, key, encode(&rec)))?;
        Ok(version)
    }

    // --- identity policies --------------------------------------------------------------------

    pub fn policy(&self, tenant: &str, name: &str) -> Result<Option<PolicyRecord>> {
        self.iam_get(&ikey(POLICY, &[tenant, name]))
    }

    pub fn policies(&self, tenant: &str) -> Result<Vec<PolicyRecord>> {
        self.iam_scan(&tenant_prefix(POLICY, tenant))
    }

    pub fn put_policy(&self, p: &PolicyRecord) -> Result<()> {
        self.iam_write(|b, cf| b.put_cf(cf, ikey(POLICY, &[&p.tenant, &p.name]), encode(p)))
    }

    /// Remove a policy, and its name from every user, group and the tenant, in one batch.
    pub fn delete_policy(&self, tenant: &str, name: &str) -> Result<bool> {
        if self.policy(tenant, name)?.is_none() {
            return Ok(false);
        }
        let users: Vec<UserRecord> =
            self.users(tenant)?.into_iter().filter(|u| u.policies.iter().any(|p| p == name)).collect();
        let groups: Vec<GroupRecord> =
            self.groups(tenant)?.into_iter().filter(|g| g.policies.iter().any(|p| p == name)).collect();
        let t = self.tenant(tenant)?;
        self.iam_write(|b, cf| {
            for mut u in users {
                u.policies.retain(|p| p != name);
                b.put_cf(cf, ikey(USER, &[&u.tenant, &u.name]), encode(&u));
            }
            for mut g in groups {
                g.policies.retain(|p| p != name);
                b.put_cf(cf, ikey(GROUP, &[&g.tenant, &g.name]), encode(&g));
            }
            if let Some(mut t) = t.filter(|t| t.policies.iter().any(|p| p == name)) {
                t.policies.retain(|p| p != name);
                b.put_cf(cf, ikey(TENANT, &[&t.name]), encode(&t));
            }
            b.delete_cf(cf, ikey(POLICY, &[tenant, name]));
        })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "strait-iam-test-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn tenant_users_keys_and_cascades() {
        let dir = tmp();
        let s = MetaStore::open(&dir).unwrap();
        let t = TenantRecord { v: 1, name: "climate".into(), account_id: "111111111111".into(), ..Default::default() };
        s.put_tenant(&t).unwrap();
        let clash = TenantRecord { name: "other".into(), ..t.clone() };
        assert!(matches!(s.put_tenant(&clash), Err(MetaError::Conflict(_))));
        // A tenant whose name prefixes another's keeps its own users.
        s.put_tenant(&TenantRecord { v: 1, name: "clim".into(), account_id: "2".repeat(12), ..Default::default() })
            .unwrap();
        for (tenant, user) in [("climate", "ann"), ("climate", "bob"), ("clim", "zed")] {
            s.put_user(&UserRecord { v: 1, tenant: tenant.into(), name: user.into(), ..Default::default() }).unwrap();
            s.put_key(&KeyRecord {
                v: 1,
                access_key: format!("AK{user}"),
                tenant: tenant.into(),
                user: user.into(),
                status: "Active".into(),
                ..Default::default()
            })
            .unwrap();
        }
        let names: Vec<_> = s.users("clim").unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["zed"]);
        assert_eq!(s.tenant_by_account("111111111111").unwrap().unwrap().name, "climate");
        assert!(s.delete_user("climate", "bob").unwrap());
        assert!(s.key("AKbob").unwrap().is_none(), "a deleted user's keys go with it");
        assert!(s.key("AKann").unwrap().is_some());
        s.put_group(&GroupRecord { v: 1, tenant: "climate".into(), name: "ops".into(), ..Default::default() }).unwrap();
        let mut ann = s.user("climate", "ann").unwrap().unwrap();
        ann.groups = vec!["ops".into()];
        ann.policies = vec!["rw".into()];
        s.put_user(&ann).unwrap();
        s.put_policy(&PolicyRecord { v: 1, tenant: "climate".into(), name: "rw".into(), ..Default::default() })
            .unwrap();
        assert!(s.delete_group("climate", "ops").unwrap());
        assert!(s.delete_policy("climate", "rw").unwrap());
        let ann = s.user("climate", "ann").unwrap().unwrap();
        assert!(ann.groups.is_empty() && ann.policies.is_empty());
        assert!(s.delete_tenant("climate").unwrap());
        assert!(s.key("AKann").unwrap().is_none());
        assert!(s.tenant_by_account("111111111111").unwrap().is_none());
        assert!(s.key("AKzed").unwrap().is_some(), "another tenant is untouched");
        std::fs::remove_dir_all(&dir).ok();
    }
}
