//! E-mails Warden sends to people (invitations, welcomes): a text and an
//! HTML part from the templates below, with the tenant's display name,
//! written to the outbox directory as one RFC 5322 `.eml` file each, which
//! a relay (or a developer) picks up. The templates escape every value.

use std::path::PathBuf;

use base64::Engine as _;

use crate::app::App;

/// One message, before it is written.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// How a tenant's e-mails look: its display name (else its name), accent
/// colour and logo.
pub struct Brand {
    pub name: String,
    pub accent: String,
    /// The logo's absolute URL.
    pub logo_url: Option<String>,
}

/// Warden's own accent, for tenants without one.
const DEFAULT_ACCENT: &str = "#2f5bd3";

pub fn brand(app: &App, tenant: &str) -> Brand {
    let directory = app.db.directory();
    let record = directory.tenant(tenant).and_then(|e| e.tenant.as_ref());
    let branding = record.map(|t| &t.branding);
    Brand {
        name: branding
            .and_then(|b| b.display_name.clone())
            .or_else(|| record.map(|t| t.name.clone()))
            .unwrap_or_else(|| tenant.to_string()),
        accent: branding
            .and_then(|b| b.accent_color.clone())
            .unwrap_or_else(|| DEFAULT_ACCENT.into()),
        logo_url: branding
            .and_then(|b| b.logo.as_ref())
            .map(|logo| format!("{}{}", base_url(app), crate::api::branding::logo_path(logo))),
    }
}

/// An HTML e-mail: the brand's logo and `title` in its colour, then `body`.
fn html_page(brand: &Brand, title: &str, body: &str) -> String {
    let logo = brand.logo_url.as_ref().map_or(String::new(), |url| {
        format!(
            "<p><img src=\"{}\" alt=\"{}\" style=\"max-height:48px\"></p>",
            escape(url),
            escape(&brand.name)
        )
    });
    format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">{logo}\
         <h1 style=\"color:{accent}\">{title}</h1>{body}</body></html>",
        accent = escape(&brand.accent),
        title = escape(title),
    )
}

/// A link drawn as a button in the brand's colour.
fn button(brand: &Brand, link: &str, label: &str) -> String {
    format!(
        "<p><a href=\"{link}\" style=\"background:{accent};color:#fff;padding:8px 14px;\
         border-radius:6px;text-decoration:none\">{label}</a></p>",
        link = escape(link),
        accent = escape(&brand.accent),
        label = escape(label),
    )
}

/// Where e-mails are written.
pub fn outbox_dir(app: &App) -> PathBuf {
    app.config
        .mail
        .outbox_dir
        .clone()
        .unwrap_or_else(|| app.config.state_dir.join("outbox"))
}

/// The console's public address, for links.
pub fn base_url(app: &App) -> String {
    let configured = app.config.mail.base_url.clone();
    configured
        .unwrap_or_else(|| format!("http://{}", app.config.listen))
        .trim_end_matches('/')
        .to_string()
}

/// Writes `mail` to the outbox; returns the file.
pub fn send(app: &App, mail: &Mail) -> anyhow::Result<PathBuf> {
    let dir = outbox_dir(app);
    std::fs::create_dir_all(&dir)?;
    let id = crate::token::random_id(12);
    let now = jiff::Timestamp::now();
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_string(&now)
        .unwrap_or_default();
    let boundary = format!("warden-{id}");
    let message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@warden>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n\
         --{boundary}--\r\n",
        from = app.config.mail.from,
        to = header_safe(&mail.to),
        subject = encoded_word(&mail.subject),
        text = mail.text,
        html = mail.html,
    );
    // Written under a temporary name, then renamed: a relay never reads half
    // a message. Names sort in the order messages were written, two in one
    // millisecond included (the relay sends oldest first).
    static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{}-{seq:08}-{id}.eml", now.as_millisecond());
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, message)?;
    let path = dir.join(name);
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// A header value with no line breaks (no header injection).
fn header_safe(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// A subject as an RFC 2047 encoded word when it is not plain ASCII.
fn encoded_word(subject: &str) -> String {
    let subject = header_safe(subject);
    if subject.is_ascii() {
        subject
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(subject.as_bytes());
        format!("=?utf-8?B?{b64}?=")
    }
}

/// Text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The invitation: who invites, into which organisation, as what, the
/// link and until when it works.
pub fn invitation(
    to: &str,
    brand: &Brand,
    inviter: &str,
    role: &str,
    link: &str,
    expires: &str,
) -> Mail {
    let organisation = &brand.name;
    let subject = format!("You are invited to {organisation} on Warden");
    let text = format!(
        "Hello,\n\n{inviter} invites you to join {organisation} on Warden as {role}.\n\n\
         Accept the invitation (the link works once, until {expires}):\n{link}\n\n\
         If you did not expect this, ignore this e-mail.\n"
    );
    let body = format!(
        "<p>{inviter} invites you to join <strong>{org}</strong> as {role}.</p>{button}\
         <p style=\"color:#666\">The link works once, until {expires}. If you did not expect this, ignore this e-mail.</p>",
        org = escape(organisation),
        inviter = escape(inviter),
        role = escape(role),
        button = button(brand, link, "Accept the invitation"),
        expires = escape(expires),
    );
    let html = html_page(brand, &format!("Join {organisation} on Warden"), &body);
    Mail {
        to: to.to_string(),
        subject,
        text,
        html,
    }
}

/// The reminder: the invitation again, saying so, with its new link.
pub fn reminder(invitation: Mail) -> Mail {
    let note = "A reminder: your invitation is still open. This link replaces the one in the first e-mail.";
    Mail {
        subject: format!("Reminder: {}", invitation.subject),
        text: format!("{note}\n\n{}", invitation.text),
        html: invitation.html.replacen(
            "<body style=\"font-family:sans-serif\">",
            &format!("<body style=\"font-family:sans-serif\"><p><em>{note}</em></p>"),
            1,
        ),
        ..invitation
    }
}

/// The welcome, once the account exists.
pub fn welcome(to: &str, brand: &Brand, user_id: &str, console: &str) -> Mail {
    let organisation = &brand.name;
    let subject = format!("Welcome to {organisation} on Warden");
    let text = format!(
        "Welcome!\n\nYour account '{user_id}' in {organisation} is ready. Your page: {console}\n\
         An admin of {organisation} gives you your API token and tasks.\n"
    );
    let body = format!(
        "<p>Your account <code>{user}</code> is ready.</p>{button}\
         <p>An admin of {org} gives you your API token and tasks.</p>",
        org = escape(organisation),
        user = escape(user_id),
        button = button(brand, console, "Your page"),
    );
    let html = html_page(brand, &format!("Welcome to {organisation}"), &body);
    Mail {
        to: to.to_string(),
        subject,
        text,
        html,
    }
}
