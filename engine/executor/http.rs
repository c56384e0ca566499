//! The small HTTP/1.1 client behind `http` probes: one request over a fresh `TcpStream` to an
//! `http://` URL, the response read with `Content-Length`, chunked transfer encoding or until
//! the server closes, its body capped at `MAX_BODY`. One connection per request and no TLS:
//! a probe asks one question and needs nothing a client library would add.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader,
};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// At most this much of a response body is kept; the rest is not read.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// A status line, header or chunk-size line longer than this is not HTTP a probe expects.
const MAX_LINE: usize = 16 * 1024;

/// More header lines than this in one response is taken as a malformed response.
const MAX_HEADERS: usize = 200;

/// Headers the client writes itself, because the exchange depends on their values.
const RESERVED_HEADERS: [&str; 3] = ["connection", "content-length", "transfer-encoding"];

/// One request, as an `http` probe renders it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpRequest<'request> {
    pub(crate) url: &'request str,
    pub(crate) method: &'request str,
    pub(crate) headers: &'request [(String, String)],
    pub(crate) body: Option<&'request str>,
    /// Bounds the whole exchange: name lookup, connecting, sending and reading the response.
    pub(crate) timeout: Duration,
}

/// The final response of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    /// At most `MAX_BODY` bytes.
    pub(crate) body: Vec<u8>,
    /// The body was longer than `MAX_BODY` and the rest was not read.
    pub(crate) body_truncated: bool,
    /// From the start of the request until the first status line arrived.
    pub(crate) latency: Duration,
}

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error(
        "https is not supported yet: `{url}` needs TLS, which the engine's HTTP client does not speak"
    )]
    HttpsUnsupported { url: String },
    #[error("`{url}` is not a URL the probe can request: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("cannot resolve `{host}`")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to `{address}`")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("the request to `{url}` timed out after {}", crate::executor::probe::human_duration(*after))]
    TimedOut { url: String, after: Duration },
    #[error("the connection to `{address}` failed")]
    Io {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("the response from `{address}` is not valid HTTP: {reason}")]
    Malformed { address: String, reason: String },
}

/// Sends `request` and reads the response, all within `request.timeout`.
pub(crate) async fn send(request: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
    let target = Target::parse(request.url)?;
    let head = request_head(&request, &target)?;
    let started = Instant::now();
    match tokio::time::timeout(request.timeout, exchange(&request, &target, &head, started)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::TimedOut {
            url: request.url.to_string(),
            after: request.timeout,
        }),
    }
}

async fn exchange(
    request: &HttpRequest<'_>,
    target: &Target,
    head: &str,
    started: Instant,
) -> Result<HttpResponse, HttpError> {
    let mut stream = connect(target).await?;
    let io_error = |source| HttpError::Io {
        address: target.authority.clone(),
        source,
    };
    let mut message = head.as_bytes().to_vec();
    if let Some(body) = request.body {
        message.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&message).await.map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;
    let mut reader = ResponseReader {
        stream: BufReader::new(stream),
        address: target.authority.clone(),
    };
    reader
        .read_response(request.method.eq_ignore_ascii_case("HEAD"), started)
        .await
}

/// Where an `http://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `host[:port]` as written, for the `Host` header and messages.
    authority: String,
    /// Without brackets for an IPv6 literal.
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid("it has no `http://` scheme"));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(HttpError::HttpsUnsupported {
                url: url.to_string(),
            });
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(invalid(&format!(
                "the scheme `{scheme}` is not supported, only `http`"
            )));
        }
        // A fragment is for the browser, never sent to the server.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported: send them in a header",
            ));
        }
        if path
            .chars()
            .any(|character| character.is_ascii_whitespace() || character.is_control())
        {
            return Err(invalid("the path contains whitespace: percent-encode it"));
        }
        let path = match path.strip_prefix('?') {
            Some(_) => format!("/{path}"),
            None if path.is_empty() => "/".to_string(),
            None => path.to_string(),
        };
        let (host, port) = split_host_port(authority).map_err(|reason| invalid(&reason))?;
        Ok(Target {
            authority: authority.to_string(),
            host,
            port: port.unwrap_or(80),
            path,
        })
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the host comes back without brackets.
pub(crate) fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("`{authority}` has no closing `]`"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{authority}` has text after the `]`")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "`{authority}` looks like an IPv6 address: write it in brackets, `[{authority}]`"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{authority}` has no host"));
    }
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return Err(format!("`{port}` is not a port number")),
        },
        None => None,
    };
    Ok((host.to_string(), port))
}

