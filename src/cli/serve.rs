//! `glurpc serve`: the service. Loads the model, starts the engine, warms
//! it up, binds REST and gRPC (or one of them), reports ready, and on
//! SIGTERM/SIGINT shuts down gracefully. Every flag is also an environment
//! variable, with the reference's names where it had one.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::api::auth::ApiKeys;
use crate::api::{self, ServerConfig, Service};
use crate::cache::shared::RedisTls;
use crate::engine::Engine;
use crate::engine::config::SharedSettings;
use crate::pipeline::WindowConfig;

use super::ModelArgs;

/// The reference's boolean variables: true for `true`, `1` or `yes` (any
/// case), false for anything else.
fn py_bool(s: &str) -> Result<bool, String> {
    Ok(matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes"
    ))
}

/// `glurpc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model and sampling.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to bind.
    #[arg(long, env = "GLURPC_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// REST port.
    #[arg(long, env = "GLURPC_REST_PORT", default_value_t = 8000)]
    pub rest_port: u16,
    /// gRPC port.
    #[arg(long, env = "GLURPC_GRPC_PORT", default_value_t = 7003)]
    pub grpc_port: u16,
    /// Serve REST only.
    #[arg(long, env = "GLURPC_REST_ONLY", conflicts_with = "grpc_only", value_parser = py_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub rest_only: bool,
    /// Serve gRPC only.
    #[arg(long, env = "GLURPC_GRPC_ONLY", value_parser = py_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub grpc_only: bool,
    /// Require an API key (`X-API-Key` / `x-api-key`) on protected endpoints.
    #[arg(long, env = "ENABLE_API_KEYS", value_parser = py_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub enable_api_keys: bool,
    /// The key file: one key per line, `#` comments; reloaded when it changes.
    #[arg(long, env = "GLURPC_API_KEYS_FILE", default_value = "api_keys_list")]
    pub api_keys_file: PathBuf,
    /// Admin key file (same format): when given, `flush`, `save`, `load` and
    /// deleting an upload the caller did not create need one of its keys.
    /// Off by default (any key may manage the cache, as in the reference).
    #[arg(long, env = "GLURPC_ADMIN_KEYS_FILE")]
    pub admin_keys_file: Option<PathBuf>,
    /// Directory of the persisted cache.
    #[arg(long, env = "GLURPC_CACHE_DIR", default_value = "cache_storage")]
    pub cache_dir: PathBuf,
    /// Keep forecasts on disk across restarts.
    #[arg(long, env = "ENABLE_CACHE_PERSISTENCE", value_parser = py_bool, num_args = 0..=1, default_value = "true", default_missing_value = "true")]
    pub enable_cache_persistence: bool,
    /// Memory for the in-memory caches, MiB (uploads 1/4, forecasts 1/4, plots 1/2).
    #[arg(long, env = "MAX_CACHE_SIZE", default_value_t = 256)]
    pub max_cache_size: usize,
    /// Disk for the persisted cache, MiB.
    #[arg(long, env = "GLURPC_DISK_CACHE_MB", default_value_t = 1024)]
    pub disk_cache_mb: u64,
    /// Window jobs queued before background work is refused (503).
    #[arg(long, env = "MAX_INFERENCE_QUEUE_SIZE", default_value_t = 4096)]
    pub max_inference_queue_size: usize,
    /// Model threads sharing the weights on the device (`--device`); on CUDA
    /// each thread launches on its own (per-thread default) stream.
    #[arg(long, env = "NUM_COPIES_PER_DEVICE", default_value_t = 1)]
    pub num_copies_per_device: usize,
    /// Shortest usable sequence, minutes (at least 540); the quick_plot window.
    #[arg(long, env = "MINIMUM_DURATION_MINUTES", default_value_t = 540)]
    pub minimum_duration_minutes: i64,
    /// Longest span kept for /process_unified, minutes.
    #[arg(long, env = "MAXIMUM_WANTED_DURATION", default_value_t = 1080)]
    pub maximum_wanted_duration: i64,
    /// Largest upload in bytes (after decompression).
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = crate::formats::decode::DEFAULT_MAX_BYTES)]
    pub max_upload_bytes: usize,
    /// Largest gRPC message in bytes (default: room for a base64 upload at the upload limit).
    #[arg(long, env = "GLURPC_GRPC_MAX_MESSAGE_BYTES")]
    pub grpc_max_message_bytes: Option<usize>,
    /// Longest wait for a forecast on CPU, seconds (then 504 / DEADLINE_EXCEEDED).
    #[arg(long, env = "INFERENCE_TIMEOUT_CPU", default_value_t = 600.0)]
    pub inference_timeout_cpu: f64,
    /// Longest wait for a forecast on CUDA, seconds.
    #[arg(long, env = "INFERENCE_TIMEOUT_GPU", default_value_t = 600.0)]
    pub inference_timeout_gpu: f64,
    /// SingularityNET service id, also reported as SERVING by grpc.health.v1.
    #[arg(
        long,
        env = "GLURPC_SNET_SERVICE_ID",
        default_value = "glucose_forecast"
    )]
    pub snet_service_id: String,
    /// Seconds in-flight requests may run after SIGTERM/SIGINT.
    #[arg(long, env = "GLURPC_SHUTDOWN_GRACE_S", default_value_t = 30.0)]
    pub shutdown_grace_s: f64,
    /// MiB of memory the uploads being parsed at once may cost (each is
    /// charged about 9 times its decoded size); beyond it uploads get 503.
    #[arg(long, env = "GLURPC_PARSE_MEMORY_MB", default_value_t = 1024)]
    pub parse_memory_mb: usize,
    /// MiB: the largest unified CSV `/convert_to_unified` answers with (413
    /// beyond).
    #[arg(long, env = "GLURPC_MAX_RESPONSE_MB", default_value_t = 96)]
    pub max_response_mb: usize,
    /// REST: seconds from the first byte of a request head to its end before
    /// the connection is closed (slow clients).
    #[arg(long, env = "GLURPC_HEADER_TIMEOUT_S", default_value_t = 30.0)]
    pub header_timeout_s: f64,
    /// REST: seconds a connection with no request in flight may stay silent.
    #[arg(long, env = "GLURPC_IDLE_TIMEOUT_S", default_value_t = 60.0)]
    pub idle_timeout_s: f64,
    /// REST: seconds a request body may take to arrive (408 after).
    #[arg(long, env = "GLURPC_BODY_TIMEOUT_S", default_value_t = 120.0)]
    pub body_timeout_s: f64,
    /// REST: most connections open at once; more are answered 503 and closed.
    #[arg(long, env = "GLURPC_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Browser origins allowed to call the REST API (CORS), comma-separated
    /// (`https://app.example.org`), or `*` for any; off when empty.
    #[arg(
        long,
        env = "GLURPC_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,
    /// Serve `/metrics` on this port instead of the public REST port (same
    /// `--host`); 0 picks a free one. Unset: `/metrics` is on the REST port.
    #[arg(long, env = "GLURPC_METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// Export traces to this OpenTelemetry collector over OTLP/HTTP
    /// (`http://collector:4318`; `/v1/traces` is added to a bare host). Needs
    /// a build with the `otlp` feature. Off when unset.
    #[arg(long, env = "GLURPC_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share uploads, forecasts and work with other replicas through this
    /// Redis (`redis://host:6379/0`, `rediss://` for TLS); the service
    /// refuses to start when it does not answer. Unset: this process alone.
    #[arg(long, env = "GLURPC_REDIS_URL")]
    pub redis_url: Option<String>,
    /// PEM root certificates that verify a `rediss://` Redis (a private CA);
    /// unset: the system's roots and Mozilla's.
    #[arg(long, env = "GLURPC_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// PEM certificate of this replica, for a Redis that authenticates its
    /// TLS clients (with `--redis-key-file`).
    #[arg(long, env = "GLURPC_REDIS_CERT_FILE", requires = "redis_key_file")]
    pub redis_cert_file: Option<PathBuf>,
    /// PEM private key of `--redis-cert-file`.
    #[arg(long, env = "GLURPC_REDIS_KEY_FILE", requires = "redis_cert_file")]
    pub redis_key_file: Option<PathBuf>,
    /// Seconds shared uploads and forecasts live in Redis (its `maxmemory`
    /// policy may evict them sooner).
    #[arg(long, env = "GLURPC_REDIS_TTL_S", default_value_t = 86_400)]
    pub redis_ttl_s: u64,
    /// Longest wait for one Redis operation, milliseconds.
    #[arg(long, env = "GLURPC_REDIS_TIMEOUT_MS", default_value_t = 2_000)]
    pub redis_timeout_ms: u64,
    /// Seconds a replica holds a window before another may take it over
    /// (a replica that died mid-upload loses its windows to the others).
    #[arg(long, env = "GLURPC_REDIS_LEASE_S", default_value_t = 30.0)]
    pub redis_lease_s: f64,
    /// The `service.name` the exported traces carry.
    #[arg(long, env = "GLURPC_OTLP_SERVICE_NAME", default_value = "glurpc")]
    pub otlp_service_name: String,
}

