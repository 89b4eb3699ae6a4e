//! A hostile ECS endpoint on loopback, for the tests that prove one tenant's endpoint
//! cannot exhaust the operator everyone shares (issue 14). Raw TCP, so it can do what
//! no well-behaved HTTP server library lets it: stream a gigabyte, answer every page
//! full with a `count` of 10^9, or accept a connection and never say a word.
#![allow(dead_code)] // each test binary uses a different part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the endpoint does with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostility {
    /// A 200 whose chunked body (no Content-Length to refuse it by) runs to 1 GiB.
    Flood,
    /// Every listing page full (as many servers as `limit` asks), `count` 10^9.
    EndlessPages,
    /// Accepts the connection, reads the request, never answers.
    Tarpit,
}

/// Bytes a flood sends at most.
pub const FLOOD_BYTES: u64 = 1 << 30;
/// The `count` every endless page claims.
pub const ENDLESS_COUNT: u64 = 1_000_000_000;

pub struct HostileEndpoint {
    pub addr: SocketAddr,
    /// Requests read so far.
    requests: Arc<AtomicU64>,
    /// Body bytes written so far, over all connections.
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileEndpoint {
    /// Listens on a free loopback port; serves until dropped.
    pub async fn start(hostility: Hostility) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let counters = (Arc::clone(&requests), Arc::clone(&sent));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (requests, sent) = (Arc::clone(&counters.0), Arc::clone(&counters.1));
                tokio::spawn(serve(socket, hostility, requests, sent));
            }
        });
        Self {
            addr,
            requests,
            sent,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for HostileEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The request line and headers, up to the blank line (requests here have small
/// bodies, which are left unread).
async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 << 10 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// `limit` of the request's query, else 25 (the API's default).
fn limit_of(head: &str) -> usize {
    head.split_whitespace()
        .nth(1)
        .and_then(|target| target.split_once('?'))
        .and_then(|(_, query)| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("limit="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(25)
}

/// A full page: `limit` servers, each as large as ecs-sim's (~2.3 KB), `count` 10^9.
/// The same ids on every page: what this endpoint tests is the listing's length.
fn endless_page(limit: usize) -> String {
    let filler = "x".repeat(2200);
    let servers: Vec<String> = (0..limit)
        .map(|i| {
            format!(
                r#"{{"id":"00000000-0000-4000-8000-{i:012}","name":"hostile-{i}","status":"ACTIVE","description":"{filler}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"count":{ENDLESS_COUNT},"servers":[{}]}}"#,
        servers.join(",")
    )
}

async fn serve(
    mut socket: TcpStream,
    hostility: Hostility,
    requests: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) {
    while let Some(head) = read_head(&mut socket).await {
        requests.fetch_add(1, Ordering::Relaxed);
        match hostility {
            Hostility::Tarpit => {
                // Hold the connection open, answer nothing, until the client gives up.
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Hostility::Flood => {
                let header = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 << 10];
                let framed = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                let mut written = 0;
                while written < FLOOD_BYTES {
                    if socket.write_all(&framed).await.is_err() {
                        return;
                    }
                    written += 64 << 10;
                    sent.fetch_add(64 << 10, Ordering::Relaxed);
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
                return;
            }
            Hostility::EndlessPages => {
                let body = endless_page(limit_of(&head));
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                sent.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
        }
    }
}
