//! Verification of OpenID Connect ID tokens for STS AssumeRoleWithWebIdentity, with the
//! openidconnect crate: provider discovery, the provider's JWKS (fetched again when a token
//! names a key id it does not hold, at most every [`JWKS_REFETCH_MIN`]), pinned signing
//! algorithms (never `none`, never HMAC: a public client holds no shared secret, so an HS256
//! token "signed" with the provider's public key cannot verify), and the iss, aud, exp checks of
//! the crate plus nbf, which the crate does not check.
//!
//! Runs blocking (HTTP to the provider): call it on the blocking pool.

use base64::Engine;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{ClientId, IssuerUrl};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use strait_metadata::OidcProviderRecord;

/// The shortest interval between two JWKS fetches for one provider (a token with an unknown key
/// id cannot make the gateway hammer the provider).
pub const JWKS_REFETCH_MIN: Duration = Duration::from_secs(5);
/// Clock skew allowed on exp and nbf.
const SKEW_SECS: i64 = 60;

struct Keys {
    jwks: CoreJsonWebKeySet,
    fetched: Instant,
}

/// Provider keys, cached per issuer.
#[derive(Default)]
pub struct Verifier {
    keys: Mutex<HashMap<String, Keys>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

fn http_call(req: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, HttpError> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| HttpError(e.to_string()))?;
    let (parts, body) = req.into_parts();
    let r = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .map_err(|e| HttpError(e.to_string()))?;
    let mut b = http::Response::builder().status(r.status());
    for (k, v) in r.headers() {
        b = b.header(k, v);
    }
    let bytes = r.bytes().map_err(|e| HttpError(e.to_string()))?.to_vec();
    b.body(bytes).map_err(|e| HttpError(e.to_string()))
}

pub fn parse_alg(a: &str) -> Result<CoreJwsSigningAlgorithm, String> {
    use CoreJwsSigningAlgorithm::*;
    Ok(match a {
        "RS256" => RsaSsaPkcs1V15Sha256,
        "RS384" => RsaSsaPkcs1V15Sha384,
        "RS512" => RsaSsaPkcs1V15Sha512,
        "PS256" => RsaSsaPssSha256,
        "PS384" => RsaSsaPssSha384,
        "PS512" => RsaSsaPssSha512,
        "ES256" => EcdsaP256Sha256,
        "ES384" => EcdsaP384Sha384,
        "EdDSA" => EdDsa,
        other => {
            return Err(format!(
                "algorithm {other:?} is not accepted (asymmetric signatures only: RS*, PS*, ES256, ES384, EdDSA)"
            ))
        }
    })
}

/// The payload of a JWT, undecoded as to trust (read only after the signature verified).
fn payload(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mid = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mid.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&raw).ok()
}

impl Verifier {
    fn fetch(&self, p: &OidcProviderRecord) -> Result<CoreJsonWebKeySet, String> {
        let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| format!("issuer {}: {e}", p.issuer))?;
        let meta = CoreProviderMetadata::discover(&issuer, &http_call)
            .map_err(|e| format!("discovery of {}: {e}", p.issuer))?;
        let jwks =
            CoreJsonWebKeySet::fetch(meta.jwks_uri(), &http_call).map_err(|e| format!("JWKS of {}: {e}", p.issuer))?;
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.issuer.clone(), Keys { jwks: jwks.clone(), fetched: Instant::now() });
        Ok(jwks)
    }

    fn cached(&self, p: &OidcProviderRecord) -> Option<(CoreJsonWebKeySet, Instant)> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(&p.issuer).map(|k| (k.jwks.clone(), k.fetched))
    }

    /// Verify `token` from provider `p`; the verified claims.
    pub fn verify(
        &self,
        p: &OidcProviderRecord,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let id = CoreIdToken::from_str(token).map_err(|e| format!("not a JWT: {e}"))?;
        let algs: Vec<CoreJwsSigningAlgorithm> = p.algorithms.iter().map(|a| parse_alg(a)).collect::<Result<_, _>>()?;
        let check = |jwks: CoreJsonWebKeySet| -> Result<(), (bool, String)> {
            let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| (false, e.to_string()))?;
            let first = p.audiences.first().cloned().unwrap_or_default();
            let auds = p.audiences.clone();
            let v = CoreIdTokenVerifier::new_public_client(ClientId::new(first), issuer, jwks)
                .set_allowed_algs(algs.clone())
                .set_other_audience_verifier_fn(move |a| auds.iter().any(|x| x == a.as_str()));
            match id.claims(&v, |_: Option<&openidconnect::Nonce>| Ok(())) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let unknown_key = matches!(
                        &e,
                        openidconnect::ClaimsVerificationError::SignatureVerification(
                            openidconnect::SignatureVerificationError::NoMatchingKey
                        )
                    );
                    Err((unknown_key, e.to_string()))
                }
            }
        };
        let outcome = match self.cached(p) {
            Some((jwks, fetched)) => match check(jwks) {
                // A key id the cached set lacks: the provider may have rotated its keys.
                Err((true, _)) if fetched.elapsed() >= JWKS_REFETCH_MIN => check(self.fetch(p)?),
                r => r,
            },
            None => check(self.fetch(p)?),
        };
        outcome.map_err(|(_, e)| e)?;
        let claims = payload(token).ok_or("unreadable claims")?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_i64) {
            if nbf > now + SKEW_SECS {
                return Err(format!("the token is not valid before {nbf} (now {now})"));
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms() {
        assert!(parse_alg("RS256").is_ok());
        assert!(parse_alg("ES256").is_ok());
        for bad in ["none", "HS256", "HS512", "rs256"] {
            assert!(parse_alg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_is_read_from_the_middle_segment() {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"ann","nbf":5}"#);
        let m = payload(&format!("x.{body}.y")).unwrap();
        assert_eq!(m["sub"], "ann");
        assert!(payload("garbage").is_none());
    }
}
