//! A connection whose writes must make progress: a write (or flush) that stays blocked
//! longer than the limit fails with `TimedOut`, and so does one blocked at the end of a
//! window of that length in which the client read less than [`MIN_READ_RATE`] bytes a
//! second on average. A client that sends requests but never reads the answers, or reads
//! them a trickle at a time, cannot hold its connection slot for ever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes a second a client must read, averaged over a window of the limit's length, while
/// writes to it are blocked (1 KiB/s: a response of a few KiB stalls no honest client).
pub(crate) const MIN_READ_RATE: u64 = 1024;

/// `inner` with a bound on how long a write may wait for the peer to read, and on how
/// slowly the peer may read while writes wait.
pub(crate) struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Bytes the peer must read per window: [`MIN_READ_RATE`] times the limit.
    min_bytes: u64,
    /// Open since a write blocked: its end, and the bytes written since it opened.
    window: Option<Window>,
}

struct Window {
    ends: Pin<Box<Sleep>>,
    written: u64,
}

impl<S> WriteStall<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        let secs = limit.as_secs().max(1);
        WriteStall {
            inner,
            limit,
            min_bytes: MIN_READ_RATE.saturating_mul(secs),
            window: None,
        }
    }

    /// Counts a finished write (one after its window ended closes it); a blocked one opens
    /// a window, and fails once its window
    /// ends with the write still blocked and too little read in it (a window with enough
    /// read gives way to the next).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
        bytes: impl Fn(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        let now = Instant::now();
        match r {
            Poll::Ready(v) => {
                if let Some(w) = self.window.as_mut() {
                    if now >= w.ends.deadline() {
                        // Through after the window ended: it was not blocked at its end.
                        self.window = None;
                    } else if let Ok(t) = &v {
                        w.written = w.written.saturating_add(bytes(t) as u64);
                    }
                }
                Poll::Ready(v)
            }
            Poll::Pending => {
                loop {
                    let limit = self.limit;
                    let w = self.window.get_or_insert_with(|| Window {
                        ends: Box::pin(tokio::time::sleep(limit)),
                        written: 0,
                    });
                    match w.ends.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(()) if w.written >= self.min_bytes => {
                            // Read enough in this window: the next one starts now.
                            self.window = None;
                        }
                        Poll::Ready(()) => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the client read too little of the response in time",
                            )));
                        }
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r, |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r, |()| 0)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, r, |()| 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer reading `chunk` bytes every `every` (at most `reads` times).
    fn reader(
        mut theirs: tokio::io::DuplexStream,
        chunk: usize,
        every: Duration,
        reads: usize,
    ) -> tokio::task::JoinHandle<tokio::io::DuplexStream> {
        tokio::spawn(async move {
            let mut buf = vec![0u8; chunk];
            for _ in 0..reads {
                tokio::time::sleep(every).await;
                if theirs.read_exact(&mut buf).await.is_err() {
                    break;
                }
            }
            theirs
        })
    }

    // Real time (tokio's test-util is not enabled here), with margins of four and more
    // between the rates the peers read at and MIN_READ_RATE.
    const LIMIT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = WriteStall::new(ours, LIMIT);
        // Fits in the pipe: no wait.
        io.write_all(&[1; 64]).await.unwrap();
        let e = io.write_all(&[2; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_client_reading_fast_enough_is_blocked_longer_than_the_limit_in_all() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let mut io = WriteStall::new(ours, LIMIT);
        // 1 KiB every 250 ms (4 KiB/s): blocked for 3 s in all, never too slow.
        let peer = reader(theirs, 1024, Duration::from_millis(250), 12);
        io.write_all(&[3; 12 * 1024]).await.unwrap();
        let _theirs = peer.await.unwrap();
    }

    #[tokio::test]
    async fn a_trickle_reader_is_cut_off_though_each_read_is_progress() {
        let (ours, theirs) = tokio::io::duplex(64);
        let mut io = WriteStall::new(ours, LIMIT);
        // 64 bytes every 250 ms (256 B/s): progress well within the limit every time, but
        // a quarter of MIN_READ_RATE; the write of 40 chunks (10 s) fails in a window.
        let peer = reader(theirs, 64, Duration::from_millis(250), 40);
        let e = io.write_all(&[4; 64 * 41]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(io);
        let _ = peer.await;
    }

    #[tokio::test]
    async fn an_idle_connection_starts_a_fresh_window() {
        let (ours, theirs) = tokio::io::duplex(64);
        let mut io = WriteStall::new(ours, LIMIT);
        // A small blocked write, read soon; idle longer than the limit; another small
        // blocked write read soon: the first window's few bytes are not held against it.
        let peer = reader(theirs, 64, Duration::from_millis(50), 2);
        io.write_all(&[5; 128]).await.unwrap();
        let mut theirs = peer.await.unwrap();
        tokio::time::sleep(LIMIT * 2).await;
        io.write_all(&[6; 64]).await.unwrap();
        let peer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut buf = [0u8; 128];
            theirs.read_exact(&mut buf).await.unwrap();
        });
        io.write_all(&[7; 64]).await.unwrap();
        peer.await.unwrap();
    }
}
