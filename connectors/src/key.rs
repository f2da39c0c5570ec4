//! Validated object keys: the only way a client-supplied string becomes a path.
//!
//! Invariants of [`ObjectKey`] (checked in [`ObjectKey::parse`]):
//! - 1..=1024 bytes of UTF-8, no NUL;
//! - split on `/`, every component is non-empty, not `.` or `..`, at most 255 bytes, and does not
//!   start with the internal prefix [`INTERNAL_PREFIX`] (staging files, upload directories);
//! - a single trailing `/` is allowed: the key is then a *directory marker* (`a/b/`), a zero-length
//!   object stored as the directory `a/b` itself; it never aliases the file key `a/b`.
//!
//! Because every component is a plain name, joining the components under the bucket directory
//! can never leave it; the connector still resolves with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
//! as a second wall.

use crate::error::{ConnectorError, Result};

/// Names starting with this are Strait's own (staging files, upload directories) and are neither
/// listed nor accepted as key components.
pub const INTERNAL_PREFIX: &str = ".strait";

/// Longest key S3 accepts, in bytes.
pub const KEY_LEN_BYTES_MAX: usize = 1024;
/// Longest path component most POSIX file systems accept, in bytes.
pub const COMPONENT_LEN_BYTES_MAX: usize = 255;

/// A key that is safe to map onto the file system under a bucket directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    key: String,
}

impl ObjectKey {
    /// Validate `key`. Errors: [`ConnectorError::InvalidKey`] or [`ConnectorError::NameTooLong`].
    pub fn parse(key: &str) -> Result<Self> {
        if key.is_empty() {
            return Err(ConnectorError::InvalidKey("empty key".into()));
        }
        if key.len() > KEY_LEN_BYTES_MAX {
            return Err(ConnectorError::NameTooLong(format!(
                "key is {} bytes, at most {KEY_LEN_BYTES_MAX}",
                key.len()
            )));
        }
        if key.contains('\0') {
            return Err(ConnectorError::InvalidKey("key contains NUL".into()));
        }
        let body = key.strip_suffix('/').unwrap_or(key);
        if body.is_empty() {
            return Err(ConnectorError::InvalidKey("key is only '/'".into()));
        }
        for comp in body.split('/') {
            check_component(comp)?;
        }
        Ok(Self { key: key.to_owned() })
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Whether this is a directory marker (`a/b/`).
    pub fn is_dir_marker(&self) -> bool {
        self.key.ends_with('/')
    }

    /// The relative path on the file system (`a/b/` → `a/b`).
    pub fn path(&self) -> &str {
        self.key.strip_suffix('/').unwrap_or(&self.key)
    }

    /// The parent directory's relative path (`""` for a top-level key) and the final name.
    pub fn split_parent(&self) -> (&str, &str) {
        let p = self.path();
        match p.rfind('/') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => ("", p),
        }
    }
}

/// Check one path component.
pub fn check_component(comp: &str) -> Result<()> {
    if comp.is_empty() {
        return Err(ConnectorError::InvalidKey("key has an empty path component ('//' or leading '/')".into()));
    }
    if comp == "." || comp == ".." {
        return Err(ConnectorError::InvalidKey(format!("key has a '{comp}' path component")));
    }
    if comp.len() > COMPONENT_LEN_BYTES_MAX {
        return Err(ConnectorError::NameTooLong(format!(
            "a key component is {} bytes, at most {COMPONENT_LEN_BYTES_MAX}",
            comp.len()
        )));
    }
    if comp.starts_with(INTERNAL_PREFIX) {
        return Err(ConnectorError::InvalidKey(format!("names starting with '{INTERNAL_PREFIX}' are reserved")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in ["a", "a/b/c", "dir/", "with space", "plus+sign", "100%", "ünï/cødé", "a.b", "...", ".hidden"] {
            ObjectKey::parse(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
        let m = ObjectKey::parse("a/b/").unwrap();
        assert!(m.is_dir_marker());
        assert_eq!(m.path(), "a/b");
        assert_eq!(m.split_parent(), ("a", "b"));
        assert_eq!(ObjectKey::parse("x").unwrap().split_parent(), ("", "x"));
    }

    #[test]
    fn refuses_unsafe_keys() {
        let long = "x".repeat(256);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "InvalidKey"),
            ("/".into(), "InvalidKey"),
            ("/abs".into(), "InvalidKey"),
            ("a//b".into(), "InvalidKey"),
            (".".into(), "InvalidKey"),
            ("..".into(), "InvalidKey"),
            ("a/../b".into(), "InvalidKey"),
            ("a/./b".into(), "InvalidKey"),
            ("../etc/passwd".into(), "InvalidKey"),
            ("a\0b".into(), "InvalidKey"),
            ("a//".into(), "InvalidKey"),
            (".strait.stage.1".into(), "InvalidKey"),
            ("d/.strait-uploads/x".into(), "InvalidKey"),
            (long.clone(), "NameTooLong"),
            (format!("a/{long}"), "NameTooLong"),
            ("y".repeat(1025), "NameTooLong"),
        ];
        for (k, want) in cases {
            let err = ObjectKey::parse(&k).expect_err(&k);
            assert!(format!("{err:?}").starts_with(want), "{k:?}: {err:?}");
        }
    }
}
