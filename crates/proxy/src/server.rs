//! The listener: HTTP/1.1 and HTTP/2 (hyper-util's auto builder), TLS with
//! rustls when a certificate is configured, graceful shutdown.
//!
//! Thread per core: each worker thread runs its own single-threaded tokio
//! runtime with its own `SO_REUSEPORT` listener and its own upstream
//! connection pool, so a request never hops threads between the client's
//! socket, the plugin calls and the provider's socket. On this 2-core box a
//! work-stealing runtime spent more on cross-thread wake-ups than on the
//! proxying itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::config::{Config, TlsConfig};
use crate::http::Body;

fn tls_acceptor(tls: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("reading certificate {}", tls.cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("reading private key {}", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A server started in this process (the CLI and the tests use it).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: tokio::sync::watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Hot reload of plugins and policies (none when the chain is off).
    reload: Option<crate::reload::Watcher>,
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish, writes the last
    /// records and closes the database (once nobody else holds the app).
    pub async fn stop(self) {
        drop(self.reload);
        let _ = self.shutdown.send(true);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        let _ = self.app.db.flush();
        let writer = self.app.take_writer_task();
        drop(self.app);
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
    }
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// What the server routes a request to: the binary composes the proxy's
/// routes (`api::route`) with the admin API and the console (a generic, not
/// a boxed future: no allocation per request).
pub trait Routes: Clone + Send + Sync + 'static {
    fn route(
        self,
        app: Arc<App>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Binds `config.listen` on every worker thread and serves `routes` until
/// stopped.
pub async fn start<R: Routes>(config: Config, routes: R) -> anyhow::Result<RunningServer> {
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let mut addr = config.listen;
    let app = App::build(config)?;
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        // The first worker binds (perhaps port 0); the others join its port.
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (app, tls, mut stopped) = (app.clone(), tls.clone(), stopped.clone());
        let routes = routes.clone();
        let grace = std::time::Duration::from_secs(app.config.shutdown_grace_secs);
        let handle = std::thread::Builder::new()
            .name(format!("warden-worker-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(bound_tx.send(Err(e))),
                };
                runtime.block_on(async move {
                    let listener = match reuseport_listener(addr) {
                        Ok(l) => l,
                        Err(e) => return drop(bound_tx.send(Err(e))),
                    };
                    let _ = bound_tx.send(listener.local_addr());
                    serve(listener, tls, app, routes, grace, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
                });
            })?;
        handles.push(handle);
        addr = bound_rx
            .recv()
            .context("a worker thread died while binding")?
            .with_context(|| format!("binding {addr}"))?;
    }
    tracing::info!(%addr, workers, tls = app.config.tls.is_some(), "warden listening");
    let reload = crate::reload::spawn(&app)?;
    Ok(RunningServer {
        addr,
        app,
        shutdown,
        workers: handles,
        reload,
    })
}

async fn serve<R: Routes>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    routes: R,
    grace: std::time::Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, routes) = (app.clone(), routes.clone());
        let service = service_fn(move |req| {
            let routed = routes.clone().route(app.clone(), req);
            async move { Ok::<_, std::convert::Infallible>(catching_panics(routed).await) }
        });
        match &tls {
            None => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    // Requests in flight finish within the grace; past it they are cut
    // (their ledgers log them on the way out).
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        let grace_secs = grace.as_secs();
        tracing::warn!(
            grace_secs,
            "requests still in flight after the shutdown grace: cut"
        );
    }
}

/// A route's response; a panic in a handler becomes a 500 in the OpenAI
/// error shape instead of a dropped connection (the call's ledger, if it
/// had one, logs it on the way out).
async fn catching_panics(routed: impl Future<Output = Response<Body>>) -> Response<Body> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(routed).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("a request handler panicked");
            crate::error::ApiError::internal("internal error; the request was not completed")
                .into_response()
        }
    }
}
