//! Invitations: a tenant's admins invite people by e-mail with a role; the
//! e-mail's link works once, for 7 days, and accepting it creates the
//! account in the inviter's tenant (within the plan's user limit) and signs
//! the new user in. The link's token is kept only as its SHA-256; a resend
//! replaces it. Admins list, cancel and resend; invitees see the details
//! and accept without any account (`public_details`, `accept`).

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{audit, internal, Access, Caller};
use crate::app::App;
use crate::domain::invitations::{
    gone_reason, Invitation, InvitationStatus, REMIND_AFTER_MS, VALID_MS,
};
use crate::error::{ApiError, ErrorCode};
use crate::mail;
use crate::provision::NewUser;
use crate::state::model::{Limits, Role};

/// Invitations one tenant may send in an hour (resends included).
const PER_HOUR: usize = 500;
const HOUR_MS: u64 = 3600 * 1000;

/// An invitation as admins see it: never its token.
#[derive(Debug, Serialize)]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// `pending`, `accepted`, `cancelled` or `expired`.
    pub status: &'static str,
    pub created_at: u64,
    pub expires_at: u64,
    pub invited_by: String,
    pub sent: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

fn view(invitation: &Invitation, now_ms: u64) -> InvitationView {
    let status = match invitation.status {
        InvitationStatus::Accepted => "accepted",
        InvitationStatus::Cancelled => "cancelled",
        InvitationStatus::Pending if now_ms >= invitation.expires_at => "expired",
        InvitationStatus::Pending => "pending",
    };
    InvitationView {
        id: invitation.id.clone(),
        email: invitation.email.clone(),
        name: invitation.name.clone(),
        role: invitation.role,
        status,
        created_at: invitation.created_at,
        expires_at: invitation.expires_at,
        invited_by: invitation.invited_by.clone(),
        sent: invitation.sent,
        user_id: invitation.user_id.clone(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    pub email: String,
    #[serde(default)]
    pub name: String,
    /// `user` (default), `viewer`, `manager` or `admin`.
    pub role: Option<Role>,
    /// Groups of the tenant the account joins.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// Of `groups`, those the tenant still has.
fn existing_groups(app: &App, tenant: &str, groups: &[String]) -> Vec<String> {
    let directory = app.db.directory();
    let Some(entry) = directory.tenant(tenant) else {
        return Vec::new();
    };
    groups
        .iter()
        .filter(|g| entry.groups.contains_key(*g))
        .cloned()
        .collect()
}

/// `GET /admin/v1/tenants/{t}/invitations`, newest first.
pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<Vec<InvitationView>, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let now = app.clock.now_ms();
    let all = app.db.invitations(tenant).map_err(internal)?;
    Ok(all.iter().rev().map(|i| view(i, now)).collect())
}

/// `POST /admin/v1/tenants/{t}/invitations {email, name?, role?}`: stores it
/// and e-mails the link.
pub fn create(
    app: &App,
    caller: &Caller,
    tenant: &str,
    new: NewInvitation,
) -> Result<InvitationView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let email = new.email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(invalid(format!("'{}' is not an e-mail address", new.email)));
    }
    let role = new.role.unwrap_or(Role::User);
    if role == Role::SuperAdmin {
        return Err(invalid(
            "an invitation's role is admin, manager, viewer or user",
        ));
    }
    super::groups::check_exist(app, tenant, &new.groups)?;
    super::subscription::check_user_room(app, tenant)?;
    let now = app.clock.now_ms();
    let existing = app.db.invitations(tenant).map_err(internal)?;
    if existing
        .iter()
        .any(|i| i.email == email && gone_reason(i, now).is_none())
    {
        return Err(invalid(format!(
            "'{email}' has a pending invitation already: resend it instead"
        )));
    }
    check_rate(&existing, now)?;
    let invitation = Invitation {
        tenant_id: tenant.to_string(),
        id: format!("inv_{}", crate::token::random_id(8)),
        email,
        name: new.name.trim().to_string(),
        role,
        groups: new.groups,
        token_hash: String::new(),
        created_at: now,
        expires_at: now + VALID_MS,
        status: InvitationStatus::Pending,
        invited_by: caller_name(caller),
        sent: 0,
        reminded: false,
        user_id: None,
    };
    let invitation = send_link(app, invitation)?;
    let details = json!({ "email": invitation.email, "role": invitation.role });
    audit(
        app,
        caller,
        tenant,
        "invitation.create",
        &invitation.id,
        None,
        details,
    )?;
    Ok(view(&invitation, now))
}

