//! A free TCP port on the loopback address, for a server a test starts.

use std::net::TcpListener;

/// A port on 127.0.0.1 nothing listens on at the moment of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
