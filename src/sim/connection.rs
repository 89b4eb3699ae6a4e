//! Connections a handler can reset: the accept-then-drop fault executes an action and
//! then closes the client's TCP connection before any byte of the answer, as a cloud
//! whose gateway dies mid-request does. A delayed or empty answer would not do: the
//! client must see a reset connection after the server already acted.

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections carry a [`Connection`] handle.
pub(super) struct ResettableListener(pub TcpListener);

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let stream = ResettableStream {
                        stream,
                        connection: Connection::default(),
                    };
                    return (stream, addr);
                }
                // A client that gave up between SYN and accept is its own problem.
                Err(error) if is_connection_error(&error) => {}
                // Out of file descriptors and the like: back off instead of spinning.
                Err(error) => {
                    tracing::error!(%error, "ecs-sim cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Handed to every request (`ConnectInfo<Connection>`): [`Connection::reset`] makes
/// the connection fail on its next read or write, so hyper drops it unanswered.
#[derive(Debug, Clone, Default)]
pub(super) struct Connection {
    reset: Arc<AtomicBool>,
}

impl Connection {
    pub fn reset(&self) {
        self.reset.store(true, Ordering::Release);
    }

    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }
}

impl Connected<IncomingStream<'_, ResettableListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        stream.io().connection.clone()
    }
}

pub(super) struct ResettableStream {
    stream: TcpStream,
    connection: Connection,
}

impl ResettableStream {
    /// Once reset: a zero linger makes the close that follows an RST (the client reads
    /// "connection reset", not a clean end of stream), and the error makes hyper close.
    fn check(&self) -> io::Result<()> {
        if !self.connection.is_reset() {
            return Ok(());
        }
        if let Err(error) = self.stream.set_zero_linger() {
            tracing::debug!(%error, "cannot set SO_LINGER 0; the close is a FIN");
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "ecs-sim accept-then-drop fault",
        ))
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    /// A reset connection is not shut down: a FIN before the RST would read as a
    /// clean end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