/// True when `GLURPC_LOG_JSON` asks for JSON log lines (the reference's
/// booleans: `true`, `1` or `yes`).
fn json_logs() -> bool {
    std::env::var("GLURPC_LOG_JSON").is_ok_and(|v| py_bool(&v).unwrap_or(false))
}

/// The CORS origins given, without empty entries.
fn cors_origins(args: &ServeArgs) -> impl Iterator<Item = &String> {
    args.cors_origins.iter().filter(|o| !o.trim().is_empty())
}

fn seconds(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("{name} must be a non-negative number of seconds"))
}

/// The certificates of `--redis-ca-file`, `--redis-cert-file` and
/// `--redis-key-file`, read.
fn redis_tls(args: &ServeArgs) -> Result<RedisTls> {
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let client = match (&args.redis_cert_file, &args.redis_key_file) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    Ok(RedisTls {
        ca: args.redis_ca_file.as_ref().map(read).transpose()?,
        client,
    })
}

/// Runs `glurpc serve` until a signal.
pub fn run(args: ServeArgs) -> Result<()> {
    // With the feature, `main` starts the export before logging is set up.
    let otlp_asked = args
        .otlp_endpoint
        .as_deref()
        .is_some_and(|e| !e.trim().is_empty());
    if !cfg!(feature = "otlp") && otlp_asked {
        return Err(anyhow::Error::new(api::ServeError::Unsupported(
            "--otlp-endpoint needs a glurpc built with the `otlp` feature \
             (cargo build --release --features otlp)",
        )));
    }
    if args.minimum_duration_minutes < 540 {
        bail!("MINIMUM_DURATION_MINUTES must be at least 540");
    }
    if args.maximum_wanted_duration < args.minimum_duration_minutes {
        bail!("MAXIMUM_WANTED_DURATION must be at least MINIMUM_DURATION_MINUTES");
    }
    if let Some(bad) = cors_origins(&args).find(|o| !crate::api::rest::valid_origin(o.trim())) {
        bail!("GLURPC_CORS_ORIGINS: {bad:?} is not an origin (scheme://host[:port], no path) or *");
    }
    let keys = if args.enable_api_keys {
        ApiKeys::from_file(&args.api_keys_file)?
    } else {
        ApiKeys::disabled()
    };
    let keys = match &args.admin_keys_file {
        Some(path) => keys.with_admin_file(path)?,
        None => keys,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(args, keys))
}

