//! HTTP probes through the binary (SPEC §5): `https://` against a TLS server started here with
//! a CA and a certificate made here (trusted through `ca_file`, refused without it, accepted
//! with `insecure: true`), status lists, `body_json`, redirects, the body cap, and the proxy
//! from `HTTP_PROXY`. Every connection goes to 127.0.0.1 inside the test.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Output, Test, json_events};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

/// Generous: a hang fails the test, nothing here is about speed.
const LIMIT: Duration = Duration::from_secs(60);

/// What a scripted server answers: the raw response for a request's head.
type Respond = dyn Fn(&str) -> Vec<u8> + Send + Sync;

/// A complete response with `Content-Length`.
fn response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The head of one request, read up to the blank line.
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A plain HTTP server on 127.0.0.1; every request head it read is kept in `requests`.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(LIMIT));
                let Some(head) = read_head(&mut stream) else {
                    continue;
                };
                let reply = respond(&head);
                seen.lock().expect("requests").push(head);
                let _ = stream.write_all(&reply);
            }
        });
        Server { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

/// A CA and a certificate it signed for `names`.
struct Certificates {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

fn certificates(names: &[&str]) -> Certificates {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "runbook test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("a CA certificate");
    let server_key = KeyPair::generate().expect("a server key");
    let names: Vec<String> = names.iter().map(|name| (*name).to_string()).collect();
    let params = CertificateParams::new(names).expect("server parameters");
    let server = params
        .signed_by(&server_key, &ca)
        .expect("a server certificate");
    Certificates {
        ca_pem: ca.pem(),
        chain: vec![server.der().clone(), ca.der().clone()],
        key: server_key.serialize_der(),
    }
}

/// A TLS server on 127.0.0.1 presenting `certificates`; each connection gets `respond`.
/// A client that refuses the certificate just ends its connection.
fn start_tls(certificates: &Certificates, respond: Arc<Respond>) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificates.key.clone()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certificates.chain.clone(), key)
        .expect("a server TLS configuration");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(LIMIT));
            let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let Some(head) = read_head(&mut tls) else {
                continue;
            };
            let _ = tls.write_all(&respond(&head));
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

fn run(test: Test) -> (Output, Vec<Value>) {
    let output = test
        .args(["--yes", "--log-format", "json"])
        .run_within(LIMIT);
    assert!(
        !output.stderr.contains("panicked"),
        "panic:\n{}",
        output.snapshot()
    );
    let events = json_events(&output.stdout);
    (output, events)
}

fn runbook(probe: &str) -> String {
    format!(
        r#"
version: 1
name: http-probes
steps:
  - id: check
    verify:
      - name: health
{probe}
"#
    )
}

fn run_probe(probe: &str) -> (Output, Value) {
    run_probe_with(Test::new(), probe)
}

fn run_probe_with(test: Test, probe: &str) -> (Output, Value) {
    let test = test
        .runbook(&runbook(probe))
        .args(["run", "{file}", "--state-dir", "{dir}/state"]);
    let (output, events) = run(test);
    let event = events
        .iter()
        .find(|event| event["event"] == "probe_finished" && event["probe"] == "health")
        .cloned()
        .unwrap_or_else(|| panic!("no probe_finished:\n{}", output.snapshot()));
    (output, event)
}

fn message(event: &Value) -> &str {
    event["message"].as_str().unwrap_or_default()
}

fn tls_server() -> (Certificates, u16) {
    let certificates = certificates(&["127.0.0.1", "localhost"]);
    let port = start_tls(
        &certificates,
        Arc::new(|_: &str| response(200, "ok, over TLS")),
    );
    (certificates, port)
}

