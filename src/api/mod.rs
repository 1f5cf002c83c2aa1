//! The front ends: REST (poem + poem-openapi) and gRPC (tonic) in one
//! process over one engine, started together or alone, with the shared
//! operations ([`ops`]), errors and their status mappings ([`error`]),
//! API keys ([`auth`]), request statistics ([`metrics`]) and the web page
//! ([`web`]). This module
//! owns binding the listeners, the gRPC health and reflection services,
//! and the graceful shutdown: stop accepting, let in-flight requests
//! finish within the grace period, then stop the engine (which persists
//! the cache). `/metrics` may also be served on a port of its own
//! ([`Running::serve_metrics`]), which takes it off the public REST port.

pub mod auth;
pub mod disconnect;
pub mod error;
pub mod grpc;
pub mod grpc_layers;
pub mod metrics;
pub mod ops;
pub mod rest;
pub mod rest_layers;
pub mod rest_types;
pub mod web;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use poem::listener::Acceptor;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::proto::glucose_prediction_server::GlucosePredictionServer;

pub use ops::Service;

/// The gRPC service name (health checks, reflection).
pub const GRPC_SERVICE: &str = "glurpc.GlucosePrediction";
/// The `grpc.health.v1` name that follows the shared store (Redis).
pub const SHARED_STORE_SERVICE: &str = "glurpc.SharedStore";

/// Listener and protocol settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind (e.g. `0.0.0.0`, `::`, `127.0.0.1`).
    pub host: IpAddr,
    /// REST port (0 picks a free one); `None` disables REST.
    pub rest_port: Option<u16>,
    /// gRPC port (0 picks a free one); `None` disables gRPC.
    pub grpc_port: Option<u16>,
    /// Largest HTTP request body.
    pub max_body_bytes: usize,
    /// Largest gRPC message, both directions.
    pub grpc_max_message_bytes: usize,
    /// The SingularityNET service id also reported by the health service.
    pub snet_service_id: String,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// REST connection limits: header and idle timeouts, the connection cap.
    pub limits: disconnect::Limits,
    /// Longest time a REST request body may take to arrive.
    pub body_timeout: Duration,
    /// Origins allowed to call the REST API from a browser page of theirs
    /// (CORS); `*` allows any; empty (the default) sends no CORS headers.
    pub cors_origins: Vec<String>,
}