/// The request line and headers, ending with the blank line.
fn request_head(request: &HttpRequest<'_>, target: &Target) -> Result<String, HttpError> {
    let invalid = |reason: String| HttpError::InvalidRequest { reason };
    if request.method.is_empty() || !request.method.bytes().all(is_token_byte) {
        return Err(invalid(format!(
            "`{}` is not an HTTP method",
            request.method
        )));
    }
    for (name, value) in request.headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(invalid(format!("`{name}` is not a header name")));
        }
        // A line break in a value would start a header, or a request, of its own.
        if value
            .bytes()
            .any(|byte| byte == b'\r' || byte == b'\n' || byte == 0)
        {
            return Err(invalid(format!(
                "the value of header `{name}` contains a line break"
            )));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!(
                "header `{name}` is set by the engine and cannot be given"
            )));
        }
    }
    let given = |wanted: &str| {
        request
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(wanted))
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, target.path);
    if !given("host") {
        head.push_str(&format!("Host: {}\r\n", target.authority));
    }
    if !given("user-agent") {
        head.push_str("User-Agent: runbook\r\n");
    }
    head.push_str("Connection: close\r\n");
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {}\r\n", value.trim()));
    }
    let sends_body = request.body.is_some()
        || ["POST", "PUT", "PATCH"]
            .iter()
            .any(|method| request.method.eq_ignore_ascii_case(method));
    if sends_body {
        let length = request.body.map_or(0, str::len);
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    Ok(head)
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

async fn connect(target: &Target) -> Result<TcpStream, HttpError> {
    let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|source| HttpError::Resolve {
                host: target.host.clone(),
                source,
            })?
            .collect(),
    };
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    Err(HttpError::Connect {
        address: target.authority.clone(),
        source: last_error,
    })
}

struct ResponseReader<R> {
    stream: BufReader<R>,
    address: String,
}

