//! The connection loop: accepts on a listener and serves each connection (HTTP/1.1) with
//! time limits, until a shutdown signal, then drains with a deadline.
//!
//! Owns [`serve`] and [`ConnLimits`]. Every connection always has a deadline while it
//! waits on its client:
//!
//! - **request head** ([`ConnLimits::header_timeout`], 10 s): from the connection's start,
//!   or from the first byte of a following request, until the head is complete. Slowloris
//!   (heads sent a byte at a time, or never finished) is closed here.
//! - **keep-alive idle** ([`ConnLimits::idle_timeout`], 60 s): between two requests, with
//!   no byte of the next one.
//! - **stalled transfer** (the same idle timeout): while a request is in flight, no byte
//!   moved for that long while the server waits for the client — its request body, or room
//!   to write the response (a client that stops reading). A handler that computes, or a
//!   response that streams events slowly, is not the client's wait and has no deadline
//!   here.
//!
//! A connection past its deadline is closed (no answer: there is no request to answer).
//! A request answered before its body was read (a `413` decided from `Content-Length`, a
//! `429`) gets `Connection: close`, and a connection the server ends is closed lingering
//! (its side shut, then what the client still sends read and dropped, 5 s at most), so the
//! answer reaches a client that is still uploading instead of a reset.
//! The peer address is put in each request's extensions as axum's
//! `ConnectInfo<SocketAddr>`, for the rate limiter; it is not logged.
//!
//! On shutdown the listener is closed at once (new connections are refused), every
//! connection is told to finish its request in flight and close (hyper's graceful
//! shutdown: idle ones close now), and after [`ConnLimits::shutdown_timeout`] (20 s) the
//! connections still open are dropped, so a slow client cannot hold the process.
//! Pipelined requests whose head was already buffered behind the previous one get the
//! idle timeout rather than the head timeout (hyper reads ahead; the bytes were counted
//! as the previous request's).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// Default time to send a complete request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a kept-alive connection may wait for its next request, and a transfer may
/// stall on the client.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time in-flight requests get to finish after a shutdown signal.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// The time limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Time to send a complete request head (`--header-timeout`).
    pub header_timeout: Duration,
    /// Keep-alive idle time, and longest stall of a transfer on the client
    /// (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Time in-flight requests get after the shutdown signal (`--shutdown-timeout`).
    pub shutdown_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish for [`ConnLimits::shutdown_timeout`] at most,
/// and returns once every connection is closed (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (closing_tx, closing) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, peer, router.clone(), limits, closing.clone()));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of descriptors or memory: wait a moment rather than spin.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        connections = conns.len(),
        "shutting down: stopped accepting; finishing the requests in flight"
    );
    let _ = closing_tx.send(true);
    let deadline = Instant::now() + limits.shutdown_timeout;
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    connections = conns.len(),
                    "shutdown deadline passed: closing the connections still open"
                );
                conns.abort_all();
                while conns.join_next().await.is_some() {}
                break;
            }
        }
    }
    Ok(())
}

