//! A real HTTP server on 127.0.0.1 for unit tests of the probe client: it answers each request
//! as the test scripts it and reports every request it read, so tests wait on requests rather
//! than on time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Now(Vec<u8>),
    /// The response is written after a pause: a slow server is what the test is about.
    After(Duration, Vec<u8>),
    /// The connection stays open and silent.
    Never,
}

/// A port on 127.0.0.1 that refuses connections: bound, so nothing else takes it while the
/// socket lives (a client cannot even pick it as its own port and connect to itself), but
/// not listening.
pub(crate) fn refusing_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("create a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind a port on 127.0.0.1");
    let address = socket.local_addr().expect("the bound address");
    (socket, address)
}

/// A complete response with `Content-Length`.
pub(crate) fn response(status: u16, body: &str) -> Reply {
    Reply::Now(
        format!(
            "HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[derive(Debug)]
pub(crate) struct TestServer {
    pub(crate) address: SocketAddr,
    /// Every request as read: head and body.
    pub(crate) requests: mpsc::UnboundedReceiver<String>,
    connections: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Serves each connection with `respond(index, request)`; the index counts from 0.
    pub(crate) async fn start<F>(respond: F) -> TestServer
    where
        F: Fn(usize, &str) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on 127.0.0.1");
        let address = listener.local_addr().expect("the bound address");
        let (sender, requests) = mpsc::unbounded_channel();
        let respond = Arc::new(respond);
        let counter = Arc::new(AtomicUsize::new(0));
        let connections = tokio::spawn(async move {
            // Owned here, so stopping the server also ends the connections it serves.
            let mut served = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let index = counter.fetch_add(1, Ordering::SeqCst);
                let respond = Arc::clone(&respond);
                let sender = sender.clone();
                served.spawn(async move {
                    serve(stream, index, respond.as_ref(), &sender).await;
                });
                while served.try_join_next().is_some() {}
            }
        });
        TestServer {
            address,
            requests,
            connections,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Waits until the server has read `count` more requests.
    pub(crate) async fn received(&mut self, count: usize) -> Vec<String> {
        let mut requests = Vec::with_capacity(count);
        for _ in 0..count {
            requests.push(self.requests.recv().await.expect("the server is running"));
        }
        requests
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.connections.abort();
    }
}

async fn serve<F>(
    mut stream: TcpStream,
    index: usize,
    respond: &F,
    requests: &mpsc::UnboundedSender<String>,
) where
    F: Fn(usize, &str) -> Reply,
{
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = respond(index, &request);
    let _ = requests.send(request);
    let bytes = match reply {
        Reply::Now(bytes) => bytes,
        Reply::After(pause, bytes) => {
            tokio::time::sleep(pause).await;
            bytes
        }
        Reply::Never => {
            std::future::pending::<()>().await;
            return;
        }
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Some(text);
            }
        }
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
        }
        bytes.extend_from_slice(&buffer[..read]);
    }
}
