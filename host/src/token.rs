//! Personal access tokens: JWTs signed with a per-tenant key named by `kid`.
//!
//! Verification is the one auth path: the header's `kid` picks the key, the
//! key pins the algorithm (HS256 or EdDSA; `none` and algorithm confusion are
//! impossible because the header's `alg` must equal the key's), `exp` and
//! `nbf` are enforced with a small leeway, the token's tenant must own the
//! key, and a revoked `jti` is refused at once.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
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

fn random_id(bytes: usize) -> String {
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

fn decode_b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_default()
}

fn jwt_algorithm(algorithm: KeyAlgorithm) -> Algorithm {
    match algorithm {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// A signing key as the directory holds it: the record, plus its
/// verification half decoded once per snapshot instead of once per request.
pub struct LoadedKey {
    pub record: SigningKey,
    algorithm: Algorithm,
    decoding: DecodingKey,
}

impl LoadedKey {
    pub fn new(record: SigningKey) -> Self {
        let decoding = match record.algorithm {
            KeyAlgorithm::HS256 => DecodingKey::from_secret(&decode_b64(&record.secret)),
            KeyAlgorithm::EdDSA => {
                DecodingKey::from_ed_der(&decode_b64(record.public_key.as_deref().unwrap_or("")))
            }
        };
        Self {
            algorithm: jwt_algorithm(record.algorithm),
            record,
            decoding,
        }
    }

    fn encoding_key(&self) -> anyhow::Result<EncodingKey> {
        let secret = decode_b64(&self.record.secret);
        Ok(match self.record.algorithm {
            KeyAlgorithm::HS256 => EncodingKey::from_secret(&secret),
            KeyAlgorithm::EdDSA => EncodingKey::from_ed_der(&secret),
        })
    }
}

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
    })?;
    Ok(token)
}

/// Verifies a bearer token against the directory snapshot.
pub fn verify(directory: &Directory, token: &str) -> Result<Claims, TokenError> {
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
    if directory.revoked.contains(&claims.jti) {
        return Err(TokenError::Revoked);
    }
    Ok(claims)
}
