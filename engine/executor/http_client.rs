//! The HTTP client behind `http` probes: one request with reqwest over rustls (the `ring`
//! provider), certificates verified against the system's roots plus a probe's `ca_file`, or not
//! at all when `insecure`. Redirects are followed only when asked, the proxy comes from
//! `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`, the body is capped at `MAX_BODY`, and a failure is
//! classified into what a probe message says (refused, unresolved, TLS, timed out).

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url, redirect};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::time::Instant;

use crate::ca_file::read_ca_file;
use crate::format::lowercase_first;

/// At most this much of a response body is kept; the rest is not read.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// `follow_redirects: true` follows at most this many, as curl's `--max-redirs` default
/// would be too generous for a health check.
const MAX_REDIRECTS: usize = 10;

/// Headers the client writes itself, because the exchange depends on their values.
const RESERVED_HEADERS: [&str; 3] = ["connection", "content-length", "transfer-encoding"];

/// One request, as an `http` probe renders it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpRequest<'request> {
    pub(crate) url: &'request str,
    pub(crate) method: &'request str,
    pub(crate) headers: &'request [(String, String)],
    pub(crate) body: Option<&'request str>,
    /// Bounds the whole exchange: name lookup, connecting, TLS, sending and reading the body.
    pub(crate) timeout: Duration,
    /// Extra trusted certificates (PEM), on top of the system's roots.
    pub(crate) ca_file: Option<&'request Path>,
    /// Skip certificate verification.
    pub(crate) insecure: bool,
    pub(crate) follow_redirects: bool,
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
    /// From the start of the request until the response's head arrived.
    pub(crate) latency: Duration,
    /// Where the response came from, when a redirect was followed.
    pub(crate) redirected_to: Option<String>,
}

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("`{url}` is not a URL the probe can request: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error("cannot use `ca_file` `{}`: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {reason}")]
    Client { reason: String },
    #[error("cannot resolve `{host}`: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to `{address}`: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS handshake with `{address}` failed: {reason}")]
    Tls {
        address: String,
        reason: String,
        /// The certificate is signed by a CA nobody told the probe to trust.
        unknown_issuer: bool,
    },
    #[error("the request to `{url}` timed out after {}", crate::format::in_message(*after))]
    TimedOut { url: String, after: Duration },
    #[error("`{url}` redirects too often or in a loop (more than {MAX_REDIRECTS} redirects)")]
    Redirects { url: String },
    #[error("the exchange with `{address}` failed: {reason}")]
    Exchange { address: String, reason: String },
}

impl HttpError {
    /// Retrying cannot change the result: the probe as written cannot be sent.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(
            self,
            HttpError::InvalidUrl { .. }
                | HttpError::InvalidRequest { .. }
                | HttpError::CaFile { .. }
                | HttpError::Client { .. }
        )
    }

    /// What the user can change, for a `help:` line.
    pub(crate) fn help(&self) -> Option<&'static str> {
        match self {
            HttpError::Tls {
                unknown_issuer: true,
                ..
            } => Some(
                "give the CA's certificate in `ca_file` (PEM), or set `insecure: true` to skip verification",
            ),
            _ => None,
        }
    }
}

/// Sends `request` and reads the response, all within `request.timeout`.
pub(crate) async fn send(request: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
    let url = parse_url(request.url)?;
    let address = authority(&url);
    let method =
        Method::from_bytes(request.method.as_bytes()).map_err(|_| HttpError::InvalidRequest {
            reason: format!("`{}` is not an HTTP method", request.method),
        })?;
    let headers = header_map(request.headers)?;
    let client = client(&request)?;
    let requested = url.to_string();
    let mut builder = client.request(method, url).headers(headers);
    let sends_body = request.body.is_some()
        || ["POST", "PUT", "PATCH"]
            .iter()
            .any(|method| request.method.eq_ignore_ascii_case(method));
    if sends_body {
        builder = builder.body(request.body.unwrap_or_default().to_string());
    }
    let started = Instant::now();
    let exchange = async {
        let mut response = builder
            .send()
            .await
            .map_err(|error| classify(&error, request.url, &address))?;
        let latency = started.elapsed();
        let status = response.status().as_u16();
        let final_url = response.url().to_string();
        let redirected_to = (final_url != requested).then_some(final_url);
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let mut body_truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| classify(&error, request.url, &address))?
        {
            let room = MAX_BODY - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                body_truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
            body_truncated,
            latency,
            redirected_to,
        })
    };
    match tokio::time::timeout(request.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::TimedOut {
            url: request.url.to_string(),
            after: request.timeout,
        }),
    }
}

fn parse_url(text: &str) -> Result<Url, HttpError> {
    let invalid = |reason: String| HttpError::InvalidUrl {
        url: text.to_string(),
        reason,
    };
    let url = Url::parse(text).map_err(|error| invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme `{}` is not supported, only `http` and `https`",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not supported: send them in a header".to_string(),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".to_string()));
    }
    Ok(url)
}

