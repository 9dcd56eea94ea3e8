//! Personal access tokens: JWTs signed with a per-tenant key named by `kid`.
//!
//! Verification is the one auth path: the header's `kid` picks the key, the
//! key pins the algorithm (HS256 or EdDSA; `none` and algorithm confusion are
//! impossible because the header's `alg` must equal the key's), `exp` and
//! `nbf` are enforced with a small leeway, the token's tenant must own the
//! key, and a revoked `jti` is refused at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::state::model::{KeyAlgorithm, SigningKey, TokenRecord};
use crate::state::{Db, Directory};

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    pub jti: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub tasks: Vec<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token's signature or algorithm is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has been revoked")]
    Revoked,
}

/// `bytes` random bytes as hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a new signing key for a tenant.
pub fn new_signing_key(tenant_id: &str, generation: u64, algorithm: KeyAlgorithm) -> SigningKey {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let (secret, public_key) = match algorithm {
        KeyAlgorithm::HS256 => (b64.encode(secret), None),
        KeyAlgorithm::EdDSA => {
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
            let der = signing
                .to_pkcs8_der()
                .expect("an Ed25519 key always encodes as PKCS#8");
            (
                b64.encode(der.as_bytes()),
                Some(b64.encode(signing.verifying_key().as_bytes())),
            )
        }
    };
    SigningKey {
        kid: format!("{tenant_id}-{}", random_id(4)),
        tenant_id: tenant_id.to_string(),
        algorithm,
        secret,
        public_key,
        created_at: crate::clock::now_secs(),
        generation,
    }
}

pub use crate::state::keys::LoadedKey;

/// What to put in a new token.
pub struct TokenRequest<'a> {
    pub tenant_id: &'a str,
    pub user_id: &'a str,
    pub tasks: Vec<String>,
    pub endpoints: Vec<String>,
    pub models: Vec<String>,
    pub ttl_secs: u64,
    /// Issue time (and start of validity), unix seconds; defaults to now.
    pub issued_at: Option<u64>,
}

/// Issues a token signed with the tenant's newest key and records its `jti`.
pub fn issue(db: &Db, request: TokenRequest<'_>) -> anyhow::Result<String> {
    let directory = db.directory();
    let entry = directory
        .tenant(request.tenant_id)
        .ok_or_else(|| anyhow::anyhow!("no tenant '{}'", request.tenant_id))?;
    if !entry.users.contains_key(request.user_id) {
        anyhow::bail!(
            "no user '{}' in tenant '{}'",
            request.user_id,
            request.tenant_id
        );
    }
    let key = directory
        .keys
        .values()
        .filter(|k| k.record.tenant_id == request.tenant_id)
        .max_by_key(|k| k.record.generation)
        .ok_or_else(|| anyhow::anyhow!("tenant '{}' has no signing key", request.tenant_id))?;
    let now = request.issued_at.unwrap_or_else(crate::clock::now_secs);
    let claims = Claims {
        sub: request.user_id.to_string(),
        tid: request.tenant_id.to_string(),
        jti: random_id(16),
        iat: now,
        nbf: now,
        exp: now + request.ttl_secs,
        tasks: request.tasks,
        endpoints: request.endpoints,
        models: request.models,
    };
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.record.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding_key()?)?;
    db.put_token(&TokenRecord {
        jti: claims.jti.clone(),
        tenant_id: claims.tid.clone(),
        user_id: claims.sub.clone(),
        issued_at: claims.iat,
        expires_at: claims.exp,
        revoked: false,
        tasks: claims.tasks.clone(),
        models: claims.models.clone(),
    })?;
    Ok(token)
}

/// Full verification: header, key, algorithm, signature, claims.
fn verify_signed(directory: &Directory, token: &str) -> Result<Claims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let key = directory.keys.get(kid).ok_or(TokenError::UnknownKey)?;
    // The key, never the token, decides the algorithm.
    if header.alg != key.algorithm {
        return Err(TokenError::BadSignature);
    }
    let mut validation = Validation::new(key.algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "nbf", "sub", "jti"]);
    let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            jsonwebtoken::errors::ErrorKind::InvalidSignature
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
            _ => TokenError::Malformed,
        }
    })?;
    let claims = data.claims;
    if claims.tid != key.record.tenant_id {
        return Err(TokenError::BadSignature);
    }
    Ok(claims)
}

/// A verified token as the cache keeps it.
struct Verified {
    /// The directory snapshot it was verified against: any admin write
    /// (a new key, a changed tenant) makes the next call verify afresh.
    generation: u64,
    kid: String,
    claims: Arc<Claims>,
}

/// Tokens per worker thread whose signature has been checked.
const VERIFIED_CACHE_SIZE: usize = 4096;

thread_local! {
    /// Exact token bytes that passed full verification. A client sends the
    /// same token on every call; parsing and checking it each time was ~5 µs
    /// a request. What can change since (revocation, expiry, the key) is
    /// checked on every hit.
    static VERIFIED: RefCell<HashMap<Box<str>, Verified>> = RefCell::new(HashMap::new());
}

