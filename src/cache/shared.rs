//! The shared tier: Redis, reached through redis-rs's tokio connection
//! manager (one multiplexed, self-reconnecting connection) on a small
//! runtime of its own, so that the engine's blocking threads and the model
//! thread can call it synchronously. Bytes in, bytes out, under one key
//! prefix: values with a TTL (Redis's own `maxmemory` policy evicts), work
//! queues as Redis Streams read by a consumer group (one stream per
//! priority; entries a dead consumer held are re-claimed after a lease),
//! short leases on keys (`SET NX PX`), and a publish/subscribe channel for
//! control messages. Every operation has a timeout; a failure is counted,
//! timed and returned, never retried here, except writes that
//! [`Shared::set_or_defer`] keeps until Redis answers again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

mod keeper;
mod leases;
mod reply;
mod streams;
use keeper::{Keeper, run_id};
pub use leases::Finished;

/// Writes kept while Redis is away: `(key, value)`, oldest first.
type Deferred = Arc<Mutex<VecDeque<(String, Vec<u8>)>>>;

/// The consumer group every replica reads the work streams in.
const GROUP: &str = "glurpc";
/// Writes kept while Redis is away, at most.
const DEFERRED_MAX: usize = 100_000;
/// Upper bounds of the latency histogram, seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// Errors of the shared tier.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedError {
    /// Redis refused or failed.
    #[error("Redis: {0}")]
    Redis(String),
    /// No answer within the timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// Certificates for a `rediss://` (TLS) Redis, PEM. Without them the
/// system's roots (and Mozilla's, for images without any) verify the server.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// Root certificates that verify the server (a private CA).
    pub ca: Option<Vec<u8>>,
    /// This replica's certificate and private key, for a Redis that
    /// authenticates its clients (`tls-auth-clients yes`).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl RedisTls {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// `redis://host:port/db`, or `rediss://` for TLS.
    pub url: String,
    /// Certificates for `rediss://`.
    pub tls: RedisTls,
    /// Key prefix (the model's fingerprint keeps models apart).
    pub prefix: String,
    /// Time to live of values.
    pub ttl: Duration,
    /// Longest wait for one operation.
    pub timeout: Duration,
}

/// One work item read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Its priority (which stream).
    pub priority: u8,
    /// Its stream entry id.
    pub id: String,
    /// Its payload.
    pub payload: String,
    /// True when it was taken over from a consumer that held it past the lease.
    pub reclaimed: bool,
    /// With [`PullLeases`]: whether its lease was taken, and whether its
    /// check key existed right after (looked for in the same script).
    pub lease: Option<(bool, bool)>,
}

/// The leases a pull takes for its items in the same round trip: for an
/// item with payload `p`, `SET lease_prefix+p holder NX PX ttl`, then
/// `EXISTS check_prefix+p`.
#[derive(Debug, Clone, Copy)]
pub struct PullLeases<'a> {
    /// Prefix of the lease keys (under the shared prefix).
    pub lease_prefix: &'a str,
    /// Prefix of the keys whose presence says the work is done.
    pub check_prefix: &'a str,
    /// Who holds the leases taken.
    pub holder: &'a str,
    /// How long a lease lasts.
    pub ttl: Duration,
}

/// Operation counts and latencies (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedFigures {
    /// Whether the last operation or ping succeeded.
    pub reachable: bool,
    /// Failed operations.
    pub errors: u64,
    /// `(upper bound s, count)`, not cumulative; the last bound infinite.
    pub buckets: Vec<(f64, u64)>,
    /// Seconds, all operations.
    pub sum_s: f64,
    /// Operations.
    pub count: u64,
    /// Writes waiting for Redis to come back.
    pub deferred: usize,
}