#[test]
fn https_with_the_ca_in_ca_file_passes() {
    let (certificates, port) = tls_server();
    let probe = format!(
        "        http: {{ url: \"https://127.0.0.1:{port}/health\", ca_file: certs/ca.pem, body_contains: over TLS }}"
    );
    let test = Test::new().file("certs/ca.pem", &certificates.ca_pem);
    let (output, event) = run_probe_with(test, &probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(event["passed"], true, "{event}");
    assert!(message(&event).starts_with("status 200 in "), "{event}");

    // The certificate names `localhost` too, so the name check passes there as well.
    let probe =
        format!("        http: {{ url: \"https://localhost:{port}/\", ca_file: certs/ca.pem }}");
    let test = Test::new().file("certs/ca.pem", &certificates.ca_pem);
    let (output, event) = run_probe_with(test, &probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(event["passed"], true, "{event}");
}

#[test]
fn https_with_an_unknown_ca_fails_naming_the_cause() {
    let (_certificates, port) = tls_server();
    let probe = format!("        http: {{ url: \"https://127.0.0.1:{port}/health\" }}");
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(event["passed"], false, "{event}");
    assert_eq!(
        message(&event),
        format!(
            "expected status 200, saw no response: TLS handshake with `127.0.0.1:{port}` failed: \
             certificate verify failed: unknown issuer\nhelp: give the CA's certificate in \
             `ca_file` (PEM), or set `insecure: true` to skip verification"
        )
    );
}

#[test]
fn https_to_a_name_the_certificate_does_not_cover_fails() {
    let certificates = certificates(&["service.internal"]);
    let port = start_tls(&certificates, Arc::new(|_: &str| response(200, "ok")));
    let probe = format!("        http: {{ url: \"https://127.0.0.1:{port}/\", ca_file: ca.pem }}");
    let test = Test::new().file("ca.pem", &certificates.ca_pem);
    let (output, event) = run_probe_with(test, &probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        message(&event).starts_with(&format!(
            "expected status 200, saw no response: TLS handshake with `127.0.0.1:{port}` failed: \
             certificate verify failed: the certificate is not valid for `127.0.0.1`, only for \
             `service.internal`"
        )),
        "{event}"
    );
}

#[test]
fn https_with_a_ca_file_that_is_not_pem_fails_at_validate() {
    let yaml = runbook("        http: { url: \"https://127.0.0.1:9/\", ca_file: ca.pem }");
    let output = Test::new()
        .file("ca.pem", "this is not a certificate\n")
        .runbook(&yaml)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("cannot use `ca_file` `ca.pem`: it holds no PEM certificate"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn https_with_a_missing_ca_file_warns_then_fails_the_probe_without_retrying() {
    let yaml = runbook(
        "        http: { url: \"https://127.0.0.1:9/\", ca_file: missing.pem }\n        within: 1m",
    );
    let validated = Test::new()
        .runbook(&yaml)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(validated.code, 0, "{}", validated.snapshot());
    assert!(
        validated
            .stderr
            .contains("`ca_file` `missing.pem` does not exist"),
        "{}",
        validated.snapshot()
    );

    let (output, event) = run_probe(
        "        http: { url: \"https://127.0.0.1:9/\", ca_file: missing.pem }\n        within: 1m",
    );
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(event["samples"], 1, "{event}");
    assert!(
        message(&event).starts_with("cannot use `ca_file` `[DIR]/missing.pem`: no such file"),
        "{event}"
    );
}

#[test]
fn insecure_passes_without_the_ca_and_validate_warns() {
    let (_certificates, port) = tls_server();
    let probe = format!(
        "        http: {{ url: \"https://127.0.0.1:{port}/health\", insecure: true, body_contains: ok }}"
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(event["passed"], true, "{event}");

    let yaml = runbook(&probe);
    let validated = Test::new()
        .runbook(&yaml)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(validated.code, 0, "{}", validated.snapshot());
    assert!(
        validated.stderr.contains(
            "probe `health` has `insecure: true`: the server's certificate is not verified"
        ),
        "{}",
        validated.snapshot()
    );
    let json = Test::new()
        .runbook(&yaml)
        .args(["validate", "--format", "json", "{file}"])
        .run();
    let report: Value = serde_json::from_str(&json.stdout).expect("JSON on stdout");
    let diagnostic = &report["files"][0]["diagnostics"][0];
    assert_eq!(
        (&diagnostic["code"], &diagnostic["severity"]),
        (&Value::from("probe-insecure"), &Value::from("warning")),
        "{report}"
    );
    let strict = Test::new()
        .runbook(&yaml)
        .args(["validate", "--strict", "{file}"])
        .run();
    assert_eq!(strict.code, 2, "{}", strict.snapshot());
}

#[test]
fn a_status_list_accepts_any_of_its_codes() {
    let server = Server::start(|_| response(204, ""));
    let probe = format!(
        "        http: {{ url: \"http://127.0.0.1:{}/\", status: [200, 204] }}",
        server.port
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(message(&event).split(" in ").next(), Some("status 204"));

    let probe = format!(
        "        http: {{ url: \"http://127.0.0.1:{}/\", status: [200, 201] }}",
        server.port
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(
        message(&event),
        "expected status 200 or 201, saw 204; body: empty"
    );
}

#[test]
fn body_json_matches_dotted_paths_and_names_a_mismatch() {
    let server = Server::start(|_| {
        response(
            200,
            r#"{"status": "ready", "checks": {"db": "ok", "cache": "down"}, "replicas": 3}"#,
        )
    });
    let port = server.port;
    let probe = format!(
        "        http:\n          url: \"http://127.0.0.1:{port}/health\"\n          body_json: {{ status: ready, \"checks.db\": ok, replicas: 3 }}"
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(event["passed"], true, "{event}");

    let probe = format!(
        "        http:\n          url: \"http://127.0.0.1:{port}/health\"\n          body_json: {{ status: ready, \"checks.cache\": ok, \"checks.queue\": ok }}"
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        message(&event).starts_with(
            "expected JSON `checks.cache` = `ok`, saw `\"down\"`; \
             expected JSON `checks.queue` = `ok`, saw no `checks.queue` in the body; body: "
        ),
        "{event}"
    );
}

#[test]
fn a_redirect_is_the_status_seen_unless_follow_redirects() {
    let server = Server::start(|head| {
        if head.starts_with("GET /old ") {
            b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec()
        } else {
            response(200, "the new place")
        }
    });
    let port = server.port;
    let probe = format!("        http: {{ url: \"http://127.0.0.1:{port}/old\" }}");
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert_eq!(
        message(&event),
        "expected status 200, saw 302 (a redirect to `/new`, not followed); body: empty"
    );

    let probe = format!("        http: {{ url: \"http://127.0.0.1:{port}/old\", status: 302 }}");
    let (output, _) = run_probe(&probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());

    let probe = format!(
        "        http: {{ url: \"http://127.0.0.1:{port}/old\", follow_redirects: true, body_contains: new place }}"
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert!(
        message(&event).starts_with(&format!(
            "status 200 from `http://127.0.0.1:{port}/new` in "
        )),
        "{event}"
    );
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|head| head.lines().next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "GET /old HTTP/1.1",
            "GET /old HTTP/1.1",
            "GET /old HTTP/1.1",
            "GET /new HTTP/1.1"
        ]
    );
}

#[test]
fn only_the_first_mebibyte_of_a_body_is_read() {
    let mut body = "x".repeat(2 * 1024 * 1024);
    body.push_str("the end");
    let server = Server::start(move |_| response(200, &body));
    let probe = format!(
        "        http: {{ url: \"http://127.0.0.1:{}/\", body_contains: the end }}",
        server.port
    );
    let (output, event) = run_probe(&probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        message(&event).starts_with(
            "expected the body to contain `the end`; body (the first 1 MiB of a longer body): \"xxx"
        ),
        "{event}"
    );
}

#[test]
fn http_proxy_is_honoured_and_no_proxy_bypasses_it() {
    // The "proxy" answers itself: what matters is that the request came to it, in the
    // absolute form a client sends to a proxy.
    let proxy = Server::start(|head| {
        if head.starts_with("GET http://service.invalid/health HTTP/1.1") {
            response(200, "via the proxy")
        } else {
            response(400, "not a proxy request")
        }
    });
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let probe = "        http: { url: \"http://service.invalid/health\", body_contains: via the proxy, timeout: 5s }";
    let with_proxy = |test: Test, no_proxy: &str| {
        test.env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("NO_PROXY", no_proxy)
            .env("no_proxy", no_proxy)
    };
    let (output, event) = run_probe_with(with_proxy(Test::new(), ""), probe);
    assert_eq!(output.code, 0, "{}", output.snapshot());
    assert_eq!(event["passed"], true, "{event}");
    assert_eq!(proxy.requests().len(), 1);

    let (output, event) = run_probe_with(with_proxy(Test::new(), "service.invalid"), probe);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    assert!(
        message(&event).starts_with("expected status 200, saw no response: "),
        "{event}"
    );
    assert_eq!(proxy.requests().len(), 1, "NO_PROXY sends it directly");
}

#[test]
fn validate_refuses_an_empty_body_json_path() {
    let yaml = runbook(
        "        http:\n          url: \"http://127.0.0.1:9/\"\n          body_json: { \"checks..db\": ok }",
    );
    let output = Test::new()
        .runbook(&yaml)
        .args(["validate", "{file}"])
        .run();
    assert_eq!(output.code, 2, "{}", output.snapshot());
    assert!(
        output
            .stderr
            .contains("`body_json` path `checks..db` has an empty segment"),
        "{}",
        output.snapshot()
    );
}

#[test]
fn a_secret_header_is_sent_and_masked_in_the_message() {
    // The server echoes the header it got, so the failure message quotes the secret.
    let server = Server::start(|head| {
        let authorization = head
            .lines()
            .find_map(|line| line.strip_prefix("authorization: "))
            .unwrap_or("none")
            .to_string();
        response(401, &format!("refused {authorization}"))
    });
    let yaml = format!(
        r#"
version: 1
name: http-secret
vars:
  token: {{ env: RB_TOKEN, secret: true }}
steps:
  - id: check
    verify:
      - name: health
        http:
          url: "http://127.0.0.1:{}/"
          headers: {{ Authorization: "Bearer {{{{vars.token}}}}" }}
"#,
        server.port
    );
    let test = Test::new()
        .runbook(&yaml)
        .env("RB_TOKEN", "s3cr3t-t0ken-value")
        .args(["run", "{file}", "--state-dir", "{dir}/state"]);
    let (output, events) = run(test);
    assert_eq!(output.code, 1, "{}", output.snapshot());
    let requests = server.requests();
    assert!(
        requests[0].contains("\r\nauthorization: Bearer s3cr3t-t0ken-value\r\n"),
        "{requests:?}"
    );
    let event = events
        .iter()
        .find(|event| event["event"] == "probe_finished")
        .expect("a probe_finished event");
    assert_eq!(
        message(event),
        "expected status 200, saw 401; body: \"refused Bearer ••••••\""
    );
    assert!(!output.stdout.contains("s3cr3t") && !output.stderr.contains("s3cr3t"));
}
