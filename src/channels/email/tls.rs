//! Implicit TLS (port 465) over a TCP stream of our own, so TCP_NODELAY stays set.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::{AsyncTokioStream, TlsParameters};
use tokio::net::TcpStream;

use super::describe;

/// Implicit TLS: the handshake must come before the greeting, which `connect_with_transport`
/// reads at once. So the TCP stream (with TCP_NODELAY) is wrapped in lettre's own network stream,
/// upgraded there with lettre's rustls set-up, and handed back to lettre as an opaque transport.
/// `AsyncNetworkStream` is deprecated as public API but is the only way to reuse that set-up.
#[allow(deprecated)]
#[derive(Debug)]
pub(super) struct ImplicitTls(lettre::transport::smtp::client::AsyncNetworkStream);

#[allow(deprecated)]
impl ImplicitTls {
    pub(super) async fn handshake(tcp: TcpStream, parameters: TlsParameters) -> Result<Self, String> {
        let mut stream = lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(parameters).await.map_err(|e| format!("smtp tls handshake failed: {}", describe(&e)))?;
        Ok(ImplicitTls(stream))
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

// lettre's stream speaks futures-io; the transport it takes must speak tokio's traits.
impl tokio::io::AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = futures::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, buf.initialize_unfilled());
        match read {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for ImplicitTls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        futures::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}
