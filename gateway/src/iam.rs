//! Tenants, users, groups, access keys and identity policies: the records are in the metadata
//! store (`strait_metadata::iam`); this module seals secrets, resolves an access key into a
//! [`Principal`] and evaluates the principal's identity policies.
//!
//! Every request reads its key and principal from RocksDB (a few point reads served from the
//! block cache): there is no cache to expire, so a revoked or deactivated key, a deleted user or
//! a changed policy applies to the very next request.
//!
//! Secrets are sealed with AES-256-GCM under the master key (`<state>/master.key`, 32 random
//! bytes written once with mode 0600, or the file named by `STRAIT_MASTER_KEY_FILE`). The access
//! key id is the associated data, so a sealed secret moved onto another key id does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::Rng;
use std::path::Path;
use std::sync::Arc;
use strait_connectors::ident::PosixId;
use strait_metadata::{KeyRecord, MetaStore, PosixRecord, TenantRecord, UserRecord};

/// The master key sealing every stored secret.
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// Keys of an interrupted rotation (`<path>.new`, `<path>.old`): records sealed with either
    /// still open, so no crash point of `strait admin master-key rotate` loses a secret.
    fallback: Vec<Aes256Gcm>,
}

fn read_key(path: &Path) -> Result<Option<Aes256Gcm>, String> {
    let hex_key = match std::fs::read_to_string(path) {
        Ok(s) => s.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("master key {}: {e}", path.display())),
    };
    let bytes = hex::decode(&hex_key).map_err(|_| format!("master key {}: expected 64 hex digits", path.display()))?;
    if bytes.len() != 32 {
        return Err(format!("master key {}: expected 64 hex digits (32 bytes)", path.display()));
    }
    Aes256Gcm::new_from_slice(&bytes).map(Some).map_err(|e| e.to_string())
}

fn sibling(path: &Path, ext: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    s.into()
}

/// Re-seal every stored secret under a new master key (the gateway stopped: RocksDB admits
/// one process). Crash-safe: the new key is written to `<path>.new` first, every record is
/// re-sealed (records sealed by either key open meanwhile), then the files are renamed.
/// `reseal(old, new)` re-seals the records; returns how many.
pub fn rotate_master_key(
    path: &Path,
    reseal: impl FnOnce(&MasterKey, &MasterKey) -> Result<usize, String>,
) -> Result<usize, String> {
    let old = MasterKey::load_or_create(path)?;
    let new_path = sibling(path, ".new");
    if read_key(&new_path)?.is_none() {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill(&mut k);
        write_secret_file(&new_path, &hex::encode(k)).map_err(|e| format!("{}: {e}", new_path.display()))?;
    }
    let new = MasterKey { cipher: read_key(&new_path)?.ok_or("new master key vanished")?, fallback: vec![] };
    let n = reseal(&old, &new)?;
    let old_path = sibling(path, ".old");
    std::fs::rename(path, &old_path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::rename(&new_path, path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| e.to_string())?;
    }
    std::fs::remove_file(&old_path).map_err(|e| format!("{}: {e}", old_path.display()))?;
    Ok(n)
}

