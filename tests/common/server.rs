//! A real server (REST and gRPC on free ports) over an engine, for the
//! front-end tests, with an HTTP and a tonic client.

use std::time::Duration;

use glurpc::api::auth::ApiKeys;
use glurpc::api::{self, Running, ServerConfig, Service};
use glurpc::engine::{Engine, EngineConfig};
use glurpc::model::Gluformer;
use glurpc::proto::glucose_prediction_client::GlucosePredictionClient;
use tonic::transport::Channel;

/// What to start.
pub struct Setup {
    pub model: Gluformer,
    pub engine: EngineConfig,
    pub keys: ApiKeys,
    pub max_body_bytes: usize,
    pub grpc_max_message_bytes: usize,
    pub timeout: Duration,
    pub cors_origins: Vec<String>,
    pub limits: glurpc::api::disconnect::Limits,
    pub body_timeout: Duration,
}

impl Setup {
    /// The small fixture model, 10 MC samples, keys off, 64 MiB limits.
    pub fn small() -> Setup {
        Setup {
            model: super::small_model(),
            engine: EngineConfig::default(),
            keys: ApiKeys::disabled(),
            max_body_bytes: 96 << 20,
            grpc_max_message_bytes: 96 << 20,
            timeout: Duration::from_secs(60),
            cors_origins: Vec::new(),
            limits: Default::default(),
            body_timeout: Duration::from_secs(120),
        }
    }
}

/// A running server.
pub struct TestServer {
    pub running: Running,
    /// `http://127.0.0.1:PORT`.
    pub rest: String,
    /// `http://127.0.0.1:PORT` of gRPC.
    pub grpc_url: String,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(s: Setup) -> TestServer {
        let engine = Engine::start(s.model, s.engine).unwrap();
        let svc = Service::new(engine, s.keys, s.timeout);
        let cfg = ServerConfig {
            host: "127.0.0.1".parse().unwrap(),
            rest_port: Some(0),
            grpc_port: Some(0),
            max_body_bytes: s.max_body_bytes,
            grpc_max_message_bytes: s.grpc_max_message_bytes,
            snet_service_id: "glucose_forecast".into(),
            shutdown_grace: Duration::from_secs(10),
            limits: s.limits,
            body_timeout: s.body_timeout,
            cors_origins: s.cors_origins,
        };
        let running = api::start(svc, &cfg).await.unwrap();
        TestServer {
            rest: format!("http://{}", running.rest_addr.unwrap()),
            grpc_url: format!("http://{}", running.grpc_addr.unwrap()),
            running,
            http: reqwest::Client::new(),
        }
    }

    pub fn svc(&self) -> &Service {
        self.running.service()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.rest)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn grpc(&self) -> GlucosePredictionClient<Channel> {
        GlucosePredictionClient::new(self.channel().await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(96 << 20)
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// Base64 of a file.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
