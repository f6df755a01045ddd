//! A bound on what an SMTP server can make us hold: lettre reads a reply line until it ends,
//! so a server that sends `220 ` and then bytes without a line end would fill memory. The
//! socket is wrapped in [`BoundedReplies`], which fails the read once a reply line is longer
//! than RFC 5321 allows, or once the server sent more than [`MAX_READ_BETWEEN_WRITES`] without
//! the client writing anything (after STARTTLS, where the bytes are encrypted and lines cannot
//! be seen).

use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest reply line accepted, CRLF included (RFC 5321, 4.5.3.1.5: 512 octets).
pub const MAX_REPLY_LINE: usize = 512;

/// The most bytes accepted from the server between two writes of the client: a reply to one
/// command (or a TLS handshake flight with its certificate chain) is far smaller.
pub const MAX_READ_BETWEEN_WRITES: usize = 256 * 1024;

/// Marks the read error, so that the provider can name it.
pub(crate) const TOO_LONG: &str = "the server's reply exceeds the limit";

/// A stream whose reads fail when the peer's reply lines or replies are too long.
#[derive(Debug)]
pub(crate) struct BoundedReplies<S> {
    inner: S,
    /// Octets of the current (unfinished) line.
    line: usize,
    /// Octets read since the client last wrote.
    since_write: usize,
    /// False once STARTTLS was answered: the bytes are TLS records from there on.
    plaintext: bool,
    starttls_sent: bool,
}

impl<S> BoundedReplies<S> {
    pub(crate) fn new(inner: S) -> Self {
        BoundedReplies {
            inner,
            line: 0,
            since_write: 0,
            plaintext: true,
            starttls_sent: false,
        }
    }

    /// Accounts for `data` just read; an error when a bound is crossed.
    fn account(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.since_write += data.len();
        if self.since_write > MAX_READ_BETWEEN_WRITES {
            return Err(too_long(format!(
                "more than {MAX_READ_BETWEEN_WRITES} octets without a complete reply"
            )));
        }
        if !self.plaintext {
            return Ok(());
        }
        for &b in data {
            if b == b'\n' {
                self.line = 0;
                if self.starttls_sent {
                    // The answer to STARTTLS ended: what follows is the TLS handshake.
                    self.plaintext = false;
                    return Ok(());
                }
            } else {
                self.line += 1;
                // The line end (CRLF) counts towards the 512 octets.
                if self.line + 2 > MAX_REPLY_LINE {
                    return Err(too_long(format!(
                        "a reply line longer than {MAX_REPLY_LINE} octets (RFC 5321)"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn too_long(what: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{TOO_LONG}: {what}"),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for BoundedReplies<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        Poll::Ready(this.account(&buf.filled()[before..]))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BoundedReplies<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.since_write = 0;
            if self.plaintext && buf[..n].len() >= 8 && buf[..8].eq_ignore_ascii_case(b"STARTTLS") {
                self.starttls_sent = true;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            self.since_write = 0;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncTokioStream> AsyncTokioStream for BoundedReplies<S> {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_replies_are_bounded() {
        let mut b = BoundedReplies::new(());
        assert!(b.account(b"220 ok\r\n250-a\r\n").is_ok());
        assert!(b.account(&[b'x'; 500]).is_ok());
        assert!(b.account(&[b'x'; 20]).is_err());
        let mut b = BoundedReplies::new(());
        b.starttls_sent = true;
        assert!(b.account(b"220 go ahead\r\n").is_ok());
        assert!(!b.plaintext);
        assert!(
            b.account(&[0x16; 4096]).is_ok(),
            "TLS records are not lines"
        );
        assert!(b.account(&vec![0; MAX_READ_BETWEEN_WRITES]).is_err());
    }
}