/// The checks that depend on time and on the directory, not on the bytes.
fn still_valid(directory: &Directory, kid: &str, claims: &Claims) -> Result<(), TokenError> {
    if directory
        .keys
        .get(kid)
        .is_none_or(|k| k.record.tenant_id != claims.tid)
    {
        return Err(TokenError::UnknownKey);
    }
    let now = crate::clock::now_secs();
    if claims.exp + LEEWAY_SECS <= now {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now + LEEWAY_SECS {
        return Err(TokenError::NotYetValid);
    }
    if directory.revoked.contains(&claims.jti) {
        return Err(TokenError::Revoked);
    }
    Ok(())
}

/// Verifies a bearer token against the directory snapshot.
pub fn verify(directory: &Directory, token: &str) -> Result<Arc<Claims>, TokenError> {
    // A hit is re-checked in place: no copy of the kid on the request path.
    let hit = VERIFIED.with_borrow(|cache| {
        cache
            .get(token)
            .filter(|v| v.generation == directory.generation)
            .map(|v| still_valid(directory, &v.kid, &v.claims).map(|()| Arc::clone(&v.claims)))
    });
    if let Some(result) = hit {
        return result;
    }
    let claims = Arc::new(verify_signed(directory, token)?);
    let kid = jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .ok_or(TokenError::UnknownKey)?;
    still_valid(directory, &kid, &claims)?;
    VERIFIED.with_borrow_mut(|cache| {
        if cache.len() >= VERIFIED_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(
            token.into(),
            Verified {
                generation: directory.generation,
                kid,
                claims: Arc::clone(&claims),
            },
        );
    });
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &LoadedKey, exp: u64) -> String {
        let now = crate::clock::now_secs();
        let claims = Claims {
            sub: "ali".into(),
            tid: "acme".into(),
            jti: "j1".into(),
            iat: now,
            nbf: now,
            exp,
            tasks: vec![],
            endpoints: vec![],
            models: vec![],
        };
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.record.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding_key().unwrap()).unwrap()
    }

    fn directory(generation: u64, key: SigningKey, revoked: &[&str]) -> Directory {
        let mut directory = Directory {
            generation,
            ..Directory::default()
        };
        directory
            .keys
            .insert(key.kid.clone(), LoadedKey::new(key.clone()));
        directory.revoked = revoked.iter().map(|s| s.to_string()).collect();
        directory
    }

    #[test]
    fn cached_tokens_are_still_checked_for_revocation_and_their_snapshot() {
        for algorithm in [KeyAlgorithm::HS256, KeyAlgorithm::EdDSA] {
            let key = new_signing_key("acme", 1, algorithm);
            let token = signed(&LoadedKey::new(key.clone()), crate::clock::now_secs() + 60);
            let fresh = directory(1_000_001, key.clone(), &[]);
            assert_eq!(verify(&fresh, &token).unwrap().sub, "ali");
            assert_eq!(verify(&fresh, &token).unwrap().sub, "ali"); // from the cache
                                                                    // Same snapshot generation, jti revoked: refused although cached.
            let revoked = directory(1_000_001, key.clone(), &["j1"]);
            assert!(matches!(verify(&revoked, &token), Err(TokenError::Revoked)));
            // Another snapshot without the key: verified afresh, unknown key.
            let other = directory(1_000_002, new_signing_key("acme", 1, algorithm), &[]);
            assert!(matches!(
                verify(&other, &token),
                Err(TokenError::UnknownKey)
            ));
        }
    }

    #[test]
    fn expiry_is_checked_on_every_call() {
        let key = new_signing_key("acme", 1, KeyAlgorithm::HS256);
        let now = crate::clock::now_secs();
        let claims = Claims {
            sub: "ali".into(),
            tid: "acme".into(),
            jti: "j2".into(),
            iat: now - 100,
            nbf: now - 100,
            exp: now - LEEWAY_SECS - 1,
            tasks: vec![],
            endpoints: vec![],
            models: vec![],
        };
        let directory = directory(1_000_003, key.clone(), &[]);
        assert!(matches!(
            still_valid(&directory, &key.kid, &claims),
            Err(TokenError::Expired)
        ));
    }

    /// Fuzz target: tokens with any header, payload and signature (each
    /// base64url-encoded, so the fuzzer reaches the JSON inside) are
    /// refused, never accepted and never a panic.
    #[test]
    fn forged_tokens_are_refused() {
        let key = new_signing_key("acme", 1, KeyAlgorithm::HS256);
        let directory = directory(1_000_004, key, &[]);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        bolero::check!()
            .with_type::<(Vec<u8>, Vec<u8>, Vec<u8>)>()
            .for_each(|(header, payload, signature)| {
                let token = format!(
                    "{}.{}.{}",
                    b64.encode(header),
                    b64.encode(payload),
                    b64.encode(signature)
                );
                assert!(verify(&directory, &token).is_err(), "{token}");
            });
    }
}
