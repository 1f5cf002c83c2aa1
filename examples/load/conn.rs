//! Client connections (REST and gRPC) and what every request shares: the
//! target's address and API key, reading answers, and naming error kinds.

use std::time::Duration;

use anyhow::{Context, Result};
use glurpc::proto::glucose_prediction_client::GlucosePredictionClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use crate::cli::Protocol;

/// Longest wait for one request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// gRPC message limit, both ways.
const GRPC_MAX_MESSAGE: usize = 64 << 20;

pub(crate) type Grpc = GlucosePredictionClient<Channel>;

/// One client's connection.
#[derive(Clone)]
pub(crate) enum Conn {
    Rest(reqwest::Client),
    Grpc(Grpc),
}

/// What every request needs besides its connection.
pub(crate) struct Target {
    pub(crate) rest: String,
    pub(crate) rest_key: Option<String>,
    pub(crate) grpc_key: Option<AsciiMetadataValue>,
}

impl Target {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.rest)
    }

    pub(crate) fn grpc_request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(REQUEST_TIMEOUT);
        if let Some(k) = &self.grpc_key {
            req.metadata_mut().insert("x-api-key", k.clone());
        }
        req
    }

    /// POSTs a JSON body; the answer's body when 2xx.
    pub(crate) async fn post_json(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<bytes::Bytes, String> {
        let mut rb = http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(k) = &self.rest_key {
            rb = rb.header("X-API-Key", k);
        }
        read_rest(rb.send().await).await
    }
}

/// The body of a 2xx answer, or the error's kind.
pub(crate) async fn read_rest(
    sent: reqwest::Result<reqwest::Response>,
) -> Result<bytes::Bytes, String> {
    let resp = sent.map_err(|e| reqwest_kind(&e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| reqwest_kind(&e))?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    Ok(body)
}

fn reqwest_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect error".into()
    } else if e.is_body() || e.is_decode() {
        "body error".into()
    } else {
        "transport error".into()
    }
}

pub(crate) fn status_kind(s: &tonic::Status) -> String {
    format!("gRPC {:?}", s.code())
}

/// An `error` reported in an answer's body (kept short: it names the kind).
pub(crate) fn body_error(msg: &str) -> String {
    let short: String = msg.chars().take(80).collect();
    format!("error in body: {short}")
}

/// The clients' connections, made once and reused by every scenario.
pub(crate) struct Conns {
    pub(crate) rest: Vec<Conn>,
    pub(crate) grpc: Vec<Conn>,
}

impl Conns {
    pub(crate) fn of(&self, p: Protocol) -> &[Conn] {
        match p {
            Protocol::Rest => &self.rest,
            Protocol::Grpc => &self.grpc,
        }
    }
}

pub(crate) fn rest_client(n: u32) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(n as usize)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

pub(crate) async fn grpc_client(url: &str) -> Result<Grpc> {
    let channel = Channel::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to gRPC at {url} (is the server running?)"))?;
    Ok(GlucosePredictionClient::new(channel)
        .max_decoding_message_size(GRPC_MAX_MESSAGE)
        .max_encoding_message_size(GRPC_MAX_MESSAGE))
}