fn caller_name(caller: &Caller) -> String {
    format!("{}/{}", caller.tenant_id, caller.user_id)
}

/// At most [`PER_HOUR`] e-mails of invitations per tenant per hour.
fn check_rate(existing: &[Invitation], now: u64) -> Result<(), ApiError> {
    let recent = existing
        .iter()
        .filter(|i| now.saturating_sub(i.created_at) < HOUR_MS)
        .map(|i| i.sent as usize)
        .sum::<usize>();
    if recent >= PER_HOUR {
        let mut error = ApiError::new(
            ErrorCode::RateLimitExceeded,
            format!("a tenant may send {PER_HOUR} invitations an hour: try again later"),
        );
        error.retry_after_secs = Some(3600);
        return Err(error);
    }
    Ok(())
}

/// A fresh token for `invitation`, stored (hashed) and e-mailed: the
/// invitation, or (`reminder`) the reminder, whose link replaces the first.
fn send_link(app: &App, invitation: Invitation) -> Result<Invitation, ApiError> {
    send_with(app, invitation, false)
}

fn send_with(
    app: &App,
    mut invitation: Invitation,
    reminder: bool,
) -> Result<Invitation, ApiError> {
    let token = crate::token::random_id(32);
    invitation.token_hash = hash(&token);
    invitation.sent += 1;
    app.db.put_invitation(&invitation).map_err(internal)?;
    let brand = mail::brand(app, &invitation.tenant_id);
    let link = format!("{}/ui/invite/{token}", mail::base_url(app));
    let expires = jiff::Timestamp::from_millisecond(invitation.expires_at as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let role = invitation.role.with_article();
    let mut message = mail::invitation(
        &invitation.email,
        &brand,
        &invitation.invited_by,
        role,
        &link,
        &expires,
    );
    if reminder {
        message = mail::reminder(message);
    }
    mail::send(app, &message).map_err(internal)?;
    Ok(invitation)
}

/// A pending invitation of the caller's tenant, for an admin to `act` on.
fn pending(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
    act: &str,
) -> Result<Invitation, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let invitation = app
        .db
        .invitations(tenant)
        .map_err(internal)?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no invitation '{id}' in tenant '{tenant}'")))?;
    if invitation.status != InvitationStatus::Pending {
        return Err(invalid(format!("only a pending invitation can be {act}")));
    }
    Ok(invitation)
}

/// `DELETE /admin/v1/tenants/{t}/invitations/{id}`: its link stops working.
pub fn cancel(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
) -> Result<InvitationView, ApiError> {
    let invitation = pending(app, caller, tenant, id, "cancelled")?;
    let cancelled = Invitation {
        status: InvitationStatus::Cancelled,
        ..invitation.clone()
    };
    if !app
        .db
        .swap_invitation(&invitation, &cancelled)
        .map_err(internal)?
    {
        return Err(invalid("the invitation changed meanwhile: try again"));
    }
    audit(
        app,
        caller,
        tenant,
        "invitation.cancel",
        id,
        None,
        json!({}),
    )?;
    Ok(view(&cancelled, app.clock.now_ms()))
}

/// `POST /admin/v1/tenants/{t}/invitations/{id}/resend`: a new link (the
/// old one stops working) valid 7 days from now.
pub fn resend(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
) -> Result<InvitationView, ApiError> {
    let invitation = pending(app, caller, tenant, id, "resent")?;
    let now = app.clock.now_ms();
    check_rate(&app.db.invitations(tenant).map_err(internal)?, now)?;
    let renewed = send_link(
        app,
        Invitation {
            expires_at: now + VALID_MS,
            ..invitation
        },
    )?;
    audit(
        app,
        caller,
        tenant,
        "invitation.resend",
        id,
        None,
        json!({}),
    )?;
    Ok(view(&renewed, now))
}

