//! The page frame (navigation, who is signed in, sign-out) and the small
//! pieces every page uses: numbers, money, times, badges, meters, flashes.

use std::collections::HashMap;

use hyper::StatusCode;
use maud::{html, Markup, DOCTYPE};

use super::Viewer;
use crate::domain::branding::Branding;
use crate::state::model::{Role, UserStatus};

/// The admin sections, in navigation order: (path under /ui/t/T, label).
const SECTIONS: &[(&str, &str)] = &[
    ("", "Overview"),
    ("users", "Users"),
    ("review", "Review"),
    ("tasks", "Tasks"),
    ("groups", "Groups"),
    ("tokens", "Tokens"),
    ("logs", "Logs"),
    ("plugins", "Plugins"),
    ("policy", "Policy"),
    ("providers", "Providers"),
    ("webhooks", "Webhooks"),
];

/// A whole HTML document: the head every page shares (with the tenant's
/// accent colour, if it chose one), and `body`.
fn document(title: &str, branding: Option<&Branding>, body: Markup) -> Markup {
    let accent = branding
        .and_then(|b| b.accent_color.as_deref())
        .map(|c| c.trim_start_matches('#'));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                link rel="stylesheet" href="/ui/static/app.css";
                @if let Some(accent) = accent {
                    link rel="stylesheet" href={ "/ui/brand.css?c=" (accent) };
                }
                script src="/ui/static/app.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A page with no one signed in (sign-in, errors before sign-in).
pub fn bare(title: &str, body: Markup) -> Markup {
    bare_branded(title, None, body)
}

/// A page with no one signed in, in a tenant's colours with its logo and
/// name when `branding` is given (the invitation).
pub fn bare_branded(title: &str, branding: Option<&Branding>, body: Markup) -> Markup {
    let page = html! {
        main {
            @if let Some(b) = branding { div.brand-bar { (brand_mark(Some(b))) } }
            (body)
        }
    };
    document(title, branding, page)
}

/// The tenant's logo and display name, or Warden's name.
fn brand_mark(branding: Option<&Branding>) -> Markup {
    let name = branding.and_then(|b| b.display_name.as_deref());
    let logo = branding.and_then(|b| b.logo.as_ref());
    html! {
        span.brand {
            @if let Some(logo) = logo {
                img.logo src={ "/ui/brand/logo/" (logo.sha256) } alt=(name.unwrap_or("logo"));
            }
            (name.unwrap_or("Warden"))
        }
    }
}

/// Where a viewer is in the console: a tenant's admin section, or their own page.
pub struct Place<'a> {
    pub tenant: Option<&'a str>,
    pub section: &'a str,
    /// Users waiting in the review queue (the navigation's badge).
    pub review_count: usize,
    /// The tenant's branding, shown in its pages.
    pub branding: Option<&'a Branding>,
}