/// `host:port` of a URL, for messages; an IPv6 literal stays in brackets.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, HttpError> {
    let invalid = |reason: String| HttpError::InvalidRequest { reason };
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!(
                "header `{name}` is set by the engine and cannot be given"
            )));
        }
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{name}` is not a header name")))?;
        // A line break in a value would start a header, or a request, of its own.
        let header_value = HeaderValue::from_str(value.trim()).map_err(|_| {
            invalid(format!(
                "the value of header `{name}` contains a line break or a control character"
            ))
        })?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

fn client(request: &HttpRequest<'_>) -> Result<reqwest::Client, HttpError> {
    let tls = tls_config(request.ca_file, request.insecure)?;
    let policy = if request.follow_redirects {
        redirect::Policy::limited(MAX_REDIRECTS)
    } else {
        redirect::Policy::none()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(policy)
        .user_agent("runbook")
        // One question per sample: a fresh connection each time, as a new client would see.
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|error| HttpError::Client {
            reason: deepest_cause(&error),
        })
}

fn tls_config(ca_file: Option<&Path>, insecure: bool) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| HttpError::Client {
            reason: error.to_string(),
        })?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(path) = ca_file {
            let ca_error = |reason: String| HttpError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            for certificate in read_ca_file(path).map_err(ca_error)? {
                roots.add(certificate).map_err(|error| {
                    ca_error(format!("a certificate in it is not usable: {error}"))
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The system's trusted roots, read once; an unreadable store leaves only `ca_file`.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// `insecure: true`: any certificate is accepted, but the handshake's signatures are still
/// checked, so the connection is real TLS.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Turns reqwest's error (a chain through hyper and the OS) into what a person needs to read.
fn classify(error: &reqwest::Error, url: &str, address: &str) -> HttpError {
    if error.is_redirect() {
        return HttpError::Redirects {
            url: url.to_string(),
        };
    }
    let chain = causes(error);
    if let Some(tls) = chain
        .iter()
        .find_map(|cause| cause.downcast_ref::<rustls::Error>())
    {
        return HttpError::Tls {
            address: address.to_string(),
            reason: describe_tls(tls),
            unknown_issuer: matches!(
                tls,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
        };
    }
    let reason = deepest_cause(error);
    // hyper-util names a failed lookup "dns error"; the OS text below it says why.
    if chain.iter().any(|cause| cause.to_string() == "dns error") {
        let host = Url::parse(url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_else(|| address.to_string());
        return HttpError::Resolve { host, reason };
    }
    if error.is_connect() {
        return HttpError::Connect {
            address: address.to_string(),
            reason,
        };
    }
    HttpError::Exchange {
        address: address.to_string(),
        reason,
    }
}

/// `error` and every cause under it; an `io::Error` wrapping another error is looked into,
/// which its own `source` does not do.
fn causes<'error>(error: &'error (dyn Error + 'static)) -> Vec<&'error (dyn Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        chain.push(current);
        next = match current.downcast_ref::<io::Error>() {
            Some(io_error) => match io_error.get_ref() {
                Some(inner) => Some(inner as &(dyn Error + 'static)),
                None => current.source(),
            },
            None => current.source(),
        };
    }
    chain
}

/// The innermost cause's text, which is the specific one (`connection refused`).
fn deepest_cause(error: &(dyn Error + 'static)) -> String {
    let chain = causes(error);
    let text = chain
        .last()
        .map_or_else(String::new, |cause| cause.to_string());
    lowercase_first(&text)
}

fn describe_tls(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(certificate) => {
            let reason = match certificate {
                CertificateError::UnknownIssuer => "unknown issuer".to_string(),
                CertificateError::BadSignature => "bad signature".to_string(),
                CertificateError::Expired => "the certificate has expired".to_string(),
                CertificateError::NotValidYet => "the certificate is not valid yet".to_string(),
                CertificateError::Revoked => "the certificate is revoked".to_string(),
                CertificateError::NotValidForName => {
                    "the certificate is not valid for this host name".to_string()
                }
                CertificateError::BadEncoding => "the certificate is malformed".to_string(),
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => {
                    // rustls lists the names as `DnsName("a.example")`: the name is what counts.
                    let names: Vec<String> = presented
                        .iter()
                        .map(|name| format!("`{}`", name.split('"').nth(1).unwrap_or(name)))
                        .collect();
                    let expected = expected.to_str();
                    if names.is_empty() {
                        format!("the certificate is not valid for `{expected}`: it names no host")
                    } else {
                        format!(
                            "the certificate is not valid for `{expected}`, only for {}",
                            names.join(", ")
                        )
                    }
                }
                other => other.to_string(),
            };
            format!("certificate verify failed: {reason}")
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake (alert `{alert:?}`)")
        }
        other => lowercase_first(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::http_test_server::{Reply, TestServer, refusing_port, response};
    use super::*;

    fn get(url: &str) -> HttpRequest<'_> {
        HttpRequest {
            url,
            method: "GET",
            headers: &[],
            body: None,
            timeout: Duration::from_secs(10),
            ca_file: None,
            insecure: false,
            follow_redirects: false,
        }
    }

    fn url_error(url: &str) -> String {
        parse_url(url).expect_err("an invalid URL").to_string()
    }

    #[test]
    fn refuses_urls_it_cannot_request() {
        assert!(url_error("example.com/health").contains("relative URL without a base"));
        assert!(url_error("ftp://example.com/").contains("the scheme `ftp` is not supported"));
        assert!(url_error("http://user:secret@example.com/").contains("credentials"));
        assert!(url_error("http://example.com:http/").contains("invalid port number"));
        assert!(url_error("http://[::1/").contains("invalid IPv6 address"));
        for url in ["x", "http://[::1", "http://a:b", "ftp://x"] {
            let message = url_error(url);
            assert!(!message.ends_with('.'), "{message}");
        }
        let url = parse_url("HTTPS://[::1]/x?ready#top").expect("a valid URL");
        assert_eq!(authority(&url), "[::1]:443");
    }

    #[test]
    fn refuses_header_injection_and_reserved_headers() {
        let cases = [
            (
                ("X-A", "one\r\nX-B: two"),
                "the value of header `X-A` contains",
            ),
            (("Bad Name", "x"), "`Bad Name` is not a header name"),
            (
                ("content-length", "5"),
                "header `content-length` is set by the engine",
            ),
        ];
        for ((name, value), expected) in cases {
            let headers = vec![(name.to_string(), value.to_string())];
            let error = header_map(&headers).expect_err("refused");
            assert!(error.to_string().contains(expected), "{error}");
            assert!(error.is_fatal());
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sends_method_headers_and_body_and_reads_the_response() {
        let mut server = TestServer::start(|_, _| response(201, "created")).await;
        let url = server.url("/items?kind=a");
        let headers = vec![("X-Probe".to_string(), "yes ".to_string())];
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
        assert_eq!(response.redirected_to, None);
        assert!(
            response
                .headers
                .contains(&("content-type".to_string(), "text/plain".to_string()))
        );
        let received = server.received(1).await.remove(0);
        let lower = received.to_ascii_lowercase();
        assert!(
            received.starts_with("PUT /items?kind=a HTTP/1.1\r\n"),
            "{received}"
        );
        assert!(lower.contains(&format!("\r\nhost: {}\r\n", server.address)));
        assert!(lower.contains("\r\nx-probe: yes\r\n"), "{received}");
        assert!(lower.contains("\r\nuser-agent: runbook\r\n"), "{received}");
        assert!(lower.contains("\r\ncontent-length: 7\r\n"), "{received}");
        assert!(received.ends_with("\r\n\r\npayload"), "{received}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_chunked_and_until_close_bodies_and_skips_interim_responses() {
        let server = TestServer::start(|index, _| match index {
            0 => Reply::Now(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
                    .to_vec(),
            ),
            _ => Reply::Now(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 503 Down\r\n\r\nbusy\nline".to_vec(),
            ),
        })
        .await;
        let response = send(get(&server.url("/"))).await.expect("a response");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"hello, world"[..])
        );
        let response = send(get(&server.url("/"))).await.expect("a response");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (503, &b"busy\nline"[..])
        );
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
        let mut exact =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY}\r\n\r\n").into_bytes();
        exact.extend_from_slice(&big[..MAX_BODY]);
        let replies = [with_length, until_close, chunked, exact];
        let server = TestServer::start(move |index, _| Reply::Now(replies[index].clone())).await;
        for _ in 0..3 {
            let response = send(get(&server.url("/"))).await.expect("a response");
            assert_eq!(response.body.len(), MAX_BODY);
            assert!(response.body_truncated);
        }
        let response = send(get(&server.url("/"))).await.expect("a response");
        assert_eq!(response.body.len(), MAX_BODY);
        assert!(!response.body_truncated);
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
        assert_eq!(
            error.to_string(),
            format!("cannot connect to `{address}`: connection refused (os error 111)")
        );

        let server = TestServer::start(|index, _| match index {
            0 => Reply::Now(b"SSH-2.0-OpenSSH\r\n".to_vec()),
            _ => Reply::Now(Vec::new()),
        })
        .await;
        let url = server.url("/");
        for _ in 0..2 {
            let error = send(get(&url)).await.expect_err("malformed");
            assert!(matches!(error, HttpError::Exchange { .. }), "{error:?}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("the exchange with `{}` failed: ", server.address)),
                "{error}"
            );
        }
    }

    #[test]
    fn a_ca_file_must_hold_pem_certificates() {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let missing = directory.path().join("missing.pem");
        assert_eq!(
            read_ca_file(&missing).expect_err("missing"),
            "no such file or directory"
        );
        let empty = directory.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        assert!(
            read_ca_file(&empty)
                .expect_err("no certificate")
                .starts_with("it holds no PEM certificate")
        );
    }
}
