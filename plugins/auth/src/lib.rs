//! Default auth stage. The host has already verified the token's signature,
//! expiry and revocation; this stage decides whether the verified caller may
//! proceed given their standing and the endpoint called.
//!
//! Config: `allow_flagged` (default `true`): flagged users keep working while
//! an admin reviews them.

wit_bindgen::generate!({ path: "../../wit", world: "warden:policy/auth-plugin@0.1.0" });

use exports::warden::policy::auth::{AuthRequest, Guest};
use warden::policy::config;
use warden::policy::types::{TenantStatus, UserStatus, Verdict};

struct Auth;

impl Guest for Auth {
    fn check(request: AuthRequest) -> Verdict {
        if request.tenant_status == TenantStatus::Suspended {
            return Verdict::Deny(format!(
                "tenant '{}' is suspended; contact the owner",
                request.identity.tenant_id
            ));
        }
        match request.user_status {
            UserStatus::Blocked => {
                return Verdict::Deny(format!(
                    "user '{}' is blocked; an admin must re-enable the account",
                    request.identity.user_id
                ))
            }
            UserStatus::Flagged if !allow_flagged() => {
                return Verdict::Deny(format!(
                    "user '{}' is flagged for review; an admin must re-enable the account",
                    request.identity.user_id
                ))
            }
            _ => {}
        }
        let endpoints = &request.claims.endpoints;
        if !endpoints.is_empty() && !endpoints.iter().any(|e| e == &request.endpoint) {
            return Verdict::Deny(format!(
                "this token may not call the '{}' endpoint (allowed: {})",
                request.endpoint,
                endpoints.join(", ")
            ));
        }
        Verdict::Allow
    }
}

fn allow_flagged() -> bool {
    config::get("allow_flagged").is_none_or(|v| v != "false")
}

export!(Auth);
