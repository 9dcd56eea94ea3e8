//! Provider keys at rest: sealed with AES-256-GCM under the server's master
//! key, which comes from the environment (`WARDEN_MASTER_KEY`) or a file
//! (`master_key_file`), never from the state. The state keeps a sealed known
//! text beside the keys, so a server started with another master key stops
//! with a clear message instead of sending garbage to providers.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::domain::providers::SealedKey;

/// The environment variable holding the master key (64 hex digits or the
/// base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "WARDEN_MASTER_KEY";

/// What the check seals: nothing secret, only proof of the key.
const CHECK_TEXT: &str = "warden master key check v1";

pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// From 64 hex digits or base64 of 32 bytes (surrounding space ignored).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()?
        } else {
            B64.decode(text).map_err(|_| {
                anyhow::anyhow!("the master key must be 64 hex digits or the base64 of 32 bytes")
            })?
        };
        anyhow::ensure!(
            bytes.len() == 32,
            "the master key must be 32 bytes (64 hex digits); this one is {} bytes",
            bytes.len()
        );
        Ok(Self {
            cipher: Aes256Gcm::new_from_slice(&bytes).expect("32 bytes"),
        })
    }

    /// A fresh random key, as 64 hex digits (`warden providers new-master-key`).
    pub fn generate() -> String {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key from `WARDEN_MASTER_KEY`, else from `file`; `None` when
    /// neither is set.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Option<Self>> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            if !text.trim().is_empty() {
                return Self::parse(&text)
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("{MASTER_KEY_ENV}: {e}"));
            }
        }
        let Some(file) = file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading the master key file {}: {e}", file.display()))?;
        Self::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    }

    pub fn seal(&self, secret: &str) -> SealedKey {
        let nonce: [u8; 12] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), secret.as_bytes())
            .expect("AES-GCM encryption of a short text cannot fail");
        SealedKey {
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
            hint: hint(secret),
        }
    }

    /// The secret, or `None` when this key did not seal it (or it was
    /// tampered with).
    pub fn open(&self, sealed: &SealedKey) -> Option<String> {
        let nonce = B64.decode(&sealed.nonce).ok()?;
        let ciphertext = B64.decode(&sealed.ciphertext).ok()?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext.as_slice())
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// The sealed check to store beside keys sealed with this key.
    pub fn check(&self) -> SealedKey {
        let mut sealed = self.seal(CHECK_TEXT);
        sealed.hint = String::new();
        sealed
    }

    /// Whether `check` was sealed with this key.
    pub fn opens(&self, check: &SealedKey) -> bool {
        self.open(check).as_deref() == Some(CHECK_TEXT)
    }
}

/// What may be shown of a key: its last four characters.
pub fn hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_master_key() {
        let key = MasterKey::parse(&MasterKey::generate()).unwrap();
        let other = MasterKey::parse(&MasterKey::generate()).unwrap();
        let sealed = key.seal("sk-planted-secret-1234");
        assert_eq!(sealed.hint, "…1234");
        assert!(!sealed.ciphertext.contains("planted"));
        assert_eq!(key.open(&sealed).as_deref(), Some("sk-planted-secret-1234"));
        assert_eq!(other.open(&sealed), None);
        assert!(key.opens(&key.check()));
        assert!(!other.opens(&key.check()));
        // The same secret twice seals differently (a fresh nonce each time).
        assert_ne!(key.seal("x").ciphertext, key.seal("x").ciphertext);
    }

    #[test]
    fn master_keys_are_hex_or_base64_of_32_bytes() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse(&B64.encode([7u8; 32])).is_ok());
        let short = MasterKey::parse(&B64.encode([7u8; 16])).unwrap_err();
        assert!(short.to_string().contains("32 bytes"), "{short}");
        assert!(MasterKey::parse("not a key").is_err());
    }
}