impl<R: AsyncRead + Unpin> ResponseReader<R> {
    async fn read_response(
        &mut self,
        is_head: bool,
        started: Instant,
    ) -> Result<HttpResponse, HttpError> {
        let mut latency = None;
        let (status, headers) = loop {
            let line = self.line().await?;
            let Some(line) = line else {
                return Err(self.malformed("the server closed the connection without a response"));
            };
            latency.get_or_insert_with(|| started.elapsed());
            let status = self.status(&line)?;
            let headers = self.headers().await?;
            // Interim responses (`100 Continue`) come before the real one; `101` would switch
            // protocols, which a probe never asks for, so it counts as the answer.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            break (status, headers);
        };
        let header = |wanted: &str| {
            headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.as_str())
                .collect::<Vec<_>>()
        };
        let chunked = header("transfer-encoding")
            .iter()
            .any(|value| value.to_ascii_lowercase().contains("chunked"));
        let (body, body_truncated) = if is_head || status == 204 || status == 304 || status == 101 {
            (Vec::new(), false)
        } else if chunked {
            self.chunked_body().await?
        } else if let Some(length) = header("content-length").first() {
            let Ok(length) = length.trim().parse::<u64>() else {
                return Err(self.malformed(&format!("`Content-Length: {length}` is not a number")));
            };
            self.sized_body(length).await?
        } else {
            self.body_until_close().await?
        };
        Ok(HttpResponse {
            status,
            headers,
            body,
            body_truncated,
            latency: latency.unwrap_or_default(),
        })
    }

    fn status(&self, line: &str) -> Result<u16, HttpError> {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(self.malformed(&format!("the status line is `{}`", snippet(line))));
        }
        match code.parse::<u16>() {
            Ok(code) if (100..1000).contains(&code) => Ok(code),
            _ => Err(self.malformed(&format!("`{}` is not a status code", snippet(code)))),
        }
    }

    async fn headers(&mut self) -> Result<Vec<(String, String)>, HttpError> {
        let mut headers = Vec::new();
        loop {
            let Some(line) = self.line().await? else {
                return Err(self.malformed("the connection closed in the middle of the headers"));
            };
            if line.is_empty() {
                return Ok(headers);
            }
            if headers.len() == MAX_HEADERS {
                return Err(self.malformed(&format!("more than {MAX_HEADERS} headers")));
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(
                    self.malformed(&format!("the header line `{}` has no `:`", snippet(&line)))
                );
            };
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }

    async fn sized_body(&mut self, length: u64) -> Result<(Vec<u8>, bool), HttpError> {
        let kept = usize::try_from(length).map_or(MAX_BODY, |length| length.min(MAX_BODY));
        let mut body = vec![0; kept];
        match self.stream.read_exact(&mut body).await {
            Ok(_) => Ok((body, length > kept as u64)),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Err(self.malformed(
                &format!("the connection closed before the {length} bytes of `Content-Length`"),
            )),
            Err(source) => Err(self.io(source)),
        }
    }

    async fn body_until_close(&mut self) -> Result<(Vec<u8>, bool), HttpError> {
        let mut body = Vec::new();
        let limit = (MAX_BODY + 1) as u64;
        (&mut self.stream)
            .take(limit)
            .read_to_end(&mut body)
            .await
            .map_err(|source| self.io(source))?;
        let truncated = body.len() > MAX_BODY;
        body.truncate(MAX_BODY);
        Ok((body, truncated))
    }

    async fn chunked_body(&mut self) -> Result<(Vec<u8>, bool), HttpError> {
        let mut body = Vec::new();
        loop {
            let Some(line) = self.line().await? else {
                return Err(self.malformed("the connection closed in the middle of a chunked body"));
            };
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let Ok(size) = u64::from_str_radix(size_text, 16) else {
                return Err(self.malformed(&format!("`{}` is not a chunk size", snippet(&line))));
            };
            if size == 0 {
                // Trailer fields, if any, end with a blank line; nobody reads them.
                self.headers().await?;
                return Ok((body, false));
            }
            let room = (MAX_BODY - body.len()) as u64;
            let wanted = size.min(room);
            let start = body.len();
            // `wanted` is at most `room`, a `usize`.
            body.resize(start + wanted as usize, 0);
            match self.stream.read_exact(&mut body[start..]).await {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(self.malformed("the connection closed in the middle of a chunk"));
                }
                Err(source) => return Err(self.io(source)),
            }
            if size > room {
                return Ok((body, true));
            }
            match self.line().await? {
                Some(line) if line.is_empty() => {}
                _ => return Err(self.malformed("a chunk does not end with a line break")),
            }
        }
    }

    /// One line without its `\r\n` (or bare `\n`); `None` at end of stream before any byte.
    async fn line(&mut self) -> Result<Option<String>, HttpError> {
        let mut line = Vec::new();
        let limit = (MAX_LINE + 1) as u64;
        let read = (&mut self.stream)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|source| self.io(source))?;
        if read == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > MAX_LINE {
                self.malformed(&format!("a line is longer than {MAX_LINE} bytes"))
            } else {
                self.malformed("the connection closed in the middle of a line")
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    fn malformed(&self, reason: &str) -> HttpError {
        HttpError::Malformed {
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }

    fn io(&self, source: io::Error) -> HttpError {
        HttpError::Io {
            address: self.address.clone(),
            source,
        }
    }
}

/// Enough of a line to recognise it in a message.
fn snippet(text: &str) -> String {
    const SHOWN: usize = 80;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A real HTTP server on 127.0.0.1 for tests: it answers each request as the test scripts it
/// and reports every request it read, so tests wait on requests rather than on time.
#[cfg(test)]
pub(crate) mod test_server {
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
}

#[cfg(test)]
mod tests {
    use super::test_server::{Reply, TestServer, refusing_port, response};
    use super::*;

    fn get(url: &str) -> HttpRequest<'_> {
        HttpRequest {
            url,
            method: "GET",
            headers: &[],
            body: None,
            timeout: Duration::from_secs(10),
        }
    }

    fn target(url: &str) -> Target {
        Target::parse(url).expect("a valid URL")
    }

    fn parse_error(url: &str) -> String {
        Target::parse(url).expect_err("an invalid URL").to_string()
    }

    #[test]
    fn parses_hosts_ports_and_paths() {
        assert_eq!(
            target("http://127.0.0.1:8080/health?full=1#top"),
            Target {
                authority: "127.0.0.1:8080".to_string(),
                host: "127.0.0.1".to_string(),
                port: 8080,
                path: "/health?full=1".to_string(),
            }
        );
        assert_eq!(
            target("HTTP://[::1]:9000"),
            Target {
                authority: "[::1]:9000".to_string(),
                host: "::1".to_string(),
                port: 9000,
                path: "/".to_string(),
            }
        );
        let named = target("http://example.internal?ready");
        assert_eq!((named.host.as_str(), named.port), ("example.internal", 80));
        assert_eq!(named.path, "/?ready");
        assert_eq!(target("http://[::1]/x").port, 80);
    }

    #[test]
    fn refuses_what_it_cannot_request() {
        assert_eq!(
            parse_error("https://example.com/"),
            "https is not supported yet: `https://example.com/` needs TLS, which the engine's HTTP client does not speak"
        );
        assert!(parse_error("example.com/health").contains("no `http://` scheme"));
        assert!(parse_error("ftp://example.com/").contains("the scheme `ftp` is not supported"));
        assert!(parse_error("http://user:secret@example.com/").contains("credentials"));
        assert!(parse_error("http://example.com:http/").contains("`http` is not a port number"));
        assert!(parse_error("http://example.com:0/").contains("`0` is not a port number"));
        assert!(parse_error("http://::1:80/").contains("write it in brackets"));
        assert!(parse_error("http://[::1/").contains("no closing `]`"));
        assert!(parse_error("http:///path").contains("has no host"));
        assert!(parse_error("http://example.com/a b").contains("whitespace"));
        for url in ["https://x", "x", "http://[::1", "http://a:b"] {
            let message = parse_error(url);
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn request_head_has_the_engine_headers_and_the_given_ones() {
        let headers = vec![("X-Token".to_string(), "abc ".to_string())];
        let request = HttpRequest {
            url: "http://127.0.0.1:8080/deploy",
            method: "POST",
            headers: &headers,
            body: Some("{}"),
            timeout: Duration::from_secs(1),
        };
        let head = request_head(&request, &target(request.url)).expect("a valid request");
        assert_eq!(
            head,
            "POST /deploy HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: runbook\r\n\
             Connection: close\r\nX-Token: abc\r\nContent-Length: 2\r\n\r\n"
        );

        let headers = vec![
            ("host".to_string(), "service.internal".to_string()),
            ("User-Agent".to_string(), "probe".to_string()),
        ];
        let request = HttpRequest {
            headers: &headers,
            ..get("http://127.0.0.1/")
        };
        let head = request_head(&request, &target(request.url)).expect("a valid request");
        assert_eq!(
            head,
            "GET / HTTP/1.1\r\nConnection: close\r\nhost: service.internal\r\nUser-Agent: probe\r\n\r\n"
        );
    }

    #[test]
    fn request_head_refuses_header_injection_and_reserved_headers() {
        let cases = [
            (
                ("X-A", "one\r\nX-B: two"),
                "the value of header `X-A` contains a line break",
            ),
            (("Bad Name", "x"), "`Bad Name` is not a header name"),
            (
                ("content-length", "5"),
                "header `content-length` is set by the engine",
            ),
        ];
        for ((name, value), expected) in cases {
            let headers = vec![(name.to_string(), value.to_string())];
            let request = HttpRequest {
                headers: &headers,
                ..get("http://127.0.0.1/")
            };
            let error = request_head(&request, &target(request.url)).expect_err("refused");
            assert!(error.to_string().contains(expected), "{error}");
        }
        let request = HttpRequest {
            method: "GET /x",
            ..get("http://127.0.0.1/")
        };
        assert!(request_head(&request, &target(request.url)).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_a_response_with_content_length() {
        let mut server = TestServer::start(|_, _| response(201, "created")).await;
        let url = server.url("/items?kind=a");
        let headers = vec![("X-Probe".to_string(), "yes".to_string())];
        let request = HttpRequest {
            method: "PUT",
            headers: &headers,
            body: Some("payload"),
            ..get(&url)
        };
        let response = send(request).await.expect("a response");
        assert_eq!(response.status, 201);
        assert_eq!(response.body, b"created");
        assert!(!response.body_truncated);
        assert!(
            response
                .headers
                .contains(&("Content-Type".to_string(), "text/plain".to_string()))
        );
        let received = server.received(1).await.remove(0);
        assert!(
            received.starts_with("PUT /items?kind=a HTTP/1.1\r\n"),
            "{received}"
        );
        assert!(received.contains(&format!("\r\nHost: {}\r\n", server.address)));
        assert!(received.contains("\r\nX-Probe: yes\r\n"));
        assert!(received.contains("\r\nConnection: close\r\n"));
        assert!(received.ends_with("\r\nContent-Length: 7\r\n\r\npayload"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_a_chunked_body_with_extensions_and_trailers() {
        let server = TestServer::start(|_, _| {
            Reply::Now(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                    .to_vec(),
            )
        })
        .await;
        let response = send(get(&server.url("/"))).await.expect("a response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello, world");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_until_close_without_a_length_and_skips_interim_responses() {
        let server = TestServer::start(|_, _| {
            Reply::Now(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Down\r\n\r\nbusy\nline".to_vec())
        })
        .await;
        let response = send(get(&server.url("/"))).await.expect("a response");
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"busy\nline");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn caps_the_body_at_one_mebibyte() {
        let big = vec![b'x'; 2 * MAX_BODY];
        let mut with_length =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", big.len()).into_bytes();
        with_length.extend_from_slice(&big);
        let mut until_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        until_close.extend_from_slice(&big);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        chunked.extend_from_slice(format!("{:x}\r\n", big.len()).as_bytes());
        chunked.extend_from_slice(&big);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let replies = [with_length, until_close, chunked];
        let server = TestServer::start(move |index, _| Reply::Now(replies[index].clone())).await;
        for _ in 0..3 {
            let response = send(get(&server.url("/"))).await.expect("a response");
            assert_eq!(response.body.len(), MAX_BODY);
            assert!(response.body_truncated);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn head_response_has_no_body_despite_its_length() {
        let server = TestServer::start(|_, _| {
            Reply::Now(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec())
        })
        .await;
        let url = server.url("/");
        let request = HttpRequest {
            method: "HEAD",
            ..get(&url)
        };
        let response = send(request).await.expect("a response");
        assert_eq!((response.status, response.body.len()), (200, 0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn resolves_localhost() {
        let server = TestServer::start(|_, _| response(200, "ok")).await;
        let url = format!("http://localhost:{}/", server.address.port());
        let response = send(get(&url)).await.expect("a response");
        assert_eq!(response.status, 200);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn whole_exchange_is_bounded_by_the_timeout() {
        let mut server = TestServer::start(|_, _| Reply::Never).await;
        let url = server.url("/");
        let request = HttpRequest {
            timeout: Duration::from_millis(50),
            ..get(&url)
        };
        let error = send(request).await.expect_err("no response");
        assert!(matches!(error, HttpError::TimedOut { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("the request to `{url}` timed out after 50ms")
        );
        server.received(1).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reports_refused_connections_and_malformed_responses() {
        let (_socket, address) = refusing_port();
        let url = format!("http://{address}/");
        let error = send(get(&url)).await.expect_err("nothing listens");
        assert!(matches!(error, HttpError::Connect { .. }), "{error:?}");
        assert_eq!(error.to_string(), format!("cannot connect to `{address}`"));

        let server = TestServer::start(|index, _| match index {
            0 => Reply::Now(b"SSH-2.0-OpenSSH\r\n".to_vec()),
            1 => Reply::Now(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()),
            _ => Reply::Now(Vec::new()),
        })
        .await;
        let url = server.url("/");
        let expectations = [
            "the status line is `SSH-2.0-OpenSSH`",
            "the connection closed before the 10 bytes of `Content-Length`",
            "the server closed the connection without a response",
        ];
        for expected in expectations {
            let error = send(get(&url)).await.expect_err("malformed");
            assert!(matches!(error, HttpError::Malformed { .. }), "{error:?}");
            assert!(error.to_string().ends_with(expected), "{error}");
        }
    }
}
