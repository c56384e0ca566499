//! A minimal HTTP/1.0 client for the test service on 127.0.0.1: enough to read its version,
//! health and queue state without another dependency.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Status and body of `method path` on 127.0.0.1:`port`; None when nothing answers.
pub fn request(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.trim().to_string()))
}

pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    request(port, "GET", path)
}
