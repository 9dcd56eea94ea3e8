//! The records Warden keeps in sled (serialised as JSON values).

use serde::{Deserialize, Serialize};

use crate::{Action, Drift, IntentLabel};

pub use crate::groups::{Group, PoolLimits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub status: TenantStatus,
    pub created_at: u64,
    /// IANA time zone (e.g. `Europe/Berlin`): daily and monthly quota
    /// windows reset at this zone's local midnight.
    #[serde(default = "utc")]
    pub timezone: String,
    /// The tenant's own misuse-detection settings, over its policy's.
    #[serde(default, skip_serializing_if = "MisuseSettings::is_empty")]
    pub misuse: MisuseSettings,
    /// Its plan and whether it is paid up; `None`: no plan limits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<crate::plans::Subscription>,
    /// Its display name, accent colour and logo (console and e-mails).
    #[serde(default, skip_serializing_if = "crate::branding::Branding::is_empty")]
    pub branding: crate::branding::Branding,
}

/// A tenant's choices for the deviation stage, set by its admins through
/// the API or the console (no server file needed). Unset fields keep the
/// policy's values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MisuseSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_at: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_at: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_at: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_minutes: Option<f32>,
    /// Score and flag, never block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<bool>,
}

impl MisuseSettings {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The deviation plugin's config keys these settings override.
    pub fn config(&self) -> Vec<(&'static str, String)> {
        let numbers = [
            ("warn_at", self.warn_at),
            ("flag_at", self.flag_at),
            ("block_at", self.block_at),
            ("half_life_minutes", self.half_life_minutes),
        ];
        let mut out: Vec<(&'static str, String)> = numbers
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?.to_string())))
            .collect();
        if let Some(shadow) = self.shadow {
            out.push(("shadow", shadow.to_string()));
        }
        out
    }

    /// Why these settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let values = [
            self.warn_at,
            self.flag_at,
            self.block_at,
            self.half_life_minutes,
        ];
        if values.iter().flatten().any(|v| !v.is_finite() || *v <= 0.0) {
            return Some("thresholds and the half-life must be positive numbers".into());
        }
        let order: Vec<f32> = [self.warn_at, self.flag_at, self.block_at]
            .into_iter()
            .flatten()
            .collect();
        if order.windows(2).any(|w| w[0] > w[1]) {
            return Some("thresholds must rise: warn_at <= flag_at <= block_at".into());
        }
        None
    }
}

fn utc() -> String {
    "UTC".into()
}

