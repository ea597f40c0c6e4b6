//! A connection whose writes must make progress: a write (or flush) that stays blocked
//! longer than the limit fails with `TimedOut`, so a client that sends requests but
//! never reads the answers cannot hold its connection slot for ever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner` with a bound on how long a write may wait for the peer to read.
pub(crate) struct WriteStall<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write is blocked; cleared by any progress.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteStall<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        WriteStall {
            inner,
            limit,
            blocked: None,
        }
    }

    /// Passes a finished write through (and disarms the timer); a blocked one arms the
    /// timer, and fails once it has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.blocked = None;
                Poll::Ready(v)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .blocked
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read nothing of the response in time",
                    ))),
                    Poll::Pending => Poll::Pending,
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
        this.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_nobody_reads_fails_after_the_limit_and_progress_resets_it() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = WriteStall::new(ours, Duration::from_secs(2));
        // Fits in the pipe: no wait.
        io.write_all(&[1; 64]).await.unwrap();
        // The peer reads a little: progress, so the next write waits only as long as it
        // takes the peer to read.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                theirs.read_exact(&mut buf).await.unwrap();
            }
            theirs
        });
        // Blocked longer than the limit in all, never that long without progress.
        io.write_all(&[2; 320]).await.unwrap();
        let _theirs = reader.await.unwrap();
        // Nobody reads any more: blocked for the limit, then TimedOut.
        io.write_all(&[3; 64]).await.unwrap();
        let e = io.write_all(&[4; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