async fn serve(args: ServeArgs, keys: ApiKeys) -> Result<()> {
    let started = Instant::now();
    let (model, mut cfg) = args.model.load().await?;
    let cuda = model.device().is_cuda();
    let device = crate::model::describe_device(model.device());
    let memory = args.max_cache_size << 20;
    cfg.upload_cache_bytes = memory / 4;
    cfg.forecast_cache_bytes = memory / 4;
    cfg.plot_cache_bytes = memory / 2;
    cfg.cache_dir = args
        .enable_cache_persistence
        .then(|| args.cache_dir.clone());
    cfg.disk_cache_bytes = args.disk_cache_mb << 20;
    cfg.queue_capacity = args.max_inference_queue_size;
    cfg.workers = args.num_copies_per_device.max(1);
    cfg.full = WindowConfig {
        min_minutes: args.minimum_duration_minutes,
        max_minutes: args.maximum_wanted_duration,
    };
    cfg.quick = WindowConfig {
        min_minutes: args.minimum_duration_minutes,
        max_minutes: args.minimum_duration_minutes,
    };
    cfg.max_upload_bytes = args.max_upload_bytes;
    cfg.parse_memory_bytes = args.parse_memory_mb.saturating_mul(1 << 20);
    cfg.max_response_bytes = args.max_response_mb.saturating_mul(1 << 20);
    cfg.shared = match args.redis_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(url) => Some(SharedSettings {
            url: url.to_string(),
            tls: redis_tls(&args)?,
            ttl: Duration::from_secs(args.redis_ttl_s.max(1)),
            timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
            lease: seconds("GLURPC_REDIS_LEASE_S", args.redis_lease_s)?,
        }),
    };
    // Off the runtime: it may connect to Redis.
    let engine = tokio::task::spawn_blocking(move || Engine::start(model, cfg)).await??;
    let warm = {
        let e = engine.clone();
        tokio::task::spawn_blocking(move || e.warm_up()).await??
    };
    let timeout = if cuda {
        args.inference_timeout_gpu
    } else {
        args.inference_timeout_cpu
    };
    let svc = Service::new(engine, keys.clone(), seconds("INFERENCE_TIMEOUT", timeout)?);
    keys.watch(Duration::from_secs(2));
    // Base64 grows an upload by a third; leave room for the JSON around it.
    let body_limit = args.max_upload_bytes / 3 * 4 + (1 << 20);
    let cfg = ServerConfig {
        host: args.host,
        rest_port: (!args.grpc_only).then_some(args.rest_port),
        grpc_port: (!args.rest_only).then_some(args.grpc_port),
        max_body_bytes: body_limit,
        grpc_max_message_bytes: args.grpc_max_message_bytes.unwrap_or(body_limit),
        snet_service_id: args.snet_service_id.clone(),
        shutdown_grace: seconds("GLURPC_SHUTDOWN_GRACE_S", args.shutdown_grace_s)?,
        limits: crate::api::disconnect::Limits {
            header_timeout: seconds("GLURPC_HEADER_TIMEOUT_S", args.header_timeout_s)?,
            idle_timeout: seconds("GLURPC_IDLE_TIMEOUT_S", args.idle_timeout_s)?,
            max_connections: args.max_connections.max(1),
        },
        body_timeout: seconds("GLURPC_BODY_TIMEOUT_S", args.body_timeout_s)?,
        cors_origins: cors_origins(&args).map(|o| o.trim().to_string()).collect(),
    };
    let started_servers = async {
        let mut running = api::start(svc.clone(), &cfg).await?;
        if let Some(port) = args.metrics_port {
            running
                .serve_metrics(std::net::SocketAddr::new(args.host, port))
                .await?;
        }
        Ok::<_, api::ServeError>(running)
    };
    let running = match started_servers.await {
        Ok(r) => r,
        Err(e) => {
            let engine = svc.engine.clone();
            tokio::task::spawn_blocking(move || engine.shutdown()).await?;
            return Err(e.into());
        }
    };
    // The handlers go in before the service says it is ready: a SIGTERM
    // right after the ready line must shut down gracefully, not kill.
    let stop = shutdown_signal();
    let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    let startup_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        rest = %show(running.rest_addr),
        grpc = %show(running.grpc_addr),
        metrics = %running.metrics_addr.map_or("rest".to_string(), |a| a.to_string()),
        warm_up_ms = warm.as_secs_f64() * 1e3,
        startup_ms,
        device = %device,
        copies_per_device = args.num_copies_per_device.max(1),
        api_keys = keys.enabled(),
        "ready"
    );
    // A stable line for scripts and supervisors; with JSON logs the event
    // above is that line (every line on stderr is then JSON).
    if json_logs() {
        if !tracing::enabled!(tracing::Level::INFO) {
            // GLURPC_LOG hides the event: the ready line is still due.
            let line = serde_json::json!({
                "level": "INFO",
                "message": "ready",
                "rest": show(running.rest_addr),
                "grpc": show(running.grpc_addr),
                "startup_ms": startup_ms,
            });
            eprintln!("{line}");
        }
    } else {
        let metrics = running
            .metrics_addr
            .map_or(String::new(), |a| format!(" metrics={a}"));
        eprintln!(
            "glurpc ready: rest={} grpc={}{metrics} in {startup_ms:.0} ms",
            show(running.rest_addr),
            show(running.grpc_addr),
        );
    }
    running.run_until(stop).await?;
    Ok(())
}

/// SIGTERM or SIGINT: the handlers are installed when this is called (on
/// Unix), the returned future completes at the first signal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                // No handler could be installed: Ctrl-C through tokio's
                // portable path, SIGTERM left to its default action.
                (term, int) => {
                    let e = term.err().or(int.err()).map(|e| e.to_string());
                    tracing::warn!(error = ?e, "signal handlers not installed: SIGTERM stops without draining");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