impl MasterKey {
    /// Read the key file, creating it (32 random bytes, hex, mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let fallback: Vec<Aes256Gcm> = [".new", ".old"]
            .iter()
            .filter_map(|e| read_key(&sibling(path, e)).transpose())
            .collect::<Result<_, _>>()?;
        if let Some(cipher) = read_key(path)? {
            return Ok(Self { cipher, fallback });
        }
        // A rotation interrupted between its two renames: the new key is the one to use.
        let new_path = sibling(path, ".new");
        if read_key(&new_path)?.is_some() {
            std::fs::rename(&new_path, path).map_err(|e| format!("{}: {e}", new_path.display()))?;
            return Self::load_or_create(path);
        }
        Self::create(path).map(|mut k| {
            k.fallback = fallback;
            k
        })
    }

    fn create(path: &Path) -> Result<Self, String> {
        let hex_key = match std::fs::read_to_string(path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                rand::rngs::OsRng.fill(&mut k);
                let h = hex::encode(k);
                write_secret_file(path, &h).map_err(|e| format!("master key {}: {e}", path.display()))?;
                eprintln!("strait: created master key {}", path.display());
                h
            }
            Err(e) => return Err(format!("master key {}: {e}", path.display())),
        };
        let bytes =
            hex::decode(&hex_key).map_err(|_| format!("master key {}: expected 64 hex digits", path.display()))?;
        if bytes.len() != 32 {
            return Err(format!("master key {}: expected 64 hex digits (32 bytes)", path.display()));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok(Self { cipher, fallback: vec![] })
    }

    /// nonce ‖ ciphertext ‖ tag, base64; `aad` binds it to its record.
    pub fn seal(&self, aad: &str, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: aad.as_bytes() })
            .expect("AES-GCM sealing does not fail for short inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, aad: &str, sealed: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD.decode(sealed).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = std::iter::once(&self.cipher)
            .chain(&self.fallback)
            .find_map(|c| c.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() }).ok())?;
        String::from_utf8(pt).ok()
    }
}

/// Write a file readable by its owner only, atomically (temporary file, fsync, rename).
pub fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A tenant's authenticated user (or a role session), with what authorization needs.
pub struct Principal {
    pub tenant: TenantRecord,
    /// The user; for a role session, the session (name = session name, id = `AROA...:session`).
    pub user: UserRecord,
    pub access_key: String,
    pub posix: PosixId,
    /// The identity policies in force: (label, policy), from the tenant, the user's groups and
    /// the user (or the role), each name once.
    pub policies: Vec<(String, strait_policy::Policy)>,
    /// A role session's ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    pub session_arn: Option<String>,
    /// A session policy: it can only narrow what the role's policies allow.
    pub boundary: Option<strait_policy::Policy>,
}

/// Why a key does not authenticate a principal.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown or inactive key, or its user or role is gone.
    UnknownKey,
    /// Temporary credentials past their expiry.
    Expired,
    /// Temporary credentials without their session token, or with another one.
    BadToken,
    /// A role session issued before the role's sessions were revoked.
    Revoked,
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

impl Principal {
    pub fn account(&self) -> &str {
        &self.tenant.account_id
    }

    pub fn arn(&self) -> String {
        match &self.session_arn {
            Some(a) => a.clone(),
            None => format!("arn:aws:iam::{}:user/{}", self.tenant.account_id, self.user.name),
        }
    }

    /// The identity policies' decision, with the statement that decided (`policy NAME vN,
    /// statement K`): an explicit Deny anywhere wins, then the first Allow; a session policy must
    /// allow as well.
    pub fn explain(&self, req: &strait_policy::Request) -> (strait_policy::Decision, Option<String>) {
        use strait_policy::Decision::*;
        let (d, why) = self.explain_policies(req);
        match (&self.boundary, d) {
            (Some(b), Allow) => match b.explain(req) {
                (Allow, _) => (Allow, why),
                (ExplicitDeny, i) => {
                    (ExplicitDeny, Some(format!("the session policy, {}", i.map(|i| b.label(i)).unwrap_or_default())))
                }
                _ => (ImplicitDeny, Some("the session policy does not allow it".into())),
            },
            (Some(b), ImplicitDeny) if b.explain(req).0 == ExplicitDeny => {
                (ExplicitDeny, Some("the session policy".into()))
            }
            _ => (d, why),
        }
    }

