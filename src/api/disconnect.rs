//! REST connections: how many may be open, how long one may sit idle or
//! dribble its request head, and noticing clients that leave.
//!
//! * **Timeouts.** hyper (as poem drives it) has no header-read timeout and
//!   keeps idle keep-alive connections forever, so [`WatchedStream`] keeps
//!   them: while no request is in flight on a connection, it is closed when
//!   no byte arrives for the idle timeout, or when the bytes of a request
//!   head have been arriving for the header timeout without a request being
//!   dispatched (slowloris). The middleware marks dispatch and completion
//!   ([`Connections::dispatched`]); bodies have their own timeout there.
//! * **A cap.** Beyond the connection cap, a new connection is answered
//!   `503` with `Retry-After` and closed at once, so that idle sockets
//!   cannot exhaust the process's descriptors.
//! * **Clients that leave.** hyper does not poll an HTTP/1 connection for
//!   reads while its handler runs, so a client that closes its connection is
//!   not seen until the answer is written. The middleware peeks at the
//!   socket while the handler runs ([`Connections::closed`]): a reset means
//!   the client is gone, and the handler is dropped (its waits end and queued
//!   work nobody else waits for is cancelled). End of stream alone does not
//!   tell "no more bytes coming" (a legal half-close, after which the client
//!   still reads its answer) from "gone": TCP only tells them apart when data
//!   is sent, so one probe is sent, a single TCP urgent byte, which a
//!   receiving TCP keeps out of the byte stream (it never reaches an HTTP
//!   parser) and which a closed socket answers with a reset (seen here as
//!   the socket's pending error). Hand-written: no crate offers this watch.
//!
//! One descriptor per connection: the watch and hyper share the socket.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time from the first byte of a request head to its dispatch.
    pub header_timeout: Duration,
    /// Longest time a connection with no request in flight stays open
    /// without receiving a byte.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// What the middleware and the stream share about one connection.
#[derive(Default)]
struct State {
    /// Requests dispatched and not yet answered.
    in_flight: AtomicUsize,
    /// Requests dispatched so far (a head completed when this moves).
    dispatched: AtomicU64,
    /// The connection's reader, woken when the last request in flight ends
    /// so that it arms the idle timer.
    reader: AtomicWaker,
}

struct Entry {
    sock: Arc<TcpStream>,
    state: Arc<State>,
}

/// The open connections, by the peer's address.
#[derive(Default)]
pub struct Connections {
    peers: DashMap<SocketAddr, Entry>,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

/// How long to wait for a reset after probing a connection at end of stream.
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl Connections {
    /// Resolves when the client at `peer` is gone (the connection was reset,
    /// or closed and a probe was refused); never while it is only
    /// half-closed, and never for an unknown peer.
    pub async fn closed(&self, peer: Option<SocketAddr>) {
        let sock = peer.and_then(|p| self.peers.get(&p).map(|e| e.sock.clone()));
        let Some(sock) = sock else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 1];
        loop {
            match sock.peek(&mut buf).await {
                Err(_) => return,
                Ok(0) => break,
                // Bytes not read yet (a body, a pipelined request): look again later.
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        // End of stream: half-closed or gone. A closed socket resets on data.
        if socket2::SockRef::from(&*sock)
            .send_out_of_band(&[0])
            .is_err()
        {
            return;
        }
        // The reset shows as the socket's pending error (reads only report
        // end of stream once a FIN has come).
        let deadline = Instant::now() + PROBE_WAIT;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if !matches!(sock.take_error(), Ok(None)) {
                return;
            }
        }
        tracing::debug!("client half-closed its connection: answering");
        std::future::pending().await
    }

    /// Marks a request from `peer` dispatched; the returned guard marks it
    /// answered when dropped. Unknown peers get a guard that does nothing.
    pub fn dispatched(&self, peer: Option<SocketAddr>) -> InFlight {
        let state = peer.and_then(|p| self.peers.get(&p).map(|e| e.state.clone()));
        if let Some(s) = &state {
            s.in_flight.fetch_add(1, Ordering::AcqRel);
            s.dispatched.fetch_add(1, Ordering::AcqRel);
        }
        InFlight(state)
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when none is open.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections closed by the idle or header timeout so far.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// A request in flight on a connection (see [`Connections::dispatched`]).
pub struct InFlight(Option<Arc<State>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(s) = &self.0
            && s.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
        {
            s.reader.wake();
        }
    }
}

/// A TCP acceptor that registers each connection in [`Connections`] and
/// enforces [`Limits`].
pub struct WatchedAcceptor {
    listener: TcpListener,
    local: LocalAddr,
    conns: Arc<Connections>,
    limits: Limits,
}

impl WatchedAcceptor {
    /// Accepts on `listener`.
    pub fn new(
        listener: TcpListener,
        conns: Arc<Connections>,
        limits: Limits,
    ) -> io::Result<WatchedAcceptor> {
        let local = LocalAddr(listener.local_addr()?.into());
        Ok(WatchedAcceptor {
            listener,
            local,
            conns,
            limits,
        })
    }
}

/// The answer to a connection over the cap.
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 55\r\n\r\n{\"detail\":\"Too many connections. Please retry later.\"}\n";

impl Acceptor for WatchedAcceptor {
    type Io = WatchedStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> io::Result<(WatchedStream, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            if self.conns.len() >= self.limits.max_connections {
                self.conns.refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut stream = stream;
                    let write = tokio::io::AsyncWriteExt::write_all(&mut stream, OVER_CAP);
                    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
                });
                continue;
            }
            let _ = stream.set_nodelay(true);
            let sock = Arc::new(stream);
            let state = Arc::new(State::default());
            self.conns.peers.insert(
                peer,
                Entry {
                    sock: sock.clone(),
                    state: state.clone(),
                },
            );
            let io = WatchedStream {
                sock,
                peer,
                conns: self.conns.clone(),
                state,
                limits: self.limits,
                seen: 0,
                head_started: None,
                last_read: Instant::now(),
                timer: Box::pin(tokio::time::sleep(self.limits.idle_timeout)),
            };
            return Ok((
                io,
                self.local.clone(),
                RemoteAddr(peer.into()),
                Scheme::HTTP,
            ));
        }
    }
}