/// How a tenant's tokens are signed. Pinned per key: a token whose header
/// names another algorithm is refused, so HS/RS/EdDSA confusion cannot work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// HMAC-SHA256 with a 256-bit secret that never leaves the server.
    #[default]
    HS256,
    /// Ed25519 signatures; the public key may be handed to third parties.
    EdDSA,
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hs256" => Ok(Self::HS256),
            "eddsa" | "ed25519" => Ok(Self::EdDSA),
            other => Err(format!(
                "unknown key algorithm '{other}': use HS256 or EdDSA"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Admin,
    /// Manages the users of their own groups: standing, limits, tokens
    /// and review. Sees nothing of other users.
    Manager,
    /// Reads the tenant (usage, logs, review queue, settings); changes nothing.
    Viewer,
    User,
}

impl Role {
    /// The roles a tenant gives its people (not `super_admin`).
    pub const TENANT: [Self; 4] = [Self::Admin, Self::Manager, Self::Viewer, Self::User];

    /// As in the API: `super_admin`, `admin`, `manager`, `viewer`, `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super_admin",
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Viewer => "viewer",
            Self::User => "user",
        }
    }

    /// The role with its article, for e-mails and pages: "an admin".
    pub fn with_article(self) -> &'static str {
        match self {
            Self::SuperAdmin => "a super_admin",
            Self::Admin => "an admin",
            Self::Manager => "a manager",
            Self::Viewer => "a viewer",
            Self::User => "a user",
        }
    }

    /// Whether the role opens the admin API and the console's tenant pages.
    pub fn is_staff(self) -> bool {
        self != Self::User
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "super_admin" => Ok(Self::SuperAdmin),
            "admin" => Ok(Self::Admin),
            "manager" => Ok(Self::Manager),
            "viewer" => Ok(Self::Viewer),
            "user" => Ok(Self::User),
            other => Err(format!(
                "unknown role '{other}': use admin, manager, viewer or user"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Flagged,
    Blocked,
}

/// Limits of one user; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub requests_per_day: Option<u64>,
    pub tokens_per_day: Option<u64>,
    pub tokens_per_month: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    #[serde(default)]
    pub limits: Limits,
    pub created_at: u64,
    /// Ids of the tenant's groups the user belongs to (a manager manages
    /// the users of theirs; each group's limits are shared by its members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub tenant_id: String,
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Endpoints allowed for this task; empty = all.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Models allowed for this task; empty = all.
    #[serde(default)]
    pub models: Vec<String>,
    /// Providers its calls may go to (by name); empty = any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    pub active: bool,
    /// Prompts confirmed as part of the task (written by an admin, or a
    /// flagged prompt an admin marked on-task): the intent stage treats a
    /// prompt close to one of them as on-task, for this tenant only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// Examples kept per task, newest last; the oldest goes first.
pub const TASK_EXAMPLES_KEPT: usize = 50;
/// Characters kept of one example.
pub const TASK_EXAMPLE_CHARS: usize = 300;

/// A tenant's token-signing key. The algorithm is pinned per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    pub tenant_id: String,
    pub algorithm: KeyAlgorithm,
    /// Base64 of the HMAC secret (HS256) or of the PKCS#8 private key (EdDSA).
    pub secret: String,
    /// Base64 of the raw 32-byte Ed25519 public key (EdDSA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub created_at: u64,
    /// 1 for a tenant's first key, +1 per rotation; new tokens are signed
    /// with the highest, older keys keep verifying the tokens they signed.
    #[serde(default)]
    pub generation: u64,
}

/// What the server remembers of an issued token (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub jti: String,
    pub tenant_id: String,
    pub user_id: String,
    pub issued_at: u64,
    pub expires_at: u64,
    pub revoked: bool,
    /// The tasks and models the token allows (what the user's page lists).
    #[serde(default)]
    pub tasks: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

/// One proxied request, as the request log keeps it. `Default` is a record
/// with nothing measured yet: no status, tokens or intent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: String,
    pub at_ms: u64,
    pub tenant_id: String,
    pub user_id: String,
    pub task_id: String,
    pub endpoint: String,
    pub model: String,
    pub prompt: String,
    pub status: u16,
    pub stream: bool,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Of `tokens_in`, those the provider read from its prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokens_cached: u64,
    pub response_bytes: u64,
    pub latency_ms: u64,
    pub intent: Option<IntentLabel>,
    pub confidence: Option<f32>,
    pub drift: Option<Drift>,
    pub deviation_delta: Option<f32>,
    pub deviation_score: Option<f32>,
    pub action: Option<Action>,
    pub error: Option<String>,
    /// The answering model's own label (embedded classification), when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_intent: Option<String>,
    /// The provider that answered (or the last one tried) and the model
    /// name it was sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upstream_model: String,
    /// Every try, in order, when there was more than one (fallback, retry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The quota refused the call and took it back out of the windows: it
    /// counts in no quota (shared counters reconcile with the log by it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quota_returned: bool,
}

/// One try of a call at a provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// The provider's status; 0 when it could not be reached.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ms: u64,
}

/// One entry of the audit log: who changed what, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub at_ms: u64,
    pub tenant_id: String,
    /// `tenant/user` of the admin, or `warden` for automatic actions.
    pub actor: String,
    /// e.g. `user.block`, `user.enable`, `user.limits`, `token.issue`, `token.revoke`.
    pub action: String,
    /// What the action was applied to (a user id, a token id, a task id).
    pub target: String,
    pub reason: Option<String>,
    #[serde(default)]
    pub details: serde_json::Value,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
