//! The server with every route: the proxy's (`/v1/...`, health, metrics),
//! the admin API (`/admin/v1/...`) and the web console (`/ui/...`).

use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::app::App;
use crate::config::Config;
use crate::error::ApiError;
use crate::http::Body;
pub use warden_proxy::server::{Routes, RunningServer};

/// Every route Warden serves.
#[derive(Clone, Copy)]
pub struct AllRoutes;

impl Routes for AllRoutes {
    fn route(
        self,
        app: Arc<App>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send {
        route(app, req)
    }
}

async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with("/admin/v1/") {
        let answer = crate::admin_api::route(&app, req).await;
        return answer.unwrap_or_else(ApiError::into_response);
    }
    if path.starts_with("/invitations/public/") {
        return warden_admin::public::route(&app, req).await;
    }
    if path.starts_with("/billing/v1/") {
        return warden_admin::billing::route(&app, req).await;
    }
    if crate::ui::is_console_path(path) {
        return crate::ui::route(&app, req).await;
    }
    warden_proxy::api::route(app, req).await
}

/// Binds `config.listen` and serves every route until stopped.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let server = warden_proxy::server::start(config, AllRoutes).await?;
    spawn_reminders(&server.app)?;
    warden_admin::mail_relay::spawn(&server.app)?;
    Ok(server)
}

/// How often pending invitations are checked for their 3-day reminder.
const REMINDER_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends invitations' reminders and announces trials ending, once a
/// minute; the thread holds the app weakly and ends when the server has
/// stopped.
fn spawn_reminders(app: &Arc<App>) -> anyhow::Result<()> {
    let app = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("warden-reminders".into())
        .spawn(move || loop {
            for _ in 0..REMINDER_SWEEP.as_secs() {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if app.strong_count() == 0 {
                    return;
                }
            }
            let Some(app) = app.upgrade() else { return };
            if let Err(e) = crate::admin_api::invitations::remind_due(&app) {
                tracing::error!(error = %format!("{e:#}"), "invitation reminders");
            }
            if let Err(e) = crate::admin_api::subscription::announce_trials_ending(&app) {
                tracing::error!(error = %format!("{e:#}"), "trial endings");
            }
        })?;
    Ok(())
}
