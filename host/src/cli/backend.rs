//! Where the CLI's admin verbs go: the admin API of a running server, or the
//! same API's handlers run in-process on the state directory of a stopped
//! one. Either way one code path (`admin_api::dispatch`) decides, checks and
//! audits every change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;
use warden::admin_api::{self, AdminCall, Caller};
use warden::app::App;
use warden::config::Config;

/// One admin API call, as a verb describes it.
pub struct Call {
    pub method: Method,
    /// After `/admin/v1/`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// A body sent as it is (an uploaded component) instead of JSON.
    pub raw: Option<Vec<u8>>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            raw: None,
        }
    }

    /// A `PUT` of raw bytes.
    pub fn put_bytes(path: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            method: Method::PUT,
            path: path.into(),
            query: Vec::new(),
            body: None,
            raw: Some(bytes),
        }
    }

    pub fn send(method: Method, path: impl Into<String>, body: Value) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
            raw: None,
        }
    }

    /// Adds `key=value` to the query when the value is set.
    pub fn param(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((key, value.to_string()));
        }
        self
    }
}

pub enum Backend {
    /// The handlers in-process, on a stopped server's state directory.
    Local(Arc<App>),
    /// A running server's admin API.
    Remote {
        base: String,
        token: String,
        http: reqwest::Client,
    },
}

impl Backend {
    pub fn local(state_dir: &Path) -> anyhow::Result<Self> {
        let config = Config {
            state_dir: state_dir.to_path_buf(),
            chain_enabled: false,
            ..Config::default()
        };
        let app = App::build(config).with_context(|| {
            "cannot open the state directory; if a server is using it, go through its \
             admin API instead: --server URL --token ADMIN_TOKEN"
        })?;
        Ok(Self::Local(app))
    }

    pub fn remote(server: &str, token: String) -> anyhow::Result<Self> {
        Ok(Self::Remote {
            base: server.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
        })
    }

    /// Runs a call; an error status becomes an error carrying the API's message.
    pub async fn call(&self, call: Call) -> anyhow::Result<Value> {
        let (status, bytes) = match self {
            Self::Local(app) => {
                let admin_call = AdminCall {
                    method: call.method,
                    path: call.path,
                    query: call
                        .query
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<HashMap<_, _>>(),
                    body: match call.raw {
                        Some(raw) => raw.into(),
                        None => call
                            .body
                            .map(|b| serde_json::to_vec(&b))
                            .transpose()?
                            .unwrap_or_default()
                            .into(),
                    },
                };
                let response = admin_api::execute(app, &Caller::local_operator(), admin_call)
                    .await
                    .unwrap_or_else(|e| e.into_response());
                let status = response.status().as_u16();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .to_bytes();
                (status, bytes.to_vec())
            }
            Self::Remote { base, token, http } => {
                let url = format!("{base}/admin/v1/{}", call.path);
                let mut request = http
                    .request(call.method, &url)
                    .bearer_auth(token)
                    .query(&call.query);
                if let Some(raw) = call.raw {
                    request = request.header("content-type", "application/wasm").body(raw);
                } else if let Some(body) = &call.body {
                    request = request
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(body)?);
                }
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("calling {url}"))?;
                let status = response.status().as_u16();
                (status, response.bytes().await?.to_vec())
            }
        };
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let message = value["error"]["message"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            let code = value["error"]["code"].as_str().unwrap_or("error");
            anyhow::bail!("{status} {code}: {message}")
        }
    }

    /// Lets the state writer finish its last write (local mode).
    pub async fn close(self) {
        if let Self::Local(app) = self {
            let writer = app.take_writer_task();
            drop(app);
            if let Some(writer) = writer {
                let _ = writer.await;
            }
        }
    }
}