#[derive(Default)]
struct Counters {
    errors: AtomicU64,
    count: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

/// The Redis I/O thread: a current-thread runtime driven by a thread of its
/// own, so that it never runs (or is dropped) inside the caller's runtime;
/// it stops when the last [`Shared`] is dropped.
struct Io {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Io {
    fn start() -> Result<Io, SharedError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("glurpc-redis".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| SharedError::Redis(format!("cannot start its thread: {e}")))?;
        let handle = rx
            .recv()
            .map_err(|e| SharedError::Redis(e.to_string()))?
            .map_err(|e| SharedError::Redis(format!("cannot start its runtime: {e}")))?;
        Ok(Io {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `fut` to completion from a thread that is not running async
    /// code (a runtime worker steps out of its runtime first).
    fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        let run = || self.handle.block_on(fut);
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The client for `cfg`'s URL, with its certificates.
fn open(cfg: &SharedConfig) -> Result<redis::Client, SharedError> {
    if !cfg.tls.is_set() {
        let bad = |e: redis::RedisError| SharedError::Redis(format!("bad URL: {e}"));
        return redis::Client::open(cfg.url.as_str()).map_err(bad);
    }
    if !cfg.url.starts_with("rediss://") {
        return Err(SharedError::Redis(
            "TLS certificates were given for a redis:// URL (use rediss://)".into(),
        ));
    }
    let certs = redis::TlsCertificates {
        client_tls: cfg.tls.client.clone().map(|(client_cert, client_key)| {
            redis::ClientTlsConfig {
                client_cert,
                client_key,
            }
        }),
        root_cert: cfg.tls.ca.clone(),
    };
    redis::Client::build_with_tls(cfg.url.as_str(), certs)
        .map_err(|e| SharedError::Redis(format!("bad URL or TLS certificates: {e}")))
}

/// The Redis client: cheap to clone.
#[derive(Clone)]
pub struct Shared {
    conn: ConnectionManager,
    client: redis::Client,
    io: Arc<Io>,
    cfg: Arc<SharedConfig>,
    reachable: Arc<AtomicBool>,
    counters: Arc<Counters>,
    deferred: Deferred,
    /// Work streams whose consumer group is known to exist.
    groups: Groups,
    /// Times Redis was seen to restart (its `run_id` changed).
    restarts: Arc<AtomicU64>,
}

/// Work streams whose consumer group is known to exist.
type Groups = Arc<Mutex<std::collections::HashSet<String>>>;

impl Shared {
    /// Connects (refusing when Redis does not answer a `PING` within the
    /// timeout) and starts the background task that pings once a second
    /// and writes back what was deferred.
    pub fn connect(cfg: SharedConfig) -> Result<Shared, SharedError> {
        let io = Io::start()?;
        let client = open(&cfg)?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let timeout = cfg.timeout;
        let conn = io
            .run(async {
                tokio::time::timeout(timeout, client.get_connection_manager_with_config(manager))
                    .await
            })
            .map_err(|_| SharedError::Timeout(timeout))?
            .map_err(|e| SharedError::Redis(e.to_string()))?;
        let shared = Shared {
            conn,
            client,
            io: Arc::new(io),
            cfg: Arc::new(cfg),
            reachable: Arc::new(AtomicBool::new(true)),
            counters: Arc::default(),
            deferred: Arc::default(),
            groups: Arc::default(),
            restarts: Arc::default(),
        };
        let info: String = shared.call(|mut c| async move {
            redis::cmd("INFO").arg("server").query_async(&mut c).await
        })?;
        // Holds no `Shared` (that would keep the thread alive forever).
        let keeper = Keeper {
            conn: shared.conn.clone(),
            cfg: shared.cfg.clone(),
            reachable: shared.reachable.clone(),
            counters: shared.counters.clone(),
            deferred: shared.deferred.clone(),
            groups: shared.groups.clone(),
            restarts: shared.restarts.clone(),
        };
        let mut run_id = run_id(&info);
        shared.io.handle.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                keeper.keep_up(&mut run_id).await;
            }
        });
        Ok(shared)
    }

    /// The key for `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.cfg.prefix)
    }

    fn stream(&self, priority: u8) -> String {
        self.key(&format!("work:{priority}"))
    }

    /// Time to live of values.
    pub fn ttl(&self) -> Duration {
        self.cfg.ttl
    }

    /// True when the last operation or ping succeeded.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// How many times Redis was seen to restart since [`Shared::connect`]
    /// (its `run_id` changed): what it held may be gone.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The operation figures.
    pub fn figures(&self) -> SharedFigures {
        let c = &self.counters;
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        SharedFigures {
            reachable: self.reachable(),
            errors: c.errors.load(Ordering::Relaxed),
            buckets: bounds
                .zip(&c.buckets)
                .map(|(le, n)| (le, n.load(Ordering::Relaxed)))
                .collect(),
            sum_s: c.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: c.count.load(Ordering::Relaxed),
            deferred: self.deferred.lock().map(|d| d.len()).unwrap_or(0),
        }
    }

    fn observe(&self, took: Duration, ok: bool) {
        observe(&self.counters, &self.reachable, took, ok);
    }

    /// Runs one operation on the connection with the timeout, timed and
    /// counted; callable from any thread that is not running async code.
    fn call<T, F, Fut>(&self, op: F) -> Result<T, SharedError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn.clone();
        let timeout = self.cfg.timeout;
        let started = Instant::now();
        let result = self
            .io
            .run(async move { tokio::time::timeout(timeout, op(conn)).await });
        let result = match result {
            Err(_) => Err(SharedError::Timeout(timeout)),
            Ok(r) => r.map_err(|e| SharedError::Redis(e.to_string())),
        };
        self.observe(started.elapsed(), result.is_ok());
        result
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SharedError> {
        let key = self.key(name);
        self.call(|mut c| async move { c.get(key).await })
    }

