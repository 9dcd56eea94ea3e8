//! Branding: a tenant's display name, accent colour and logo, shown in its
//! console and its e-mails. Read by anyone who reads the set-up; changed by
//! its admins, on a plan with the `branding` feature.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::subscription::tenant_of;
use super::{audit, internal, Access, Caller};
use crate::app::App;
use crate::domain::branding::{self, Branding, Logo};
use crate::domain::plans::Feature;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::Tenant;

/// A tenant's branding, with the logo's address.
#[derive(Debug, Serialize)]
pub struct BrandingView {
    #[serde(flatten)]
    pub branding: Branding,
    /// Where the logo is served (no session needed; names no tenant).
    pub logo_url: Option<String>,
}

/// The public address of a stored logo.
pub fn logo_path(logo: &Logo) -> String {
    format!("/ui/brand/logo/{}", logo.sha256)
}

fn view(tenant: &Tenant) -> BrandingView {
    BrandingView {
        branding: tenant.branding.clone(),
        logo_url: tenant.branding.logo.as_ref().map(logo_path),
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

/// `GET /admin/v1/tenants/{t}/branding`
pub fn show(app: &App, caller: &Caller, tenant: &str) -> Result<BrandingView, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    Ok(view(&tenant_of(app, tenant)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrandingChange {
    /// `""` clears it; absent keeps it.
    pub display_name: Option<String>,
    /// `#rrggbb` or `#rgb`; `""` clears it; absent keeps it.
    pub accent_color: Option<String>,
    pub reason: Option<String>,
}

/// Saves `tenant` with its branding changed by `change`, audited as `action`.
fn save(
    app: &App,
    caller: &Caller,
    mut tenant: Tenant,
    action: &str,
    reason: Option<String>,
    change: impl FnOnce(&mut Branding),
) -> Result<BrandingView, ApiError> {
    let before = tenant.branding.clone();
    change(&mut tenant.branding);
    app.db.put_tenant(&tenant).map_err(internal)?;
    let details = json!({ "before": before, "after": tenant.branding });
    audit(app, caller, &tenant.id, action, &tenant.id, reason, details)?;
    Ok(view(&tenant))
}

/// Checks the caller may change the tenant's branding, and its plan has it.
fn changeable(app: &App, caller: &Caller, tenant: &str) -> Result<Tenant, ApiError> {
    caller.may(Access::Administer, tenant)?;
    super::subscription::require_feature(app, tenant, Feature::Branding)?;
    tenant_of(app, tenant)
}

/// `PUT /admin/v1/tenants/{t}/branding {display_name?, accent_color?, reason?}`
pub fn put(
    app: &App,
    caller: &Caller,
    tenant: &str,
    change: BrandingChange,
) -> Result<BrandingView, ApiError> {
    let record = changeable(app, caller, tenant)?;
    let name = change
        .display_name
        .as_deref()
        .map(branding::display_name)
        .transpose()
        .map_err(invalid)?;
    let accent = change
        .accent_color
        .as_deref()
        .map(branding::accent_color)
        .transpose()
        .map_err(invalid)?;
    save(app, caller, record, "branding.change", change.reason, |b| {
        if let Some(name) = name {
            b.display_name = name;
        }
        if let Some(accent) = accent {
            b.accent_color = accent;
        }
    })
}

/// `PUT /admin/v1/tenants/{t}/branding/logo` (body: a PNG, JPEG or WebP
/// image, at most 256 KiB): checked by its bytes, stored by its SHA-256.
pub fn upload_logo(
    app: &App,
    caller: &Caller,
    tenant: &str,
    image: Bytes,
) -> Result<BrandingView, ApiError> {
    let record = changeable(app, caller, tenant)?;
    let content_type = branding::sniff_logo(&image).map_err(invalid)?;
    let sha256: String = Sha256::digest(&image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    app.db
        .put_logo(&sha256, content_type, &image)
        .map_err(internal)?;
    let logo = Logo {
        sha256,
        content_type: content_type.into(),
        bytes: image.len() as u64,
    };
    save(app, caller, record, "branding.logo", None, |b| {
        b.logo = Some(logo)
    })
}

/// `DELETE /admin/v1/tenants/{t}/branding/logo`
pub fn remove_logo(app: &App, caller: &Caller, tenant: &str) -> Result<BrandingView, ApiError> {
    let record = changeable(app, caller, tenant)?;
    save(app, caller, record, "branding.logo", None, |b| {
        b.logo = None
    })
}