    fn explain_policies(&self, req: &strait_policy::Request) -> (strait_policy::Decision, Option<String>) {
        use strait_policy::Decision::*;
        let mut allow = None;
        for (label, p) in &self.policies {
            match p.explain(req) {
                (ExplicitDeny, i) => {
                    return (ExplicitDeny, Some(format!("{label}, {}", i.map(|i| p.label(i)).unwrap_or_default())))
                }
                (Allow, i) if allow.is_none() => {
                    allow = Some(format!("{label}, {}", i.map(|i| p.label(i)).unwrap_or_default()))
                }
                _ => {}
            }
        }
        match allow {
            Some(l) => (Allow, Some(l)),
            None => (ImplicitDeny, None),
        }
    }
}

pub fn posix_of(r: &PosixRecord) -> PosixId {
    PosixId { uid: r.uid, gid: r.gid, groups: r.groups.clone() }
}

/// The identity store.
pub struct Iam {
    pub meta: Arc<MetaStore>,
    pub master: MasterKey,
}

/// Identity policies are checked when stored: a policy that later fails to parse (it cannot,
/// short of a format change) grants nothing and is logged.
pub fn parse_identity_policy(doc: &str) -> Result<strait_policy::Policy, String> {
    let p = strait_policy::Policy::parse(doc)?;
    for (i, s) in p.statements.iter().enumerate() {
        if s.principal.is_some() || s.not_principal.is_some() {
            return Err(format!(
                "{}: an identity policy has no Principal (it applies to whoever it is attached to)",
                p.label(i)
            ));
        }
        if s.resource.is_none() && s.not_resource.is_none() {
            return Err(format!("{}: Resource or NotResource is required", p.label(i)));
        }
    }
    Ok(p)
}

impl Iam {
    /// The secret of an active key (`None`: unknown, inactive, or not sealed by this master key).
    pub fn secret(&self, access_key: &str) -> Result<Option<String>, String> {
        let Some(k) = self.meta.key(access_key).map_err(|e| e.to_string())? else { return Ok(None) };
        if k.status != "Active" {
            return Ok(None);
        }
        match self.master.open(&k.access_key, &k.secret_sealed) {
            Some(s) => Ok(Some(s)),
            None => {
                tracing::error!(access_key, "stored secret does not open with the master key");
                Ok(None)
            }
        }
    }

    /// The principal behind an active key; `token` is the request's session token (required,
    /// and compared, for temporary credentials).
    pub fn principal(&self, access_key: &str, token: Option<&str>) -> Result<Result<Principal, Refusal>, String> {
        let db = |e: strait_metadata::MetaError| e.to_string();
        let Some(k) = self.meta.key(access_key).map_err(db)? else { return Ok(Err(Refusal::UnknownKey)) };
        if k.status != "Active" {
            return Ok(Err(Refusal::UnknownKey));
        }
        let Some(tenant) = self.meta.tenant(&k.tenant).map_err(db)? else { return Ok(Err(Refusal::UnknownKey)) };
        if let Some(s) = &k.session {
            return self.session_principal(&k, s, tenant, token);
        }
        let Some(user) = self.meta.user(&k.tenant, &k.user).map_err(db)? else { return Ok(Err(Refusal::UnknownKey)) };
        Ok(Ok(self.user_principal(tenant, user, &k.access_key)?))
    }

    /// The principal of a user (as its keys authenticate it; also the policy simulator's).
    pub fn user_principal(
        &self,
        tenant: TenantRecord,
        user: UserRecord,
        access_key: &str,
    ) -> Result<Principal, String> {
        let db = |e: strait_metadata::MetaError| e.to_string();
        let mut names: Vec<(String, String)> = Vec::new();
        let mut add = |name: &str, via: String| {
            if !names.iter().any(|(n, _)| n == name) {
                names.push((name.to_owned(), via));
            }
        };
        for p in &tenant.policies {
            add(p, "tenant".into());
        }
        for g in &user.groups {
            if let Some(gr) = self.meta.group(&tenant.name, g).map_err(db)? {
                for p in &gr.policies {
                    add(p, format!("group {g}"));
                }
            }
        }
        for p in &user.policies {
            add(p, "user".into());
        }
        let mut policies = Vec::new();
        for (name, via) in names {
            let Some(rec) = self.meta.policy(&tenant.name, &name).map_err(db)? else { continue };
            let Some(doc) = rec.document() else { continue };
            match parse_identity_policy(doc) {
                Ok(p) => policies.push((format!("policy {name} v{} (via {via})", rec.default_version), p)),
                Err(e) => tracing::warn!(tenant = %tenant.name, policy = %name, error = %e, "stored policy ignored"),
            }
        }
        let posix = posix_of(user.posix.as_ref().unwrap_or(&tenant.posix));
        Ok(Principal {
            tenant,
            user,
            access_key: access_key.to_owned(),
            posix,
            policies,
            session_arn: None,
            boundary: None,
        })
    }