/// Why the servers could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The reflection service could not be built.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// A server failed while running.
    #[error("{0} server failed: {1}")]
    Server(&'static str, String),
    /// A setting this build cannot serve (a cargo feature left out).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// The running servers.
pub struct Running {
    /// Where REST listens.
    pub rest_addr: Option<SocketAddr>,
    /// Where gRPC listens.
    pub grpc_addr: Option<SocketAddr>,
    /// Where `/metrics` has a port of its own, if it has one.
    pub metrics_addr: Option<SocketAddr>,
    svc: Service,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    health: Option<HealthReporter>,
    /// The SingularityNET service id reported by `grpc.health.v1`.
    snet_service_id: String,
    grace: Duration,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Binds the listeners and starts serving; returns once both accept.
pub async fn start(svc: Service, cfg: &ServerConfig) -> Result<Running, ServeError> {
    let (stop, rx) = watch::channel(false);
    let mut running = Running {
        rest_addr: None,
        grpc_addr: None,
        metrics_addr: None,
        svc: svc.clone(),
        stop,
        tasks: Vec::new(),
        health: None,
        snet_service_id: cfg.snet_service_id.clone(),
        grace: cfg.shutdown_grace,
    };
    if let Some(port) = cfg.grpc_port {
        let addr = SocketAddr::new(cfg.host, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        running.grpc_addr = listener.local_addr().ok();
        let (reporter, health_service) = tonic_health::server::health_reporter();
        for name in ["", GRPC_SERVICE, cfg.snet_service_id.as_str()] {
            reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        // With replicas, `glurpc.SharedStore` follows Redis: NOT_SERVING while
        // it does not answer (this replica still serves what it can alone).
        if running.svc.engine().shared_reachable().is_some() {
            let (reporter, engine) = (reporter.clone(), running.svc.engine().clone());
            tokio::spawn(async move {
                loop {
                    let status = match engine.shared_reachable() {
                        Some(true) => ServingStatus::Serving,
                        _ => ServingStatus::NotServing,
                    };
                    reporter
                        .set_service_status(SHARED_STORE_SERVICE, status)
                        .await;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            });
        }
        // Reflection in both versions: v1, and v1alpha for grpcio-reflection's Python
        // client and the many tools that still ask for it.
        let reflection_builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection = reflection_builder()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection_alpha = reflection_builder()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let api = GlucosePredictionServer::new(grpc::GrpcApi::new(svc.clone()))
            .max_decoding_message_size(cfg.grpc_max_message_bytes)
            .max_encoding_message_size(cfg.grpc_max_message_bytes);
        let server = tonic::transport::Server::builder()
            .layer(grpc_layers::GrpcFrontlineLayer::new(svc.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(api);
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let signal = stopped(rx.clone());
        running.tasks.push((
            "gRPC",
            tokio::spawn(async move {
                server
                    .serve_with_incoming_shutdown(incoming, signal)
                    .await
                    .map_err(|e| e.to_string())
            }),
        ));
        running.health = Some(reporter);
    }
    if let Some(port) = cfg.rest_port {
        let addr = SocketAddr::new(cfg.host, port);
        let conns = std::sync::Arc::new(disconnect::Connections::default());
        let acceptor = tokio::net::TcpListener::bind(addr)
            .await
            .and_then(|l| disconnect::WatchedAcceptor::new(l, conns.clone(), cfg.limits))
            .map_err(|source| ServeError::Bind { addr, source })?;
        running.rest_addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied());
        let app = rest::app(
            svc.clone(),
            cfg.max_body_bytes,
            conns,
            cfg.cors_origins.clone(),
            cfg.body_timeout,
        );
        let signal = stopped(rx.clone());
        let grace = cfg.shutdown_grace;
        running.tasks.push((
            "REST",
            tokio::spawn(async move {
                poem::Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(app, signal, Some(grace))
                    .await
                    .map_err(|e| e.to_string())
            }),
        ));
    }
    Ok(running)
}

impl Running {
    /// The shared state.
    pub fn service(&self) -> &Service {
        &self.svc
    }

    /// Serves `GET /metrics` (and nothing else) on `addr`, a port operators
    /// keep off the public network, and takes it off the public REST port
    /// (404 there from now on). Scrapes here are not counted as requests.
    /// Stops with the other servers. Returns the bound address.
    pub async fn serve_metrics(&mut self, addr: SocketAddr) -> Result<SocketAddr, ServeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)
            .map_err(|source| ServeError::Bind { addr, source })?;
        let svc = self.svc.clone();
        let scrape = poem::endpoint::make(move |_req: poem::Request| {
            let svc = svc.clone();
            async move {
                poem::Response::builder()
                    .content_type(metrics::CONTENT_TYPE)
                    .header(http::header::CACHE_CONTROL, "no-store")
                    .body(svc.metrics_text())
            }
        });
        let app = poem::Route::new().at("/metrics", poem::get(scrape));
        let signal = stopped(self.stop.subscribe());
        let grace = self.grace;
        self.tasks.push((
            "metrics",
            tokio::spawn(async move {
                poem::Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(app, signal, Some(grace))
                    .await
                    .map_err(|e| e.to_string())
            }),
        ));
        self.svc.metrics.set_public(false);
        self.metrics_addr = Some(bound);
        Ok(bound)
    }

    /// Serves until `signal` resolves or a server fails, then shuts down.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServeError> {
        let serving = !self.tasks.is_empty();
        let failed = async {
            // Only returns if a server task ends on its own.
            let (name, task) = futures_util::future::select_all(
                self.tasks
                    .iter_mut()
                    .map(|(n, t)| Box::pin(async move { (*n, t.await) })),
            )
            .await
            .0;
            (name, task)
        };
        let outcome = tokio::select! {
            _ = signal => None,
            (name, res) = failed, if serving => Some((name, res)),
        };
        let result = match outcome {
            Some((name, Ok(Err(e)))) => Err(ServeError::Server(name, e)),
            Some((name, Err(e))) => Err(ServeError::Server(name, e.to_string())),
            _ => Ok(()),
        };
        self.shutdown().await;
        result
    }

    /// Graceful shutdown: report NOT_SERVING, stop accepting, let in-flight
    /// requests finish (at most the grace period), then stop the engine and
    /// persist its cache.
    pub async fn shutdown(self) {
        tracing::info!(grace_s = self.grace.as_secs_f64(), "shutting down");
        if let Some(h) = &self.health {
            // The daemon's heartbeat asks for the service id: it sees the drain too.
            for name in ["", GRPC_SERVICE, self.snet_service_id.as_str()] {
                h.set_service_status(name, ServingStatus::NotServing).await;
            }
        }
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.grace;
        for (name, task) in self.tasks {
            if task.is_finished() {
                continue;
            }
            let abort = task.abort_handle();
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::warn!(server = name, error = %e, "server stopped with an error")
                }
                Ok(Err(e)) if e.is_cancelled() => {}
                Ok(Err(e)) => tracing::warn!(server = name, error = %e, "server task failed"),
                Err(_) => {
                    tracing::warn!(
                        server = name,
                        "grace period over: closing the remaining connections"
                    );
                    abort.abort();
                }
            }
        }
        let engine = self.svc.engine.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || engine.shutdown()).await {
            tracing::error!(error = %e, "engine shutdown failed");
        }
        tracing::info!("stopped");
    }
}
