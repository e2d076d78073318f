//! The hub's connections: accepting them, bounding them and ending the ones
//! that only hold resources.
//!
//! What it promises, so that no client can take the hub down:
//! - At most `max_connections` connections are open (kept below the
//!   open-files limit). When they are all taken, the oldest connection that
//!   has not yet sent a request head makes room for the new one: idle and
//!   slow ("slowloris") connections are the ones a flood consists of, while
//!   a host's stream or a request in progress is never evicted.
//! - A connection that takes longer than `header_timeout` to send a
//!   request's head is closed; that clock also runs between the requests of
//!   a kept-alive connection, so an idle connection closes after it too.
//! - A connection whose client has not taken any of what the hub writes for
//!   `stall_timeout` is closed: a stream that is never read cannot hold the
//!   hub's memory (the daemon reconnects and resumes by `Last-Event-ID`).

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long the hub waits for open connections to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// The connection limits (from the settings).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub stall_timeout: Duration,
}

/// Accepts and serves connections until `stop` is cancelled, then lets the
/// open ones finish their current request (at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Waiting::default());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors or a connection reset before accept:
                // pause so a full table does not spin this loop.
                tracing::warn!(error = %e, "accept error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = make_room(&slots, &waiting, &stop).await else {
            break;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            tls: tls.clone(),
            router: router.clone(),
            limits: limits.clone(),
            waiting: waiting.clone(),
            stop: stop.clone(),
        };
        // Evictable from now on, before its task even starts.
        let evict = CancellationToken::new();
        let id = waiting.add(evict.clone());
        tokio::spawn(async move {
            conn.run(tcp, id, evict).await;
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
}

/// A free connection slot, closing the oldest connection that has not sent
/// a request yet when there is none; `None` when the hub stops meanwhile.
async fn make_room(
    slots: &Arc<Semaphore>,
    waiting: &Waiting,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if !waiting.evict_oldest() {
            tracing::debug!("connection limit reached and every connection is busy");
        }
        // An evicted connection frees its slot at once; with none to evict,
        // look again soon for one that has become idle.
        tokio::select! {
            p = slots.clone().acquire_owned() => return p.ok(),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = stop.cancelled() => return None,
        }
    }
}

struct Conn {
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnLimits,
    waiting: Arc<Waiting>,
    stop: CancellationToken,
}

impl Conn {
    async fn run(self, tcp: TcpStream, id: u64, evict: CancellationToken) {
        let Some(tls) = self.tls.clone() else {
            return self.http(tcp, id, evict).await;
        };
        // The handshake counts as sending the request head: same timeout,
        // and evictable meanwhile.
        let handshake = tokio::time::timeout(self.limits.header_timeout, tls.accept(tcp));
        let tls_stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return self.waiting.remove(id);
                }
                Err(_) => return self.waiting.remove(id),
            },
            () = evict.cancelled() => return self.waiting.remove(id),
        };
        self.http(tls_stream, id, evict).await
    }

    async fn http<I>(self, io: I, id: u64, evict: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Stalled::new(io, self.limits.stall_timeout));
        let inner = TowerToHyperService::new(self.router);
        let waiting = self.waiting.clone();
        // The first request head proves the connection is more than a flood.
        let svc = service_fn(move |req: hyper::Request<Incoming>| {
            waiting.remove(id);
            inner.call(req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    break;
                }
                () = evict.cancelled() => {
                    tracing::debug!("closed an idle connection to make room");
                    break;
                }
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        self.waiting.remove(id);
    }
}

/// The connections that have not sent a request head yet, oldest first.
#[derive(Default)]
struct Waiting {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Waiting {
    fn add(&self, evict: CancellationToken) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, evict);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the oldest waiting connection; false when there is none.
    fn evict_oldest(&self) -> bool {
        match self.lock().pop_first() {
            Some((_, evict)) => {
                evict.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        // The map stays consistent even if a holder panicked mid-way.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A socket that fails its writes once the peer has taken nothing for
/// `limit`: hyper then drops the connection and everything it buffered.
struct Stalled<T> {
    inner: T,
    limit: Duration,
    since: Option<Pin<Box<Sleep>>>,
}

impl<T> Stalled<T> {
    fn new(inner: T, limit: Duration) -> Self {
        Stalled {
            inner,
            limit,
            since: None,
        }
    }

    /// Called when a write could not proceed: starts or checks the clock.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let limit = self.limit;
        let sleep = self
            .since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has not read for too long",
            ));
        }
        Ok(())
    }

    /// A write that went through restarts the clock; one that could not
    /// proceed starts or checks it.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            ready => {
                self.since = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalled<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalled<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