    fn session_principal(
        &self,
        k: &KeyRecord,
        s: &strait_metadata::SessionRecord,
        tenant: TenantRecord,
        token: Option<&str>,
    ) -> Result<Result<Principal, Refusal>, String> {
        let db = |e: strait_metadata::MetaError| e.to_string();
        let presented = token.map(sha256_hex).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), s.token_sha256.as_bytes())) {
            return Ok(Err(Refusal::BadToken));
        }
        if time::OffsetDateTime::now_utc().unix_timestamp() >= s.expires_unix_s {
            return Ok(Err(Refusal::Expired));
        }
        let Some(role) = self.meta.role(&k.tenant, &s.role).map_err(db)? else { return Ok(Err(Refusal::UnknownKey)) };
        if s.issued_unix_s < role.revoked_before_unix_s {
            return Ok(Err(Refusal::Revoked));
        }
        let mut policies = Vec::new();
        for name in &role.policies {
            let Some(rec) = self.meta.policy(&k.tenant, name).map_err(db)? else { continue };
            let Some(doc) = rec.document() else { continue };
            if let Ok(p) = parse_identity_policy(doc) {
                policies.push((format!("policy {name} v{} (via role {})", rec.default_version, role.name), p));
            }
        }
        let boundary = match &s.session_policy {
            Some(doc) => Some(parse_identity_policy(doc)?),
            None => None,
        };
        let user = UserRecord {
            v: strait_metadata::FORMAT_VERSION,
            tenant: k.tenant.clone(),
            name: s.session_name.clone(),
            user_id: format!("{}:{}", role.role_id, s.session_name),
            ..Default::default()
        };
        let posix = posix_of(role.posix.as_ref().unwrap_or(&tenant.posix));
        let session_arn =
            Some(format!("arn:aws:sts::{}:assumed-role/{}/{}", tenant.account_id, role.name, s.session_name));
        Ok(Ok(Principal { tenant, user, access_key: k.access_key.clone(), posix, policies, session_arn, boundary }))
    }

    /// A new active key for a user: (record, secret). The secret is shown once, never stored
    /// in the clear.
    pub fn new_key(&self, tenant: &str, user: &str) -> (KeyRecord, String) {
        let access_key = format!("AKIA{}", random_upper(16));
        let secret = random_secret();
        let rec = KeyRecord {
            v: strait_metadata::FORMAT_VERSION,
            secret_sealed: self.master.seal(&access_key, &secret),
            access_key,
            tenant: tenant.to_owned(),
            user: user.to_owned(),
            status: "Active".into(),
            created_unix_s: time::OffsetDateTime::now_utc().unix_timestamp(),
            extra: Default::default(),
            session: None,
        };
        (rec, secret)
    }
}

/// `n` characters of A-Z and 2-7 (the alphabet of AWS key ids).
pub fn random_upper(n: usize) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut r = rand::rngs::OsRng;
    (0..n).map(|_| ALPHA[r.gen_range(0..ALPHA.len())] as char).collect()
}