    /// The values under `names`, in order.
    pub fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, SharedError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| self.key(n)).collect();
        self.call(|mut c| async move { c.mget(keys).await })
    }

    /// Stores `value` under `name` with the TTL.
    pub fn set(&self, name: &str, value: &[u8]) -> Result<(), SharedError> {
        let key = self.key(name);
        let ttl = self.cfg.ttl.as_secs().max(1);
        let value = value.to_vec();
        self.call(|mut c| async move { c.set_ex(key, value, ttl).await })
    }

    /// [`Shared::set`], or kept and written once Redis answers again.
    pub fn set_or_defer(&self, name: &str, value: &[u8]) {
        if self.set(name, value).is_err()
            && let Ok(mut d) = self.deferred.lock()
        {
            if d.len() >= DEFERRED_MAX {
                d.pop_front();
            }
            d.push_back((self.key(name), value.to_vec()));
        }
    }

    /// [`Shared::set_or_defer`] for many values, in one round trip.
    pub fn set_many_or_defer(&self, values: Vec<(String, Vec<u8>)>) {
        if values.is_empty() {
            return;
        }
        let keyed: Vec<(String, Vec<u8>)> = values
            .into_iter()
            .map(|(name, value)| (self.key(&name), value))
            .collect();
        let ttl = self.cfg.ttl.as_secs().max(1);
        let batch = keyed.clone();
        let wrote = self.call(|mut c| async move {
            let mut pipe = redis::pipe();
            for (key, value) in &batch {
                pipe.set_ex(key, value, ttl).ignore();
            }
            pipe.query_async::<()>(&mut c).await
        });
        if wrote.is_err()
            && let Ok(mut d) = self.deferred.lock()
        {
            for kv in keyed {
                if d.len() >= DEFERRED_MAX {
                    d.pop_front();
                }
                d.push_back(kv);
            }
        }
    }

    /// Deletes `names`.
    pub fn delete(&self, names: &[String]) -> Result<(), SharedError> {
        if names.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = names.iter().map(|n| self.key(n)).collect();
        self.call(|mut c| async move { c.unlink(keys).await })
    }

    /// Deletes every key under the prefix followed by `pattern` (a glob);
    /// returns how many.
    pub fn delete_matching(&self, pattern: &str) -> Result<usize, SharedError> {
        let keys = self.scan(pattern)?;
        let n = keys.len();
        for chunk in keys.chunks(500) {
            let chunk = chunk.to_vec();
            self.call(|mut c| async move { c.unlink::<_, ()>(chunk).await })?;
        }
        Ok(n)
    }

    /// The keys (with the prefix) matching `pattern` under the prefix.
    pub fn scan(&self, pattern: &str) -> Result<Vec<String>, SharedError> {
        let glob = self.key(pattern);
        self.call(|mut c| async move {
            let mut it = c.scan_match::<_, String>(glob).await?;
            let mut out = Vec::new();
            while let Some(k) = it.next().await {
                out.push(k?);
            }
            Ok(out)
        })
    }

    /// Publishes `message` on the control channel.
    pub fn publish(&self, message: &str) -> Result<(), SharedError> {
        let (channel, message) = (self.key("control"), message.to_string());
        self.call(|mut c| async move { c.publish(channel, message).await })
    }

    /// Calls `on_message` with every control message, resubscribing after
    /// an outage, until the process ends.
    pub fn subscribe(&self, on_message: impl Fn(String) + Send + Sync + 'static) {
        let (client, channel) = (self.client.clone(), self.key("control"));
        self.io.handle.spawn(async move {
            loop {
                if let Ok(mut ps) = client.get_async_pubsub().await
                    && ps.subscribe(&channel).await.is_ok()
                {
                    let mut messages = ps.on_message();
                    while let Some(m) = messages.next().await {
                        if let Ok(text) = m.get_payload::<String>() {
                            on_message(text);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

fn observe(counters: &Counters, reachable: &AtomicBool, took: Duration, ok: bool) {
    let c = counters;
    c.count.fetch_add(1, Ordering::Relaxed);
    c.sum_us
        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    let s = took.as_secs_f64();
    let slot = LATENCY_BUCKETS
        .iter()
        .position(|b| s <= *b)
        .unwrap_or(LATENCY_BUCKETS.len());
    c.buckets[slot].fetch_add(1, Ordering::Relaxed);
    if !ok {
        c.errors.fetch_add(1, Ordering::Relaxed);
    }
    reachable.store(ok, Ordering::Relaxed);
}
