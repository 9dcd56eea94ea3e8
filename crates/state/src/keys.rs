//! Signing keys as the directory snapshot holds them: each record with its
//! verification half decoded once per snapshot, not once per request.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::model::{KeyAlgorithm, SigningKey};

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
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
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

    /// The signing half, decoded when a token is issued (rare).
    pub fn encoding_key(&self) -> anyhow::Result<EncodingKey> {
        let secret = decode_b64(&self.record.secret);
        Ok(match self.record.algorithm {
            KeyAlgorithm::HS256 => EncodingKey::from_secret(&secret),
            KeyAlgorithm::EdDSA => EncodingKey::from_ed_der(&secret),
        })
    }
}
