//! Tenants' policies set through the admin API, versioned.
//!
//! Each change is a new version (a rollback too), so the history says who
//! ran what when; the latest version is the tenant's policy. A version
//! without text hands the tenant back to the server's policy files.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub tenant_id: String,
    /// 1, 2, 3… per tenant.
    pub version: u32,
    /// The policy as TOML, in the policy file format; `None`: the server's
    /// policy (`policies/<tenant>.toml`, else `default.toml`) applies.
    pub text: Option<String>,
    pub created_at: u64,
    /// Who made this version (`<tenant>/<user>`, `cli/<login>`).
    pub actor: String,
    /// Why, or what it was made from (`rollback to version 3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
