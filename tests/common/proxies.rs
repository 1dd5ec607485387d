//! Small real proxies on 127.0.0.1 for the proxy tests: a SOCKS5 server (RFC 1928, CONNECT
//! only, with no authentication or RFC 1929 user/password) and an HTTP CONNECT proxy
//! (optional Basic credentials). Each relays bytes both ways once the tunnel stands, counts
//! the tunnels it opened and records the local address of each outbound connection (what
//! the far side sees as its peer). Include with `#[path = "common/proxies.rs"] mod proxies;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Which protocol the proxy speaks, and the user name and password it demands, if any.
#[derive(Clone, Debug)]
pub enum Kind {
    Socks5(Option<(String, String)>),
    HttpConnect(Option<(String, String)>),
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    kind: Kind,
    outbound: Arc<Mutex<Vec<SocketAddr>>>,
    refusals: Arc<Mutex<Vec<String>>>,
    cancel: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Proxy {
    pub async fn start(kind: Kind) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            kind: kind.clone(),
            outbound: Arc::default(),
            refusals: Arc::default(),
            cancel: CancellationToken::new(),
        };
        let (outbound, refusals, cancel) = (
            proxy.outbound.clone(),
            proxy.refusals.clone(),
            proxy.cancel.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let (kind, outbound, refusals) = (kind.clone(), outbound.clone(), refusals.clone());
                let cancel = cancel.child_token();
                tokio::spawn(async move {
                    let opened = match &kind {
                        Kind::Socks5(auth) => socks5(client, auth.as_ref()).await,
                        Kind::HttpConnect(auth) => http_connect(client, auth.as_ref()).await,
                    };
                    match opened {
                        Ok((mut client, mut server)) => {
                            outbound.lock().unwrap().push(server.local_addr().unwrap());
                            tokio::select! {
                                _ = cancel.cancelled() => {}
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            }
                        }
                        Err(why) => refusals.lock().unwrap().push(why),
                    }
                });
            }
        });
        proxy
    }

    /// The URL a session writes in its config, with `password` in place of the real one
    /// when given (to provoke an authentication failure).
    pub fn url_with(&self, password: Option<&str>) -> String {
        let (scheme, auth) = match &self.kind {
            Kind::Socks5(auth) => ("socks5", auth),
            Kind::HttpConnect(auth) => ("http", auth),
        };
        match auth {
            Some((user, real)) => {
                let pass = password.unwrap_or(real);
                format!("{scheme}://{user}:{pass}@{}", self.addr)
            }
            None => format!("{scheme}://{}", self.addr),
        }
    }

    pub fn url(&self) -> String {
        self.url_with(None)
    }

    /// Tunnels opened so far.
    pub fn relayed(&self) -> usize {
        self.outbound.lock().unwrap().len()
    }

    /// The local address of every outbound connection it opened.
    pub fn outbound(&self) -> Vec<SocketAddr> {
        self.outbound.lock().unwrap().clone()
    }

    /// Why it refused clients so far.
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }
}

type Opened = Result<(TcpStream, TcpStream), String>;

async fn read_n(s: &mut TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(buf)
}

/// RFC 1928 with RFC 1929: greeting, optional sub-negotiation, one CONNECT request.
async fn socks5(mut client: TcpStream, auth: Option<&(String, String)>) -> Opened {
    let head = read_n(&mut client, 2).await?;
    if head[0] != 5 {
        return Err(format!("not SOCKS5: version {}", head[0]));
    }
    let methods = read_n(&mut client, usize::from(head[1])).await?;
    let wanted = if auth.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        let _ = client.write_all(&[5, 0xff]).await;
        return Err(format!("no acceptable method in {methods:?}"));
    }
    client
        .write_all(&[5, wanted])
        .await
        .map_err(|e| e.to_string())?;
    if let Some((user, pass)) = auth {
        let ver = read_n(&mut client, 2).await?;
        if ver[0] != 1 {
            return Err(format!("bad sub-negotiation version {}", ver[0]));
        }
        let got_user = read_n(&mut client, usize::from(ver[1])).await?;
        let plen = read_n(&mut client, 1).await?[0];
        let got_pass = read_n(&mut client, usize::from(plen)).await?;
        if got_user != user.as_bytes() || got_pass != pass.as_bytes() {
            let _ = client.write_all(&[1, 1]).await;
            return Err("bad user name or password".into());
        }
        client.write_all(&[1, 0]).await.map_err(|e| e.to_string())?;
    }
    let req = read_n(&mut client, 4).await?;
    if req[0] != 5 || req[2] != 0 {
        return Err(format!("bad request header {req:?}"));
    }
    let host = match req[3] {
        1 => {
            let a = read_n(&mut client, 4).await?;
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
        3 => {
            let len = read_n(&mut client, 1).await?[0];
            String::from_utf8(read_n(&mut client, usize::from(len)).await?)
                .map_err(|e| e.to_string())?
        }
        4 => {
            let a: [u8; 16] = read_n(&mut client, 16).await?.try_into().unwrap();
            format!("[{}]", std::net::Ipv6Addr::from(a))
        }
        other => {
            let _ = client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            return Err(format!("address type {other}"));
        }
    };
    let port = u16::from_be_bytes(read_n(&mut client, 2).await?.try_into().unwrap());
    if req[1] != 1 {
        let _ = client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        return Err(format!("command {}", req[1]));
    }
    let server = match TcpStream::connect(format!("{host}:{port}")).await {
        Ok(s) => s,
        Err(e) => {
            let _ = client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            return Err(format!("target {host}:{port}: {e}"));
        }
    };
    let bound = server.local_addr().unwrap();
    let mut reply = vec![5, 0, 0];
    match bound {
        SocketAddr::V4(a) => {
            reply.push(1);
            reply.extend(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            reply.push(4);
            reply.extend(a.ip().octets());
        }
    }
    reply.extend(bound.port().to_be_bytes());
    client.write_all(&reply).await.map_err(|e| e.to_string())?;
    Ok((client, server))
}

/// `CONNECT host:port HTTP/1.1` with an optional `Proxy-Authorization: Basic`.
async fn http_connect(mut client: TcpStream, auth: Option<&(String, String)>) -> Opened {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err("head too long".into());
        }
        head.push(client.read_u8().await.map_err(|e| e.to_string())?);
    }
    let text = String::from_utf8(head).map_err(|e| e.to_string())?;
    let mut lines = text.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request.split(' ').collect();
    if parts.len() != 3 || parts[0] != "CONNECT" || parts[2] != "HTTP/1.1" {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return Err(format!("bad request line {request:?}"));
    }
    if let Some((user, pass)) = auth {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let given = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
            .map(|(_, value)| value.trim().to_string());
        if given.as_deref() != Some(expected.as_str()) {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
                .await;
            return Err("bad or missing credentials".into());
        }
    }
    let server = match TcpStream::connect(parts[1]).await {
        Ok(s) => s,
        Err(e) => {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return Err(format!("target {}: {e}", parts[1]));
        }
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    Ok((client, server))
}

/// A loopback port nothing listens on (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
