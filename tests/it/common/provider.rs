//! A misbehaving provider for the tests: a raw TCP server that answers each
//! call with what the test scripts (any status, headers and body, sent in
//! pieces with pauses, which may outlast the gateway's timeouts), and keeps
//! the bodies it received. Every answer closes its connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer.
#[derive(Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Sent in order, each after its pause.
    pub pieces: Vec<(Duration, String)>,
    /// After the pieces, reset the connection (RST) instead of closing it.
    pub reset: bool,
}

impl Answer {
    pub fn new(status: u16, content_type: &str, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.into())],
            pieces: vec![(Duration::ZERO, body.to_string())],
            reset: false,
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Self::new(status, "application/json", body)
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Ends the answer with a connection reset after its pieces.
    pub fn then_reset(mut self) -> Self {
        self.reset = true;
        self
    }

    /// Another piece of the body, sent after `pause`.
    pub fn then(mut self, pause: Duration, piece: &str) -> Self {
        self.pieces.push((pause, piece.to_string()));
        self
    }
}

type Script = dyn Fn(&str) -> Answer + Send + Sync;

pub struct FakeProvider {
    pub addr: SocketAddr,
    /// The bodies of the calls received, in order.
    pub received: Arc<Mutex<Vec<String>>>,
    /// Their heads (request line and headers, lowercased), in order.
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl FakeProvider {
    /// Answers every call with `script(body of the call)`.
    pub async fn start(script: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log = Log {
            bodies: received.clone(),
            heads: heads.clone(),
        };
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(answer(socket, script.clone(), log.clone()));
            }
        });
        Self {
            addr,
            received,
            heads,
        }
    }

    /// The base URL to configure as the upstream.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// Where a fake provider keeps what it received.
#[derive(Clone)]
struct Log {
    bodies: Arc<Mutex<Vec<String>>>,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn answer(mut socket: TcpStream, script: Arc<Script>, log: Log) {
    let Some((head, body)) = read_request(&mut socket).await else {
        return;
    };
    log.heads.lock().unwrap().push(head);
    log.bodies.lock().unwrap().push(body.clone());
    let answer = script(&body);
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nconnection: close\r\n",
        answer.status
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for (pause, piece) in answer.pieces {
        tokio::time::sleep(pause).await;
        if socket.write_all(piece.as_bytes()).await.is_err() {
            return;
        }
    }
    if answer.reset {
        let _ = socket.set_zero_linger();
        return; // dropped with linger 0: an RST
    }
    let _ = socket.shutdown().await;
}

/// The head (lowercased) and body of one HTTP/1.1 request
/// (`content-length` framed).
async fn read_request(socket: &mut TcpStream) -> Option<(String, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    Some((head, body))
}
