//! The timeouts of one connection that hyper does not keep itself.
//!
//! What bounds a connection's time, and where:
//! - hyper's `header_read_timeout` (`--client-timeout`, set in
//!   [`super::server`]): its timer starts when hyper begins to wait for a
//!   request head (when the connection opens, and again as soon as an answer
//!   has been written and the connection goes idle) and closes the connection
//!   if the whole head has not arrived by then. It is not reset by bytes that
//!   arrive, and does not run while a request is in flight.
//! - the body's time (`--client-timeout` too): `body::read_limited`.
//! - the write timeout ([`TimedIo`], `--write-timeout`): a write to the
//!   client that makes no progress for this long fails, and hyper closes the
//!   connection. hyper has no such timer: a client that pipelines requests
//!   and never reads the answers would hold its connection for ever.
//! - the idle timeout ([`TimedIo`], `--idle-timeout`): a connection with no
//!   request in flight that receives nothing for this long is closed. hyper's
//!   head timer covers the same idle time (it starts when the connection goes
//!   idle), so this one is armed only when it is the shorter of the two;
//!   otherwise the head timer always fires first and this one would only
//!   duplicate it.
//!
//! Nothing here times reads while a request is in flight: a long inference
//! must not cut its own connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::limits::Limits;

/// The timeouts [`TimedIo`] keeps.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// How long a write may make no progress.
    pub write: Duration,
    /// How long a connection with no request in flight may receive nothing;
    /// `None` when hyper's head timer closes idle connections sooner.
    pub idle: Option<Duration>,
}

impl ConnectionTimeouts {
    pub fn new(limits: &Limits) -> Self {
        Self {
            write: limits.write_timeout,
            idle: (limits.idle_timeout < limits.client_timeout).then_some(limits.idle_timeout),
        }
    }
}

/// The requests in flight on one connection: the service enters when a
/// request arrives and leaves when its answer's body has been handed to
/// hyper whole (or the request is dropped).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    fn is_idle(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

/// One request in flight, until dropped.
#[derive(Debug)]
pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper has read
/// it whole and dropped it.
pub struct TrackedBody<B> {
    body: B,
    _in_flight: InFlightGuard,
}

impl<B> TrackedBody<B> {
    pub fn new(body: B, in_flight: InFlightGuard) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A timer armed when something starts waiting and disarmed when it stops.
struct Timer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Timer {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// Arms the timer if it is not armed, and says whether it has expired
    /// (registering `cx` to be woken when it does).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.armed {
            let Some(deadline) = tokio::time::Instant::now().checked_add(self.timeout) else {
                // Too far away to be a deadline: never.
                return Poll::Pending;
            };
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    /// The outcome of an IO poll: progress (or an error) disarms the timer;
    /// waiting past the timeout becomes an error.
    fn after<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
        timed_out: impl FnOnce(Duration) -> io::Error,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.disarm();
                Poll::Ready(result)
            }
            Poll::Pending => match self.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out(self.timeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn write_timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client read nothing of its answer for {timeout:?}"),
    )
}

fn idle_timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the connection was idle for {timeout:?}"),
    )
}

/// A connection's IO with the write and idle timeouts (see the module's
/// documentation).
pub struct TimedIo<T> {
    inner: T,
    in_flight: InFlight,
    write: Timer,
    idle: Option<Timer>,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, timeouts: ConnectionTimeouts, in_flight: InFlight) -> Self {
        Self {
            inner,
            in_flight,
            write: Timer::new(timeouts.write),
            idle: timeouts.idle.map(Timer::new),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(idle) = &mut this.idle else {
            return polled;
        };
        if polled.is_pending() && !this.in_flight.is_idle() {
            // A request is being served: its reads are not idleness.
            idle.disarm();
            return Poll::Pending;
        }
        idle.after(polled, cx, idle_timed_out)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write.after(polled, cx, write_timed_out)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write.after(polled, cx, write_timed_out)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.write.after(polled, cx, write_timed_out)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.write.after(polled, cx, write_timed_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUTS: ConnectionTimeouts = ConnectionTimeouts {
        write: Duration::from_millis(100),
        idle: Some(Duration::from_millis(100)),
    };

    #[tokio::test]
    async fn a_write_the_peer_never_reads_times_out() {
        // A pipe with a small buffer and nobody reading its other end.
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(ours, TIMEOUTS, InFlight::default());
        let started = std::time::Instant::now();
        let error = io.write_all(&[0; 64 << 10]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("read nothing"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(ours, TIMEOUTS, InFlight::default());
        let reader = tokio::spawn(async move {
            let mut buf = [0; 512];
            let mut total = 0;
            while total < 8 << 10 {
                // Slower than a write could wait in all, faster than the timeout.
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += theirs.read(&mut buf).await.unwrap();
            }
        });
        io.write_all(&[0; 8 << 10]).await.unwrap();
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn an_idle_connection_times_out_but_not_while_a_request_is_in_flight() {
        let in_flight = InFlight::default();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(ours, TIMEOUTS, in_flight.clone());
        let mut buf = [0; 16];

        // In flight: a read may wait as long as it takes.
        let request = in_flight.enter();
        let waited = tokio::time::timeout(Duration::from_millis(400), io.read(&mut buf)).await;
        assert!(waited.is_err(), "the read ended: {waited:?}");
        drop(request);

        // Bytes keep it open; then nothing for the idle timeout closes it.
        theirs.write_all(b"GET").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 3);
        let started = std::time::Instant::now();
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("idle"), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn the_idle_timer_is_kept_only_when_it_is_shorter_than_the_head_timer() {
        let limits = Limits {
            client_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        assert_eq!(ConnectionTimeouts::new(&limits).idle, None);
        let limits = Limits {
            idle_timeout: Duration::from_secs(5),
            ..limits
        };
        assert_eq!(
            ConnectionTimeouts::new(&limits).idle,
            Some(Duration::from_secs(5))
        );
    }
}
