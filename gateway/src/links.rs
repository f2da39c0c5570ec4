//! Linked buckets: a bucket served from an existing directory anywhere on the file system.
//! Used by `strait admin bucket link|unlink` (offline) and by the admin API (`/admin/buckets`,
//! online: the running gateway serves or stops serving the bucket at once).

use std::path::{Path, PathBuf};
use strait_connectors::{BucketLink, PosixStore};
use strait_metadata::{BucketRecord, MetaStore, FORMAT_VERSION};

/// The links recorded in the metadata store.
pub fn load(meta: &MetaStore) -> Result<Vec<(String, BucketLink)>, String> {
    let links = meta.bucket_links().map_err(|e| format!("linked buckets: {e}"))?;
    Ok(links
        .into_iter()
        .map(|r| (r.name, BucketLink { path: PathBuf::from(r.path), created_unix_s: r.created_unix_s }))
        .collect())
}

/// Validate and record a link, then serve it. Errors are client mistakes, said plainly.
pub fn link(
    meta: &MetaStore,
    store: &PosixStore,
    state_dir: &Path,
    name: &str,
    path: &Path,
    tenant: Option<&str>,
) -> Result<BucketRecord, String> {
    if !s3s::path::check_bucket_name(name) {
        return Err(format!("{name}: not a valid S3 bucket name (3-63 of a-z 0-9 . -)"));
    }
    let path = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !path.is_dir() {
        return Err(format!("{}: not a directory", path.display()));
    }
    let state = std::fs::canonicalize(state_dir).unwrap_or(state_dir.to_owned());
    if path.starts_with(&state) || state.starts_with(&path) {
        return Err(format!("{}: overlaps the state directory {}", path.display(), state.display()));
    }
    if let Some(l) = store.link(name) {
        return Err(format!("bucket {name} is already linked to {}", l.path.display()));
    }
    if store.has_root_bucket(name) {
        return Err(format!("bucket {name} exists under the root {}", store.root().display()));
    }
    // A tenant's linked bucket: its account is recorded on the directory, as for buckets the
    // tenant creates (the directory's owner and mode stay what the site gave it).
    let owner = match tenant {
        Some(t) => Some(meta.tenant(t).map_err(|e| e.to_string())?.ok_or_else(|| format!("no tenant {t}"))?.account_id),
        None => None,
    };
    let d = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    strait_connectors::store::set_bucket_owner(&d, owner.as_deref())
        .map_err(|e| format!("{}: recording the owner: {e}", path.display()))?;
    let r = BucketRecord {
        v: FORMAT_VERSION,
        name: name.to_owned(),
        path: path.to_string_lossy().into_owned(),
        created_unix_s: time::OffsetDateTime::now_utc().unix_timestamp(),
        extra: Default::default(),
    };
    meta.put_bucket_link(&r).map_err(|e| e.to_string())?;
    store.set_links(load(meta)?);
    Ok(r)
}

/// Forget a link (the directory and its files stay) and stop serving it; false if none.
pub fn unlink(meta: &MetaStore, store: &PosixStore, name: &str) -> Result<bool, String> {
    let gone = meta.delete_bucket_link(name).map_err(|e| e.to_string())?;
    store.set_links(load(meta)?);
    Ok(gone)
}

/// Create a bucket under the root for `tenant` (its account recorded, its directory given to the
/// tenant's uid and gid, mode 0750) or for the administrator.
pub fn create(meta: &MetaStore, store: &PosixStore, name: &str, tenant: Option<&str>) -> Result<String, String> {
    if !s3s::path::check_bucket_name(name) {
        return Err(format!("{name}: not a valid S3 bucket name (3-63 of a-z 0-9 . -)"));
    }
    let owner = match tenant {
        Some(t) => {
            let t = meta.tenant(t).map_err(|e| e.to_string())?.ok_or_else(|| format!("no tenant {t}"))?;
            Some(strait_connectors::BucketOwner { account: t.account_id, posix: Some(crate::iam::posix_of(&t.posix)) })
        }
        None => None,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    store.create_bucket(name, &now, owner.as_ref()).map_err(|e| match e {
        strait_connectors::ConnectorError::AlreadyExists(_) => format!("bucket {name} exists"),
        e => e.to_string(),
    })?;
    Ok(name.to_owned())
}
