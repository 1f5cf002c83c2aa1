//! Noticing REST clients that leave. hyper does not poll an HTTP/1
//! connection for reads while its handler runs, so a client that closes
//! its connection is not seen until the answer is written. The acceptor
//! here keeps a duplicate of each accepted socket; the middleware peeks at
//! it while the handler runs and, at end of stream, drops the handler:
//! the request's waits end and queued work nobody else waits for is
//! cancelled (the reference's DisconnectMiddleware, without its polling of
//! every request every 50 ms).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The open connections: the peer's address to a duplicate of the socket.
#[derive(Default)]
pub struct Connections {
    peers: DashMap<SocketAddr, Arc<TcpStream>>,
}

impl Connections {
    /// Resolves when the connection from `peer` has been closed by the
    /// client; never, for an unknown peer.
    pub async fn closed(&self, peer: Option<SocketAddr>) {
        let sock = peer.and_then(|p| self.peers.get(&p).map(|s| s.value().clone()));
        let Some(sock) = sock else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 1];
        loop {
            match sock.peek(&mut buf).await {
                Ok(0) | Err(_) => return,
                // Bytes not read yet (a body, a pipelined request): look again later.
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when none is open.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// A TCP acceptor that registers each connection in [`Connections`].
pub struct WatchedAcceptor {
    listener: TcpListener,
    local: LocalAddr,
    conns: Arc<Connections>,
}

impl WatchedAcceptor {
    /// Accepts on `listener`.
    pub fn new(listener: TcpListener, conns: Arc<Connections>) -> io::Result<WatchedAcceptor> {
        let local = LocalAddr(listener.local_addr()?.into());
        Ok(WatchedAcceptor {
            listener,
            local,
            conns,
        })
    }
}

fn duplicate(stream: TcpStream) -> io::Result<(TcpStream, TcpStream)> {
    let std = stream.into_std()?;
    let dup = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, TcpStream::from_std(dup)?))
}

impl Acceptor for WatchedAcceptor {
    type Io = WatchedStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> io::Result<(WatchedStream, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, peer) = self.listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (stream, dup) = duplicate(stream)?;
        self.conns.peers.insert(peer, Arc::new(dup));
        let io = WatchedStream {
            inner: stream,
            peer,
            conns: self.conns.clone(),
        };
        Ok((
            io,
            self.local.clone(),
            RemoteAddr(peer.into()),
            Scheme::HTTP,
        ))
    }
}

/// An accepted connection; unregistered (closing the duplicate) when hyper
/// drops it.
pub struct WatchedStream {
    inner: TcpStream,
    peer: SocketAddr,
    conns: Arc<Connections>,
}

impl Drop for WatchedStream {
    fn drop(&mut self) {
        self.conns.peers.remove(&self.peer);
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