/// 40 characters of base64 (30 random bytes), as AWS secrets.
pub fn random_secret() -> String {
    let mut b = [0u8; 30];
    rand::rngs::OsRng.fill(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A fresh 12-digit account id.
pub fn random_account_id() -> String {
    let mut r = rand::rngs::OsRng;
    let mut s = r.gen_range(1..=9u8).to_string();
    for _ in 0..11 {
        s.push(char::from(b'0' + r.gen_range(0..10u8)));
    }
    s
}

/// Tenant, user, group and policy names: 1-64 of `A-Za-z0-9+=,.@_-` (IAM's user-name set),
/// tenants 1-32 of `a-z0-9-` (they appear in paths and ARNs).
pub fn valid_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = if kind == "tenant" {
        (1..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
    } else {
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    };
    if ok {
        Ok(())
    } else if kind == "tenant" {
        Err(format!("tenant name {name:?}: expected 1-32 of a-z 0-9 -, not starting with -"))
    } else {
        Err(format!("{kind} name {name:?}: expected 1-64 of A-Z a-z 0-9 + = , . @ _ -"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_id_and_master_key() {
        let dir = std::env::temp_dir().join(format!("strait-mk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("master.key");
        let _ = std::fs::remove_file(&p);
        let mk = MasterKey::load_or_create(&p).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let sealed = mk.seal("AKIAONE", "s3cr3t");
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(mk.open("AKIAONE", &sealed).as_deref(), Some("s3cr3t"));
        assert_eq!(mk.open("AKIATWO", &sealed), None, "bound to its key id");
        let again = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(again.open("AKIAONE", &sealed).as_deref(), Some("s3cr3t"), "the key file is reused");
        std::fs::remove_file(&p).unwrap();
        let other = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(other.open("AKIAONE", &sealed), None, "another master key cannot open it");
        let mut tampered = base64::engine::general_purpose::STANDARD.decode(&sealed).unwrap();
        tampered[14] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert_eq!(mk.open("AKIAONE", &tampered), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rotation_reseals_and_survives_interruption() {
        let dir = std::env::temp_dir().join(format!("strait-mkr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("master.key");
        let mk = MasterKey::load_or_create(&p).unwrap();
        let mut stored = mk.seal("AKIAONE", "s3cr3t");
        let before = std::fs::read(&p).unwrap();
        // Interrupted after re-sealing, before the renames: both keys open the records.
        let r = rotate_master_key(&p, |old, new| {
            stored = new.seal("AKIAONE", &old.open("AKIAONE", &stored).unwrap());
            Err("crash".into())
        });
        assert!(r.is_err());
        assert_eq!(MasterKey::load_or_create(&p).unwrap().open("AKIAONE", &stored).as_deref(), Some("s3cr3t"));
        let n = rotate_master_key(&p, |old, new| {
            stored = new.seal("AKIAONE", &old.open("AKIAONE", &stored).unwrap());
            Ok(1)
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_ne!(std::fs::read(&p).unwrap(), before, "a new key is in force");
        assert!(!dir.join("master.key.new").exists() && !dir.join("master.key.old").exists());
        let now = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(now.open("AKIAONE", &stored).as_deref(), Some("s3cr3t"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn identity_policies_have_no_principal_and_name_a_resource() {
        let e = parse_identity_policy(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Sid":"Bad","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("Sid \"Bad\" (statement 2)"), "{e}");
        let e = parse_identity_policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#)
            .unwrap_err();
        assert!(e.contains("statement 1"), "{e}");
    }

    #[test]
    fn names() {
        assert!(valid_name("tenant", "climate-lab").is_ok());
        assert!(valid_name("tenant", "Climate").is_err());
        assert!(valid_name("user", "ann.smith@lab").is_ok());
        assert!(valid_name("user", "a/b").is_err());
        assert!(valid_name("user", "").is_err());
        assert_eq!(random_account_id().len(), 12);
        assert_eq!(random_upper(16).len(), 16);
        assert_eq!(random_secret().len(), 40);
    }
}
