//! Invitations: an admin invites someone by e-mail into the tenant with a
//! role; the e-mail's link (a secret token, kept hashed) lets them accept
//! once within 7 days, which creates their account and signs them in.

use serde::{Deserialize, Serialize};

use crate::model::Role;

/// How long an invitation's link works.
pub const VALID_MS: u64 = 7 * 24 * 3600 * 1000;
/// A pending invitation not accepted after this gets one reminder.
pub const REMIND_AFTER_MS: u64 = 3 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub tenant_id: String,
    pub id: String,
    pub email: String,
    /// The name to greet them with, if the admin gave one.
    #[serde(default)]
    pub name: String,
    pub role: Role,
    /// Groups the account joins on acceptance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// SHA-256 (hex) of the link's token; the token itself is only in the e-mail.
    pub token_hash: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub status: InvitationStatus,
    /// `tenant/user` of the admin who sent it.
    pub invited_by: String,
    /// E-mails sent: the invitation, resends, the reminder.
    pub sent: u32,
    #[serde(default)]
    pub reminded: bool,
    /// The user made on acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Why an invitation's link no longer works, in the invitee's words.
pub fn gone_reason(invitation: &Invitation, now_ms: u64) -> Option<&'static str> {
    match invitation.status {
        InvitationStatus::Accepted => Some("this invitation was already accepted: sign in instead"),
        InvitationStatus::Cancelled => {
            Some("this invitation was cancelled: ask the admin who sent it")
        }
        InvitationStatus::Pending if now_ms >= invitation.expires_at => {
            Some("this invitation has expired: ask the admin who sent it to resend it")
        }
        InvitationStatus::Pending => None,
    }
}