pub fn page(title: &str, viewer: &Viewer, place: &Place<'_>, body: Markup) -> Markup {
    let frame = html! {
            header.top {
                (brand_mark(place.branding))
                nav {
                    @if let Some(tenant) = place.tenant {
                        @for (path, label) in SECTIONS.iter().filter(|(path, _)| crate::admin::section_access(path).allows(viewer.role)) {
                            a.active[place.section == *path] href={ "/ui/t/" (tenant) @if !path.is_empty() { "/" (path) } } {
                                (label)
                                @if *path == "review" && place.review_count > 0 {
                                    span.count { (place.review_count) }
                                }
                            }
                        }
                    }
                    a.active[place.section == "me"] href="/ui/me" { "My usage" }
                }
                div.who {
                    @if viewer.role == Role::SuperAdmin {
                        a href="/ui/tenants" { "Tenants" }
                    }
                    @if let Some(tenant) = place.tenant {
                        span { "tenant " strong { (tenant) } }
                    }
                    span { (viewer.user_id) }
                    form method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
            }
            main { (body) }
    };
    document(title, place.branding, frame)
}

pub fn error(status: StatusCode, message: &str, viewer: Option<&Viewer>) -> Markup {
    let body = html! {
        div.panel {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.flash.bad { (message) }
            p {
                @match viewer {
                    Some(v) => a href=(v.home()) { "Back to the console" },
                    None => a href="/ui/login" { "Sign in" },
                }
            }
        }
    };
    match viewer {
        Some(v) => page(
            "Error",
            v,
            &Place {
                tenant: None,
                section: "",
                review_count: 0,
                branding: None,
            },
            body,
        ),
        None => bare("Error", body),
    }
}

/// The message of a finished action (`?ok=...` after a redirect). Only
/// known codes are shown, so a crafted link cannot put words on the page.
pub fn flash(query: &HashMap<String, String>) -> Markup {
    let message = match query.get("ok").map(String::as_str) {
        Some("enabled") => "User re-enabled. The reason is in the audit log.",
        Some("blocked") => "User blocked. The reason is in the audit log.",
        Some("limits") => "Limits changed. The reason is in the audit log.",
        Some("task") => "Task saved.",
        Some("on-task") => "Marked on-task: its score came off the user, and prompts like it are on-task for this tenant from now on.",
        Some("settings") => "Detection settings saved: they apply from the next call.",
        Some("archived") => "Task archived.",
        Some("revoked") => "Token revoked: it is refused from now on.",
        Some("user") => "User created. Issue them a token below.",
        Some("rollback") => "Plugin rolled back: the previous version is live again.",
        Some("uploaded") => "Plugin uploaded: it passed its self-test and is live.",
        Some("provider") => "Provider saved: its key is sealed, and the next call may use it.",
        Some("route") => "Route saved: it applies from the next call.",
        Some("removed") => "Removed.",
        Some("branding") => "Branding saved: your pages and e-mails show it from now on.",
        Some("group") => "Group saved: its limits apply from the next call. The change is in the audit log.",
        Some("invited") => "Invitation sent: its link works once, for 7 days.",
        Some("policy") => "Policy saved: it built, and is in force from the next request. The change is in the history below and the audit log.",
        _ => return html! {},
    };
    html! { p.flash { (message) } }
}

/// 1234567 → "1,234,567".
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Micro-dollars as dollars, with cents (or tenths of a cent when small).
pub fn usd(micro: u64) -> String {
    if micro > 0 && micro < 100 {
        "< $0.0001".into()
    } else if micro > 0 && micro < 10_000 {
        format!("${:.4}", micro as f64 / 1e6)
    } else {
        format!("${:.2}", micro as f64 / 1e6)
    }
}

pub fn status_badge(status: UserStatus) -> Markup {
    let name = match status {
        UserStatus::Active => "active",
        UserStatus::Flagged => "flagged",
        UserStatus::Blocked => "blocked",
    };
    html! { span.badge.(name) { (name) } }
}

/// A badge whose class is its text (an intent, a drift, an action), so
/// the stylesheet colours known values; `none` is left out.
pub fn tag(text: Option<&str>) -> Markup {
    match text {
        Some("none") | None => html! { span.muted { "–" } },
        Some(t) => {
            let known = t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let class = if known { t } else { "muted" };
            html! { span.badge.(class) { (t) } }
        }
    }
}

/// "used / limit" with a meter; "used" alone when unlimited.
pub fn quota(used: u64, limit: Option<u64>) -> Markup {
    html! {
        @match limit {
            Some(limit) => {
                meter min="0" max=(limit.max(1)) low=(limit * 7 / 10) high=(limit * 9 / 10) optimum="0" value=(used.min(limit)) {}
                " " (int(used)) " / " (int(limit))
            }
            None => { (int(used)) span.muted { " / unlimited" } }
        }
    }
}

/// A hidden CSRF field for a signed-in form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// The first `max` characters of a prompt, on one line.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .take(max + 1)
        .collect();
    if flat.chars().count() > max {
        let mut cut: String = flat.chars().take(max).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(usd(1_500_000), "$1.50");
        assert_eq!(usd(150), "$0.0001");
        assert_eq!(usd(12), "< $0.0001");
        assert_eq!(usd(0), "$0.00");
        assert_eq!(excerpt("a\nb c", 3), "a b…");
    }

    #[test]
    fn interpolated_text_is_escaped() {
        let markup = html! { td.prompt { ("<script>alert(1)</script>") } };
        assert_eq!(
            markup.into_string(),
            "<td class=\"prompt\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"
        );
    }
}