/// What an invitee sees before accepting.
#[derive(Debug, Serialize)]
pub struct PublicDetails {
    /// For this server's own pages (the branding); not in the answer.
    #[serde(skip)]
    pub tenant_id: String,
    pub organisation: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub invited_by: String,
    pub expires_at: u64,
    /// The account id accepting makes, unless they choose another.
    pub suggested_user_id: String,
    /// The organisation's branding, for the page that shows this.
    pub accent_color: String,
    pub logo_url: Option<String>,
}

/// The pending invitation a link's token opens, or why it does not.
fn by_token(app: &App, token: &str) -> Result<Invitation, ApiError> {
    let invitation = app
        .db
        .invitation_by_token(&hash(token))
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("no such invitation: check the link in the e-mail"))?;
    if let Some(reason) = gone_reason(&invitation, app.clock.now_ms()) {
        return Err(ApiError::new(ErrorCode::InvitationGone, reason));
    }
    Ok(invitation)
}

/// `GET /invitations/public/{token}/details` (no account needed).
pub fn public_details(app: &App, token: &str) -> Result<PublicDetails, ApiError> {
    let invitation = by_token(app, token)?;
    let brand = mail::brand(app, &invitation.tenant_id);
    Ok(PublicDetails {
        tenant_id: invitation.tenant_id.clone(),
        organisation: brand.name,
        accent_color: brand.accent,
        logo_url: brand.logo_url,
        suggested_user_id: suggested_id(&invitation.email),
        email: invitation.email,
        name: invitation.name,
        role: invitation.role,
        invited_by: invitation.invited_by,
        expires_at: invitation.expires_at,
    })
}

/// An account id from an e-mail's local part: `maya.k@x` → `maya-k`.
fn suggested_id(email: &str) -> String {
    let local = email.split('@').next().unwrap_or("user");
    let id: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    id.trim_matches('-').to_string()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub user_id: Option<String>,
    pub name: Option<String>,
}

/// Who accepting made.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub tenant: String,
    pub user_id: String,
    pub role: Role,
}

/// `POST /invitations/public/{token}/accept {user_id?, name?}`: the account
/// is made once, within the plan's user limit; the link stops working.
pub fn accept(app: &App, token: &str, acceptance: Acceptance) -> Result<Accepted, ApiError> {
    let invitation = by_token(app, token)?;
    let tenant = invitation.tenant_id.clone();
    let user_id = acceptance
        .user_id
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| suggested_id(&invitation.email));
    let taken = app
        .db
        .directory()
        .tenant(&tenant)
        .is_some_and(|e| e.users.contains_key(&user_id));
    if taken {
        return Err(invalid(format!(
            "the account id '{user_id}' is taken: choose another"
        )));
    }
    super::subscription::check_user_room(app, &tenant)?;
    let accepted = Invitation {
        status: InvitationStatus::Accepted,
        user_id: Some(user_id.clone()),
        ..invitation.clone()
    };
    if !app
        .db
        .swap_invitation(&invitation, &accepted)
        .map_err(internal)?
    {
        return Err(ApiError::new(
            ErrorCode::InvitationGone,
            "this invitation was already accepted: sign in instead",
        ));
    }
    let name = acceptance
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| invitation.name.clone());
    let made = crate::provision::create_user(
        &app.db,
        NewUser {
            tenant_id: &tenant,
            id: &user_id,
            name: if name.is_empty() { &user_id } else { &name },
            role: invitation.role,
            limits: Limits::default(),
            // Groups deleted since the invitation are left out.
            groups: existing_groups(app, &tenant, &invitation.groups),
        },
    );
    if let Err(e) = made {
        // Put the invitation back: the link works again with another id.
        let _ = app.db.swap_invitation(&accepted, &invitation);
        return Err(invalid(format!("{e:#}")));
    }
    let console = format!("{}/ui/login", mail::base_url(app));
    let welcome = mail::welcome(
        &invitation.email,
        &mail::brand(app, &tenant),
        &user_id,
        &console,
    );
    mail::send(app, &welcome).map_err(internal)?;
    let event = app.event(
        &tenant,
        format!("{tenant}/{user_id}"),
        "invitation.accept",
        &invitation.id,
        None,
        json!({ "email": invitation.email, "role": invitation.role, "user": user_id }),
    );
    app.db.append_event(&event).map_err(internal)?;
    Ok(Accepted {
        tenant,
        user_id,
        role: invitation.role,
    })
}

