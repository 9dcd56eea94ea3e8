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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
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
    /// The tenants' webhook sender.
    webhooks: std::thread::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish, writes the last
    /// records and closes the database (once nobody else holds the app).
    pub async fn stop(self) {
        self.app.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        drop(self.reload);
        let workers = self.workers;
        let webhooks = self.webhooks;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
            let _ = webhooks.join();
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
        let (app, tls, stopped) = (app.clone(), tls.clone(), stopped.clone());
        let routes = routes.clone();
        let grace = Duration::from_secs(app.config.shutdown_grace_secs);
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
                    serve(listener, tls, app, routes, grace, stopped).await;
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
    let webhooks = crate::webhooks::spawn(&app, stopped)?;
    Ok(RunningServer {
        addr,
        app,
        shutdown,
        workers: handles,
        reload,
        webhooks,
    })
}

/// What every connection of one worker is served with.
#[derive(Clone)]
struct ConnectionServer<R> {
    app: Arc<App>,
    routes: R,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    /// Time a client has to send a request's head: its first bytes, its
    /// TLS handshake and its headers; on HTTP/1.1 also the longest a
    /// keep-alive connection may sit idle between requests.
    header_read: Duration,
    /// Becomes true when the drain begins.
    stopped: Stopped,
}

type Stopped = tokio::sync::watch::Receiver<bool>;

/// Resolves once the drain has begun.
async fn drain_began(mut stopped: Stopped) {
    let _ = stopped.wait_for(|stopped| *stopped).await;
}

async fn serve<R: Routes>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    routes: R,
    grace: Duration,
    stopped: Stopped,
) {
    let shutdown = drain_began(stopped.clone());
    let graceful = GracefulShutdown::new();
    let header_read = Duration::from_secs(app.config.header_read_timeout_secs.max(1));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let server = ConnectionServer {
        app,
        routes,
        tls,
        builder,
        header_read,
        stopped,
    };
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    backoff.reset();
                    stream
                }
                Err(e) => {
                    // Out of file descriptors, say: the listener stays
                    // readable, so retrying at once would spin.
                    tokio::select! {
                        _ = backoff.wait(&e) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(server.clone().connection(stream, graceful.watcher()));
    }
    // New connections are refused from here on; requests in flight finish
    // within the grace, past it they are cut (their ledgers log them on the
    // way out).
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        server.app.grace_expired.store(true, Ordering::Relaxed);
        let grace_secs = grace.as_secs();
        tracing::warn!(
            grace_secs,
            "requests still in flight after the shutdown grace: cut"
        );
    }
}

impl<R: Routes> ConnectionServer<R> {
    async fn connection(self, stream: TcpStream, watcher: Watcher) {
        // hyper times out a request's headers, but not a connection that
        // never sends a byte (or half of HTTP/2's preface), nor a stalled
        // TLS handshake: those would be held until shutdown, and hold it up.
        // A drain drops them too (their watcher would hold it up).
        let first_bytes = first_bytes_within(&stream, self.header_read);
        let arrived = tokio::select! {
            arrived = first_bytes => arrived,
            () = drain_began(self.stopped.clone()) => false,
        };
        if !arrived {
            return;
        }
        // Whether a request's head has arrived on this connection: hyper's
        // graceful shutdown waits for a first request still being read.
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let (app, routes, started) = (self.app.clone(), self.routes.clone(), started.clone());
            service_fn(move |req| {
                started.store(true, Ordering::Relaxed);
                let routed = routes.clone().route(app.clone(), req);
                async move { Ok::<_, std::convert::Infallible>(catching_panics(routed).await) }
            })
        };
        // A drain cuts a connection whose first request has not arrived
        // whole; later ones are idle between requests and hyper closes them.
        let stopped = self.stopped.clone();
        let cut = async move {
            drain_began(stopped).await;
            if started.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let ended = match &self.tls {
            None => {
                let conn = self
                    .builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service);
                until_cut(watcher.watch(conn.into_owned()), cut).await
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.header_read, acceptor.accept(stream));
                let handshake = tokio::select! {
                    done = handshake => done,
                    () = drain_began(self.stopped.clone()) => return,
                };
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                };
                // ALPN chose the protocol: no waiting for a preface.
                let builder = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => self.builder.clone().http2_only(),
                    _ => self.builder.clone().http1_only(),
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                until_cut(watcher.watch(conn.into_owned()), cut).await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// The connection's end, or `Ok` when `cut` comes first (dropping it).
async fn until_cut<E>(
    served: impl Future<Output = Result<(), E>>,
    cut: impl Future<Output = ()>,
) -> Result<(), E> {
    tokio::select! {
        ended = served => ended,
        () = cut => Ok(()),
    }
}

/// Whether the client sent enough to tell its protocol within `within`:
/// any byte that is not HTTP/2's preface, or the whole preface.
async fn first_bytes_within(stream: &TcpStream, within: Duration) -> bool {
    const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let wait = async {
        let mut buf = [0u8; 24];
        loop {
            let n = stream.peek(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return false; // closed
            }
            if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
                return true;
            }
            // Part of the preface: peek returns at once, so pause.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(within, wait).await.unwrap_or(false)
}

/// Exponential pause after accept errors (5 ms to 1 s); their log line is
/// throttled like every line a client can trigger.
#[derive(Default)]
struct AcceptBackoff {
    pause: Duration,
}

impl AcceptBackoff {
    fn reset(&mut self) {
        self.pause = Duration::ZERO;
    }

    async fn wait(&mut self, error: &std::io::Error) {
        crate::metrics::ACCEPT_ERRORS.fetch_add(1, Ordering::Relaxed);
        self.pause = (self.pause * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        let pause_ms = self.pause.as_millis() as u64;
        crate::throttled!(warn, %error, pause_ms, "accept failed");
        tokio::time::sleep(self.pause).await;
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
            crate::throttled!(error, "a request handler panicked");
            crate::error::ApiError::internal("internal error; the request was not completed")
                .into_response()
        }
    }
}
