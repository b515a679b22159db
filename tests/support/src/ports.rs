//! Ports chosen up front, for servers that must come back on the same address.

/// A port of 127.0.0.1 free now. Whoever binds it next gets it: a server
/// started on it and killed can be started on it again, and the processes
/// that reach it find it there.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
