//! A loopback TCP proxy between one operator and kube-apiserver that can be made to
//! black-hole: from then on it forwards no byte in either direction and holds every
//! connection, old and new, open and silent, as a partitioned network does (nothing
//! is refused or reset, so the operator learns of it only from its own timeouts).

use anyhow::{Context as _, Result};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub addr: SocketAddr,
    blackholed: watch::Sender<bool>,
    /// Cancelled on drop: every connection task ends.
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (blackholed, watching) = watch::channel(false);
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, target, watching, stop.clone()));
        Ok(Self {
            addr,
            blackholed,
            stop,
        })
    }

    pub fn blackhole(&self) {
        self.blackholed.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    blackholed: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
            () = stop.cancelled() => return,
        };
        let (blackholed, stop) = (blackholed.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(client, target, blackholed) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Forwards both ways until either side closes or the proxy black-holes; then holds
/// both sockets open without reading or writing until the proxy is dropped.
async fn connection(
    client: TcpStream,
    target: SocketAddr,
    mut blackholed: watch::Receiver<bool>,
) -> Result<()> {
    let already = *blackholed.borrow();
    if already {
        let _held = client;
        return std::future::pending().await;
    }
    let server = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let forward = async {
        tokio::try_join!(
            pump(&mut client_read, &mut server_write),
            pump(&mut server_read, &mut client_write),
        )
    };
    tokio::select! {
        result = forward => return result.map(|_| ()),
        _ = blackholed.wait_for(|b| *b) => {}
    }
    // Every half lives in this frame: held open, silent.
    std::future::pending().await
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await.ok();
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}
