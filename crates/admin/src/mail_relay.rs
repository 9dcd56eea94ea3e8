//! The mail relay: with `[mail.smtp]` set, a thread sends the outbox's
//! messages through the SMTP server, oldest first, and moves each one it
//! delivered to `outbox/sent/`. The outbox is the spool: a message written
//! while the server is unreachable, or before a restart, is sent later. A
//! transient failure (a 4xx reply, no connection) is retried, 1 s after the
//! first and doubling up to 5 minutes; a permanent one (a 5xx reply: no
//! such mailbox) moves the message to `outbox/failed/` with the reason
//! beside it, so nothing is retried forever and nothing is lost silently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, SmtpTransport, Transport};

use crate::app::App;
use crate::config::{SmtpConfig, SmtpSecurity};

/// How often the outbox is looked at.
const SWEEP: Duration = Duration::from_secs(1);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Starts the relay when the configuration names an SMTP server. The
/// thread holds the app weakly and ends once the server has stopped.
pub fn spawn(app: &Arc<App>) -> anyhow::Result<()> {
    let Some(smtp) = app.config.mail.smtp.clone() else {
        return Ok(());
    };
    let transport = transport(&smtp)?;
    let from = address_of(&app.config.mail.from)?;
    let outbox = crate::mail::outbox_dir(app);
    let app = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("warden-mail".into())
        .spawn(move || Relay::new(transport, from, outbox).run(&app))?;
    tracing::info!(host = %smtp.host, "mail relay: sending the outbox over SMTP");
    Ok(())
}

fn transport(smtp: &SmtpConfig) -> anyhow::Result<SmtpTransport> {
    let (builder, default_port) = match smtp.security {
        SmtpSecurity::Starttls => (SmtpTransport::starttls_relay(&smtp.host)?, 587),
        SmtpSecurity::Tls => (SmtpTransport::relay(&smtp.host)?, 465),
        SmtpSecurity::None => (SmtpTransport::builder_dangerous(&smtp.host), 25),
    };
    let mut builder = builder
        .port(smtp.port.unwrap_or(default_port))
        .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
    if let Some(user) = &smtp.username {
        let password = match &smtp.password_env {
            Some(var) => std::env::var(var)
                .map_err(|_| anyhow::anyhow!("mail.smtp.password_env: ${var} is not set"))?,
            None => String::new(),
        };
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

/// The address of `Name <addr>` or of a bare `addr`.
fn address_of(mailbox: &str) -> anyhow::Result<Address> {
    let addr = match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(open), Some(close)) if open < close => &mailbox[open + 1..close],
        _ => mailbox,
    };
    addr.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("'{mailbox}' is not an e-mail address: {e}"))
}

/// The message's `To:` header (the outbox writes one recipient each).
fn recipient(message: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(message).ok()?;
    text.split("\r\n")
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("To: "))
}

/// What became of one try.
enum Outcome {
    Sent,
    /// Worth another try later.
    Transient(String),
    /// The server refused it for good.
    Permanent(String),
}

struct Relay {
    transport: SmtpTransport,
    from: Address,
    outbox: PathBuf,
    /// Messages that failed transiently: tries so far and when to try again.
    waiting: HashMap<PathBuf, (u32, Instant)>,
}

impl Relay {
    fn new(transport: SmtpTransport, from: Address, outbox: PathBuf) -> Self {
        Self {
            transport,
            from,
            outbox,
            waiting: HashMap::new(),
        }
    }

    fn run(mut self, app: &Weak<App>) {
        while app.strong_count() > 0 {
            if let Err(e) = self.sweep() {
                tracing::warn!(error = %format!("{e:#}"), "mail relay: reading the outbox");
            }
            std::thread::sleep(SWEEP);
        }
    }

    /// Tries every message that is due, oldest first (names start with
    /// the time they were written).
    fn sweep(&mut self) -> anyhow::Result<()> {
        let mut due: Vec<PathBuf> = match std::fs::read_dir(&self.outbox) {
            Ok(entries) => entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| is_message(p))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        due.sort();
        let now = Instant::now();
        due.retain(|p| self.waiting.get(p).is_none_or(|(_, at)| *at <= now));
        for path in due {
            let outcome = self.send(&path);
            self.settle(&path, outcome)?;
        }
        Ok(())
    }

    fn send(&self, path: &Path) -> Outcome {
        let message = match std::fs::read(path) {
            Ok(m) => m,
            Err(e) => return Outcome::Transient(format!("reading it: {e}")),
        };
        let to = recipient(&message)
            .ok_or_else(|| "it has no To: header".to_string())
            .and_then(|to| address_of(to).map_err(|e| e.to_string()));
        let envelope = to.and_then(|to| {
            Envelope::new(Some(self.from.clone()), vec![to]).map_err(|e| e.to_string())
        });
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(e) => return Outcome::Permanent(e),
        };
        match self.transport.send_raw(&envelope, &message) {
            Ok(_) => Outcome::Sent,
            Err(e) if e.is_permanent() => Outcome::Permanent(e.to_string()),
            Err(e) => Outcome::Transient(e.to_string()),
        }
    }

    fn settle(&mut self, path: &Path, outcome: Outcome) -> anyhow::Result<()> {
        let name = path.file_name().unwrap_or_default();
        match outcome {
            Outcome::Sent => {
                self.waiting.remove(path);
                let sent = self.outbox.join("sent");
                std::fs::create_dir_all(&sent)?;
                std::fs::rename(path, sent.join(name))?;
                tracing::info!(message = ?name, "mail relay: sent");
            }
            Outcome::Transient(error) => {
                let tries = self.waiting.get(path).map_or(0, |(n, _)| *n) + 1;
                let pause = RETRY_FIRST
                    .saturating_mul(1 << tries.min(16).saturating_sub(1))
                    .min(RETRY_MAX);
                self.waiting
                    .insert(path.to_path_buf(), (tries, Instant::now() + pause));
                tracing::warn!(message = ?name, tries, retry_in = ?pause, %error, "mail relay: not sent yet");
            }
            Outcome::Permanent(error) => {
                self.waiting.remove(path);
                let failed = self.outbox.join("failed");
                std::fs::create_dir_all(&failed)?;
                std::fs::rename(path, failed.join(name))?;
                let mut note = failed.join(name).into_os_string();
                note.push(".error");
                std::fs::write(note, format!("{error}\n"))?;
                tracing::error!(message = ?name, %error, "mail relay: refused for good; moved to failed/");
            }
        }
        Ok(())
    }
}

/// A finished message of the outbox (not one being written, not a folder).
fn is_message(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && name.ends_with(".eml") && path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_comes_from_the_headers() {
        assert_eq!(
            address_of("Warden <no-reply@warden.example>").unwrap(),
            "no-reply@warden.example".parse::<Address>().unwrap()
        );
        assert!(address_of("sam@example.com").is_ok());
        assert!(address_of("not an address").is_err());
        let message =
            b"From: a@b.c\r\nTo: sam@example.com\r\nSubject: x\r\n\r\nTo: nobody@else\r\n";
        assert_eq!(recipient(message), Some("sam@example.com"));
        assert_eq!(recipient(b"Subject: x\r\n\r\nTo: body@only\r\n"), None);
    }
}
