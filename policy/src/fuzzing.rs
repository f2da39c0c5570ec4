//! The properties the fuzz targets (`policy/fuzz`, run with `scripts/fuzz.sh`) check, shared with
//! the test that replays the kept corpus on every CI run (`policy/tests/fuzz_corpus.rs`).
//!
//! - [`parse_case`]: any input either fails to parse with a message or parses into a policy whose
//!   evaluation never panics, names an existing statement, and agrees with [`Policy::evaluate`].
//! - [`glob_case`]: the wildcard matcher agrees with a plain dynamic-programming matcher on every
//!   pattern and text, with and without case folding.

use crate::{glob, Policy, Request};

/// Requests every parsed policy is evaluated against.
fn sample_requests() -> Vec<Request> {
    let base = |action: &str, resource: &str| Request {
        principals: vec!["arn:aws:iam::111111111111:user/ann".into(), "111111111111".into()],
        action: action.into(),
        resource: resource.into(),
        ..Default::default()
    };
    vec![
        base("s3:GetObject", "arn:aws:s3:::jack/a/b.txt")
            .with("aws:SourceIp", "10.1.2.3")
            .with("aws:username", "ann")
            .with("aws:CurrentTime", "2026-12-02T00:00:00Z")
            .with("s3:prefix", "home/ann/")
            .with("aws:SecureTransport", "true")
            .with("s3:max-keys", "100"),
        base("s3:ListBucket", "arn:aws:s3:::jackson").with("aws:SourceIp", "2001:db8::1"),
        Request { action: "s3:PutObject".into(), resource: "arn:aws:s3:::x/*?".into(), ..Default::default() },
    ]
}

pub fn parse_case(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match Policy::parse(s) {
        Ok(p) => {
            for req in sample_requests() {
                let (d, i) = p.explain(&req);
                assert_eq!(d, p.evaluate(&req));
                if let Some(i) = i {
                    assert!(i < p.statements.len(), "explain named statement {i} of {}", p.statements.len());
                    assert!(!p.label(i).is_empty());
                }
            }
        }
        Err(e) => assert!(!e.is_empty(), "an empty parse error"),
    }
}

/// The reference matcher: `*` any run, `?` one character, O(|p|·|t|).
fn reference_glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // m[j] = p[..i] matches t[..j]
    let mut m = vec![false; t.len() + 1];
    m[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = m[j - 1] && (pc == '?' || pc == t[j - 1]);
            }
        }
        m = next;
    }
    m[t.len()]
}

/// `pattern 0x00 text` (both truncated to 200 characters).
pub fn glob_case(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let (pat, text) = s.split_once('\u{0}').unwrap_or((&s, ""));
    let pat: String = pat.chars().take(200).collect();
    let text: String = text.chars().take(200).collect();
    for ic in [false, true] {
        assert_eq!(glob(&pat, &text, ic), reference_glob(&pat, &text, ic), "{pat:?} vs {text:?}, ignore_case {ic}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matcher_basics() {
        assert!(reference_glob("a*c", "abbc", false));
        assert!(reference_glob("a?c", "abc", false));
        assert!(!reference_glob("a?c", "ac", false));
        assert!(reference_glob("*", "", false));
        assert!(reference_glob("A*", "abc", true));
        glob_case(b"arn:aws:s3:::jack/*\0arn:aws:s3:::jackson/x");
        parse_case(br#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#);
    }
}