/// A `--…-timeout` value: seconds, fractions allowed (`10`, `0.5`), more than zero.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{s:?}: must be more than zero seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection: hyper's HTTP/1.1 state machine raced against its deadline and the
/// shutdown signal.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnLimits,
    mut closing: watch::Receiver<bool>,
) {
    let clock = Arc::new(ConnClock::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        clock: clock.clone(),
    });
    let svc_clock = clock.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let clock = svc_clock.clone();
        clock.request_started();
        let guard = InFlight(clock.clone());
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        let read = Arc::new(AtomicBool::new(body.is_end_stream()));
        let body = Body::new(WatchedBody {
            inner: body,
            clock: clock.clone(),
            read: read.clone(),
        });
        let router = router.clone();
        // Boxed: hyper hands the socket back (for the lingering close) only to a service
        // whose futures are `Unpin`.
        Box::pin(async move {
            let res = match router
                .oneshot(axum::http::Request::from_parts(parts, body))
                .await
            {
                Ok(res) => res,
                Err(never) => match never {},
            };
            let mut res = res.map(|inner| GuardedBody {
                inner,
                _guard: guard,
            });
            // Answered before its body was read (a 413 from Content-Length, a 429): the
            // connection cannot carry another request, so say so, or a client reusing it
            // would see its next request fail.
            if !read.load(Ordering::Acquire) {
                res.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(res)
        })
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None) // ours: starts with the first byte, not the wait
        .serve_connection(io, service);
    let mut conn = conn;
    let mut told_to_close = *closing.borrow();
    if told_to_close {
        Pin::new(&mut conn).graceful_shutdown();
    }
    loop {
        tokio::select! {
            // The connection first: when this task is polled late (a starved runtime), the
            // bytes its client already sent are read (and move the deadline) before the
            // deadline is judged. Unbiased, a request waiting in the socket could lose the
            // draw to an expired timer and the client see its request reset.
            biased;
            r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = clock.expired(limits) => {
                tracing::debug!("connection closed: its client took too long");
                return;
            }
            changed = closing.changed(), if !told_to_close => {
                told_to_close = true;
                if changed.is_ok() {
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    }
    linger(conn.into_parts().io.into_inner().inner).await;
}

/// Longest a closed connection keeps reading what its client still sends.
const LINGER: Duration = Duration::from_secs(5);

/// A lingering close (as nginx does): the server's side is shut (the client sees the end of
/// the response), then what the client still sends is read and dropped until it closes
/// too, [`LINGER`] at most. Closing a socket with unread bytes makes the kernel send a
/// reset, which can destroy the answer the client has not read yet: a `413` to a client
/// still uploading its too-large body would reach it as a broken connection, and the
/// client would retry the same body forever.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// What one connection is waiting for, and since when (milliseconds from its start).
#[derive(Debug)]
struct ConnClock {
    start: Instant,
    /// Last byte read or written.
    last_io: AtomicU64,
    /// First byte of the request head being read, [`NONE`] between requests.
    head_since: AtomicU64,
    /// Requests whose response body is not finished.
    in_flight: AtomicUsize,
    /// A handler waits for request body bytes.
    body_waiting: AtomicBool,
    /// A write could not proceed (the client does not read).
    write_blocked: AtomicBool,
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl ConnClock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            // A new connection owes its first request head at once.
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            body_waiting: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn on_read(&self) {
        self.on_read_at(self.now());
    }

    fn on_read_at(&self, now: u64) {
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        self.on_write_at(self.now());
    }

    fn on_write_at(&self, now: u64) {
        self.last_io.store(now, Ordering::Relaxed);
        self.write_blocked.store(false, Ordering::Relaxed);
    }

    fn on_write_blocked(&self) {
        if !self.write_blocked.swap(true, Ordering::AcqRel) {
            self.changed.notify_one();
        }
    }

    fn set_body_waiting(&self, waiting: bool) {
        if self.body_waiting.swap(waiting, Ordering::AcqRel) != waiting && waiting {
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
    }

    fn request_finished(&self) {
        self.request_finished_at(self.now());
    }

    fn request_finished_at(&self, now: u64) {
        self.last_io.store(now, Ordering::Relaxed);
        self.body_waiting.store(false, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// When the connection is to be closed, `None` while nothing waits on the client.
    fn deadline(&self, limits: ConnLimits) -> Option<Instant> {
        let last_io = self.at(self.last_io.load(Ordering::Relaxed));
        let idle = last_io + limits.idle_timeout;
        let mut deadline = if self.in_flight.load(Ordering::Acquire) == 0 {
            Some(match self.head_since.load(Ordering::Acquire) {
                NONE => idle,
                since => self.at(since) + limits.header_timeout,
            })
        } else if self.body_waiting.load(Ordering::Acquire) {
            Some(idle)
        } else {
            None
        };
        if self.write_blocked.load(Ordering::Acquire) {
            deadline = Some(deadline.map_or(idle, |d| d.min(idle)));
        }
        deadline
    }

    /// Resolves once the deadline has passed.
    async fn expired(&self, limits: ConnLimits) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(limits) {
                Some(d) if d <= Instant::now() => return,
                Some(d) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(d) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// The socket, counting the bytes that move.
struct Watched {
    inner: TcpStream,
    clock: Arc<ConnClock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.account(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.account(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Watched {
    fn account(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => self.clock.on_write(),
            Poll::Pending => self.clock.on_write_blocked(),
            _ => {}
        }
    }
}

/// The request body, telling the clock when its reader waits for the client, and the
/// request when it was read to its end.
struct WatchedBody {
    inner: Incoming,
    clock: Arc<ConnClock>,
    read: Arc<AtomicBool>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        self.clock.set_body_waiting(r.is_pending());
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.clock.set_body_waiting(false);
    }
}

/// Marks the end of a request when its response body is dropped (sent, or abandoned).
struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body carrying its request's [`InFlight`] mark.
struct GuardedBody {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn deadlines_follow_what_the_connection_waits_for() {
        let c = ConnClock::new();
        let t = |secs: u64| c.start + Duration::from_secs(secs);
        let ms = |secs: u64| secs * 1000;
        // A new connection owes its head.
        assert_eq!(c.deadline(limits()), Some(t(10)));
        c.on_read_at(ms(3));
        assert_eq!(c.deadline(limits()), Some(t(10)));
        // The head is complete: a handler computing has no deadline.
        c.request_started();
        assert_eq!(c.deadline(limits()), None);
        c.set_body_waiting(true);
        assert_eq!(c.deadline(limits()), Some(t(63)));
        c.set_body_waiting(false);
        c.on_write_blocked();
        assert_eq!(c.deadline(limits()), Some(t(63)));
        c.on_write_at(ms(8));
        assert_eq!(c.deadline(limits()), None);
        // Response sent: kept alive, idle from the end.
        c.request_finished_at(ms(8));
        assert_eq!(c.deadline(limits()), Some(t(68)));
        // The next request's first byte starts its head clock.
        c.on_read_at(ms(38));
        assert_eq!(c.deadline(limits()), Some(t(48)));
    }

    #[test]
    fn parses_seconds() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "x", "NaN", "inf", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
