//! Plans and a tenant's subscription, as its admins and the operator see
//! them: the catalogue, the tenant's plan and status, plan changes (a
//! downgrade below the users the tenant has is refused), and the plan's
//! user limit when a user is added. The payment provider moves the status
//! through the billing webhook (`crate::billing`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{audit, internal, require_reason, Access, Caller};
use crate::app::App;
use crate::domain::plans::{Feature, Plan, Subscription, SubscriptionStatus};
use crate::error::{ApiError, ErrorCode};
use crate::state::model::Tenant;

/// Announces every trial ending within three days, once each: an audit
/// event `subscription.trial_ending` (actor `warden`, which webhooks asking
/// for it hear of). Run by the server's minute sweep; returns how many.
pub fn announce_trials_ending(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now_ms();
    let due: Vec<Tenant> = app
        .db
        .directory()
        .tenants
        .values()
        .filter_map(|e| e.tenant.clone())
        .filter(|t| {
            t.subscription
                .as_ref()
                .is_some_and(|s| s.trial_ending_due(now))
        })
        .collect();
    for mut tenant in due.iter().cloned() {
        let Some(subscription) = tenant.subscription.as_mut() else {
            continue;
        };
        subscription.trial_ending_announced = true;
        let details = json!({
            "plan": subscription.plan,
            "trial_ends_at": subscription.trial_ends_at,
        });
        let plan = app.config.plan(&subscription.plan);
        let name = plan.map_or(subscription.plan.as_str(), |p| p.name.as_str());
        let reason = subscription.notice(name, now);
        app.db.put_tenant(&tenant)?;
        let event = app.event(
            &tenant.id,
            "warden".into(),
            "subscription.trial_ending",
            &tenant.id,
            reason,
            details,
        );
        app.db.append_event(&event)?;
    }
    Ok(due.len())
}

#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    pub tenant: String,
    /// The plan subscribed to, from the server's catalogue.
    pub plan: Option<Plan>,
    pub subscription: Option<Subscription>,
    /// Users the tenant has now, against the plan's `max_users`.
    pub users: usize,
    /// Why calls are refused now, if they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lapsed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionChange {
    /// A plan of the catalogue.
    pub plan: Option<String>,
    /// A new status (super_admin only; tenants' statuses otherwise move
    /// with the payment provider's events).
    pub status: Option<String>,
    pub reason: Option<String>,
}

/// `GET /admin/v1/plans`.
pub fn plans(app: &App) -> Vec<Plan> {
    app.config.plans.clone()
}

/// A tenant's record, or 404.
pub(super) fn tenant_of(app: &App, tenant: &str) -> Result<Tenant, ApiError> {
    app.db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.tenant.clone())
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{tenant}'")))
}

fn user_count(app: &App, tenant: &str) -> usize {
    app.db
        .directory()
        .tenant(tenant)
        .map_or(0, |e| e.users.len())
}

fn unknown_plan(app: &App, id: &str) -> ApiError {
    let known: Vec<&str> = app.config.plans.iter().map(|p| p.id.as_str()).collect();
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("no plan '{id}'; this server offers {}", known.join(", ")),
    )
}

/// `GET /admin/v1/tenants/{t}/subscription`.
pub fn show(app: &App, caller: &Caller, tenant: &str) -> Result<SubscriptionView, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    view(app, &tenant_of(app, tenant)?)
}

fn view(app: &App, tenant: &Tenant) -> Result<SubscriptionView, ApiError> {
    let subscription = tenant.subscription.clone();
    let plan = subscription
        .as_ref()
        .and_then(|s| app.config.plan(&s.plan))
        .cloned();
    let lapsed = subscription.as_ref().and_then(|s| {
        let name = plan.as_ref().map_or(s.plan.as_str(), |p| p.name.as_str());
        s.lapse(name, app.clock.now_ms()).map(|l| l.message)
    });
    Ok(SubscriptionView {
        tenant: tenant.id.clone(),
        plan,
        subscription,
        users: user_count(app, &tenant.id),
        lapsed,
    })
}