/// Sends the reminder of every pending invitation not accepted
/// [`REMIND_AFTER_MS`] after it was sent, once (with a new link: only the
/// hash of the first one is kept). Returns how many were sent.
pub fn remind_due(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now_ms();
    let tenants: Vec<String> = app.db.directory().tenants.keys().cloned().collect();
    let mut sent = 0;
    for tenant in tenants {
        for invitation in app.db.invitations(&tenant)? {
            let due = now.saturating_sub(invitation.created_at) >= REMIND_AFTER_MS;
            if invitation.reminded || !due || gone_reason(&invitation, now).is_some() {
                continue;
            }
            let id = invitation.id.clone();
            let reminded = Invitation {
                reminded: true,
                ..invitation
            };
            send_with(app, reminded, true).map_err(|e| anyhow::anyhow!(e.message))?;
            let event = app.event(
                &tenant,
                "warden".into(),
                "invitation.remind",
                &id,
                None,
                json!({}),
            );
            app.db.append_event(&event)?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Rows one bulk invitation may hold.
const BULK_ROWS: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkInvitations {
    /// `email,name,role,groups` lines (all but the e-mail optional; groups
    /// separated by ';'; a header line
    /// starting with `email` is skipped; quoted fields as in RFC 4180).
    pub csv: String,
}

/// What happened to one row.
#[derive(Debug, Serialize)]
pub struct RowReport {
    /// 1-based, as a spreadsheet numbers it.
    pub row: usize,
    pub email: String,
    /// `invited` or `refused`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BulkReport {
    pub invited: usize,
    pub refused: usize,
    /// One report per row.
    pub data: Vec<RowReport>,
}

/// `POST /admin/v1/tenants/{t}/invitations/bulk {csv}`: each row is one
/// invitation, sent or refused on its own; the answer reports every row.
pub fn bulk(
    app: &App,
    caller: &Caller,
    tenant: &str,
    input: BulkInvitations,
) -> Result<BulkReport, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let rows = parse_csv(&input.csv);
    if rows.len() > BULK_ROWS {
        return Err(invalid(format!(
            "{} rows: a bulk invitation holds at most {BULK_ROWS}",
            rows.len()
        )));
    }
    let mut reports = Vec::with_capacity(rows.len());
    for (index, cells) in rows {
        let cell = |i: usize| cells.get(i).map(|c| c.trim()).unwrap_or_default();
        if index == 1 && cell(0).eq_ignore_ascii_case("email") {
            continue;
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let role = match cell(2) {
            "" => Ok(Role::User),
            role => role.parse::<Role>(),
        };
        let groups = cell(3)
            .split(';')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        let outcome = role.map_err(invalid).and_then(|role| {
            let new = NewInvitation {
                email: cell(0).to_string(),
                name: cell(1).to_string(),
                role: Some(role),
                groups,
            };
            create(app, caller, tenant, new)
        });
        reports.push(match outcome {
            Ok(made) => RowReport {
                row: index,
                email: made.email,
                status: "invited",
                id: Some(made.id),
                error: None,
            },
            Err(e) => RowReport {
                row: index,
                email: cell(0).to_string(),
                status: "refused",
                id: None,
                error: Some(e.message),
            },
        });
    }
    let invited = reports.iter().filter(|r| r.status == "invited").count();
    Ok(BulkReport {
        invited,
        refused: reports.len() - invited,
        data: reports,
    })
}

/// CSV lines as (1-based line number, cells): commas separate cells, a
/// quoted cell may hold commas and doubled quotes.
fn parse_csv(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut cells = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.trim_end_matches('\r').chars().peekable();
        while let Some(c) = chars.next() {
            let cell = cells.last_mut().expect("one cell at least");
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cell.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => cells.push(String::new()),
                (c, _) => cell.push(c),
            }
        }
        rows.push((index + 1, cells));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_may_be_quoted_with_commas_and_quotes() {
        let rows = parse_csv("email,name\r\nsam@x.io,\"Lee, Sam \"\"SL\"\"\",admin\n\n");
        assert_eq!(rows[0].1, ["email", "name"]);
        assert_eq!(rows[1].1, ["sam@x.io", "Lee, Sam \"SL\"", "admin"]);
        assert_eq!(rows[2], (3, vec![String::new()]));
    }
}
