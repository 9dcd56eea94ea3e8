//! Web-console sessions and one-time login codes, kept in sled so that a
//! restart signs nobody out. Keys are the SHA-256 of the secret, never the
//! secret: a copy of the database opens no session.
//!
//! - `ui_sessions`: sha256(session id) → Session
//! - `ui_login_codes`: sha256(code) → LoginCode (removed when used)

use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::db::Db;

/// A signed-in browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub tenant_id: String,
    pub user_id: String,
    /// Sent back in every state-changing form.
    pub csrf: String,
    /// The token the session was opened with; revoking it ends the session.
    pub jti: Option<String>,
    pub expires_ms: u64,
}

/// A one-time sign-in link's code (`warden login-link`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginCode {
    pub tenant_id: String,
    pub user_id: String,
    pub expires_ms: u64,
}

/// How long a one-time sign-in code stays valid.
pub const LOGIN_CODE_TTL_MS: u64 = 15 * 60 * 1000;

/// 256 random bits, URL-safe: session ids, CSRF tokens, login codes.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

use crate::shared::{Change, Expect};

impl Db {
    /// A one-time sign-in code for a user, valid for [`LOGIN_CODE_TTL_MS`]
    /// from `now_ms`; returns the code and when it expires (unix ms).
    pub fn issue_login_code(
        &self,
        tenant_id: &str,
        user_id: &str,
        now_ms: u64,
    ) -> anyhow::Result<(String, u64)> {
        let code = random_secret();
        let expires_ms = now_ms + LOGIN_CODE_TTL_MS;
        let login = LoginCode {
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
            expires_ms,
        };
        self.put_login_code(&code, &login)?;
        Ok((code, expires_ms))
    }

    pub fn put_session(&self, secret: &str, session: &Session) -> anyhow::Result<()> {
        let value = serde_json::to_vec(session)?;
        self.write(vec![Change::put("ui_sessions", key(secret), value)])?;
        Ok(())
    }

    /// The session of `secret` if it has not expired at `now_ms`.
    pub fn session(&self, secret: &str, now_ms: u64) -> anyhow::Result<Option<Session>> {
        let Some(bytes) = self.ui_sessions.get(key(secret))? else {
            return Ok(None);
        };
        let session: Session = serde_json::from_slice(&bytes)?;
        if session.expires_ms <= now_ms {
            self.write(vec![Change::remove("ui_sessions", key(secret))])?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    pub fn delete_session(&self, secret: &str) -> anyhow::Result<()> {
        self.write(vec![Change::remove("ui_sessions", key(secret))])?;
        Ok(())
    }

    /// Drops sessions and login codes that expired before `now_ms`.
    pub fn prune_sessions(&self, now_ms: u64) -> anyhow::Result<usize> {
        #[derive(Deserialize)]
        struct Expiry {
            expires_ms: u64,
        }
        let mut expired = Vec::new();
        for (name, tree) in [
            ("ui_sessions", &self.ui_sessions),
            ("ui_login_codes", &self.ui_login_codes),
        ] {
            for item in tree.iter() {
                let (k, v) = item?;
                if serde_json::from_slice::<Expiry>(&v).map_or(true, |e| e.expires_ms <= now_ms) {
                    expired.push(Change::remove(name, k.to_vec()));
                }
            }
        }
        let removed = expired.len();
        if removed > 0 {
            self.write(expired)?;
        }
        Ok(removed)
    }

    pub fn put_login_code(&self, code: &str, login: &LoginCode) -> anyhow::Result<()> {
        let value = serde_json::to_vec(login)?;
        self.write(vec![Change::put("ui_login_codes", key(code), value)])?;
        Ok(())
    }

    /// Uses a login code up: the first caller gets it, nobody after.
    pub fn take_login_code(&self, code: &str, now_ms: u64) -> anyhow::Result<Option<LoginCode>> {
        // Taken once across replicas: the removal expects the code as read.
        let Some(bytes) = self.ui_login_codes.get(key(code))? else {
            return Ok(None);
        };
        let take = Change::remove("ui_login_codes", key(code));
        if !self.write(vec![take.expecting(Expect::Equals(bytes.to_vec()))])? {
            return Ok(None);
        }
        let login: LoginCode = serde_json::from_slice(&bytes)?;
        Ok((login.expires_ms > now_ms).then_some(login))
    }

    /// Whether a login code exists and is unexpired, without using it.
    pub fn login_code_valid(&self, code: &str, now_ms: u64) -> bool {
        self.ui_login_codes
            .get(key(code))
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<LoginCode>(&b).ok())
            .is_some_and(|l| l.expires_ms > now_ms)
    }
}