/// An accepted connection; unregistered when hyper drops it.
pub struct WatchedStream {
    sock: Arc<TcpStream>,
    peer: SocketAddr,
    conns: Arc<Connections>,
    state: Arc<State>,
    limits: Limits,
    /// `state.dispatched` when the current head started.
    seen: u64,
    /// When the first byte of a request head not yet dispatched arrived.
    head_started: Option<Instant>,
    last_read: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Drop for WatchedStream {
    fn drop(&mut self) {
        self.conns.peers.remove(&self.peer);
    }
}

impl WatchedStream {
    /// The deadline that applies now, if any: none while a request is in
    /// flight; else the head's, or the idle one.
    fn deadline(&mut self) -> Option<Instant> {
        if self.state.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let dispatched = self.state.dispatched.load(Ordering::Acquire);
        if dispatched != self.seen {
            // The head that was arriving has been dispatched and answered.
            self.seen = dispatched;
            self.head_started = None;
            self.last_read = Instant::now();
        }
        Some(match self.head_started {
            Some(t) => t + self.limits.header_timeout,
            None => self.last_read + self.limits.idle_timeout,
        })
    }

    fn read_now(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<bool> {
        let filled = buf.filled().len();
        let unfilled = buf.initialize_unfilled();
        match self.sock.try_read(unfilled) {
            Ok(n) => {
                buf.advance(n);
                debug_assert_eq!(buf.filled().len(), filled + n);
                if n > 0 {
                    let now = Instant::now();
                    self.last_read = now;
                    if self.head_started.is_none()
                        && self.state.in_flight.load(Ordering::Acquire) == 0
                    {
                        self.seen = self.state.dispatched.load(Ordering::Acquire);
                        self.head_started = Some(now);
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.sock.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {
                    if self.read_now(buf)? {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.state.reader.register(cx.waker());
                    let Some(deadline) = self.deadline() else {
                        return Poll::Pending;
                    };
                    if self.timer.deadline() != deadline {
                        self.timer.as_mut().reset(deadline);
                    }
                    ready!(self.timer.as_mut().poll(cx));
                    if self.deadline().is_some_and(|d| d <= Instant::now()) {
                        self.conns.timed_out.fetch_add(1, Ordering::Relaxed);
                        let what = if self.head_started.is_some() {
                            "request head not complete within the header timeout"
                        } else {
                            "connection idle past the idle timeout"
                        };
                        tracing::debug!(what, "closing a REST connection");
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                    }
                }
            }
        }
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.sock.poll_write_ready(cx))?;
            match self.sock.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = socket2::SockRef::from(&*self.sock).shutdown(Shutdown::Write);
        Poll::Ready(match r {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.sock.poll_write_ready(cx))?;
            match self.sock.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}