/// `PUT /admin/v1/tenants/{t}/subscription {plan?, status?, reason}`.
pub fn change(
    app: &App,
    caller: &Caller,
    tenant_id: &str,
    change: SubscriptionChange,
) -> Result<SubscriptionView, ApiError> {
    caller.may(Access::Administer, tenant_id)?;
    let reason = require_reason(change.reason)?;
    let mut tenant = tenant_of(app, tenant_id)?;
    let now = app.clock.now_ms();
    let before = tenant.subscription.clone();
    if let Some(id) = &change.plan {
        let plan = app.config.plan(id).ok_or_else(|| unknown_plan(app, id))?;
        let users = user_count(app, tenant_id);
        if plan.max_users.is_some_and(|max| users > max as usize) {
            return Err(ApiError::new(
                ErrorCode::PlanLimit,
                format!(
                    "the {} plan allows {} users and tenant '{tenant_id}' has {users}: remove users first",
                    plan.name,
                    plan.max_users.unwrap_or_default()
                ),
            ));
        }
        tenant.subscription = Some(match tenant.subscription.take() {
            Some(current) => Subscription {
                plan: plan.id.clone(),
                updated_at: now,
                ..current
            },
            None => Subscription::start(plan, now),
        });
    }
    if let Some(status) = &change.status {
        // A subscription's status moves with the payment provider's
        // events; only a super_admin sets it by hand.
        caller.has(Access::Operate)?;
        let status = SubscriptionStatus::parse(status).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("no status '{status}'; trialing, active, past_due, suspended or cancelled"),
            )
        })?;
        let subscription = tenant.subscription.as_mut().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "the tenant has no plan: give one",
            )
        })?;
        subscription.status = status;
        subscription.updated_at = now;
    }
    if tenant.subscription == before {
        return Err(ApiError::new(
            ErrorCode::NothingToChange,
            "give a 'plan' or a 'status' that differs from the current one",
        ));
    }
    app.db.put_tenant(&tenant).map_err(internal)?;
    let details = json!({ "before": before, "after": tenant.subscription });
    audit(
        app,
        caller,
        tenant_id,
        "subscription.change",
        tenant_id,
        Some(reason),
        details,
    )?;
    view(app, &tenant)
}

/// Refuses a new user beyond the tenant's plan's limit, naming both.
pub fn check_user_room(app: &App, tenant_id: &str) -> Result<(), ApiError> {
    let tenant = tenant_of(app, tenant_id)?;
    let Some(subscription) = &tenant.subscription else {
        return Ok(());
    };
    let Some(plan) = app.config.plan(&subscription.plan) else {
        return Ok(());
    };
    let users = user_count(app, tenant_id);
    match plan.max_users {
        Some(max) if users >= max as usize => Err(ApiError::new(
            ErrorCode::PlanLimit,
            format!(
                "the {} plan allows {max} users and tenant '{tenant_id}' has {users}; an admin upgrades the plan to add more",
                plan.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses what the tenant's plan does not include, naming the plans that
/// do. A tenant without a plan may do everything.
pub fn require_feature(app: &App, tenant_id: &str, feature: Feature) -> Result<(), ApiError> {
    let tenant = tenant_of(app, tenant_id)?;
    let Some(plan) = tenant
        .subscription
        .as_ref()
        .and_then(|s| app.config.plan(&s.plan))
    else {
        return Ok(());
    };
    if plan.has(feature) {
        return Ok(());
    }
    let offering: Vec<&str> = app
        .config
        .plans
        .iter()
        .filter(|p| p.has(feature))
        .map(|p| p.name.as_str())
        .collect();
    let upgrade = if offering.is_empty() {
        String::new()
    } else {
        format!("; {} include it", offering.join(" and "))
    };
    Err(ApiError::new(
        ErrorCode::PlanLimit,
        format!(
            "the {} plan does not include {}{upgrade}",
            plan.name,
            feature.describe()
        ),
    ))
}
