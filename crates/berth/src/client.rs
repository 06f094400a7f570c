//! The Engine API client: HTTP/1.1 over berthd's unix socket or TCP (hyper), JSON in and out,
//! streamed bodies for loads, saves, logs and events, and hijacked connections for attach
//! and exec.
//!
//! Why not bollard: it decides a stream's framing by sniffing its first byte (a tty's raw
//! output starting with 0x01 is taken for a multiplexed header) and line-buffers the raw
//! output of exec and logs, so an interactive prompt without a newline never shows. The
//! command line knows whether a container has a tty, as the docker CLI does, and passes raw
//! bytes through as they come; and `run` must see the response head of `wait` before it
//! starts the container (that is what says the daemon is waiting). So this module speaks
//! the API itself; responses are read as JSON values by Docker's field names, which is also
//! what `--format` templates walk.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// berthd's default socket.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// The newest API version this client speaks.
const CLIENT_VERSION: (u32, u32) = (1, 44);

/// A request body.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A failure that ends the command with `code`; its message is printed unless empty.
#[derive(Debug)]
pub struct Exit {
    /// The process's exit status.
    pub code: i32,
    /// What to print on stderr.
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Ends the command with `code` and nothing more to say (the container's own status, or a
/// failure already reported).
pub fn exit(code: i32) -> anyhow::Error {
    Exit {
        code,
        message: String::new(),
    }
    .into()
}

/// The daemon said no: its status code and message.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Docker's `{"message": ...}`.
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for ApiError {}

/// The daemon's status for `e`, when it was the daemon's answer.
pub fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<ApiError>().map(|a| a.status)
}

/// A connection to berthd: where it listens and the API version both sides speak.
#[derive(Clone)]
pub struct Api {
    host: String,
    endpoint: Endpoint,
    version: String,
}

/// Where berthd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// `unix:///path` or `tcp://host[:port]` (port 2375 by default, as the docker CLI).
    fn parse(host: &str) -> anyhow::Result<Endpoint> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = host.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() {
                anyhow::bail!("invalid host {host:?}: tcp:// needs a host (tcp://host:port)");
            }
            let has_port = addr.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
            return Ok(Endpoint::Tcp(if has_port {
                addr.to_string()
            } else {
                format!("{addr}:2375")
            }));
        }
        anyhow::bail!("invalid host {host:?}: use unix:///path or tcp://host:port")
    }
}

/// A connection of either kind.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A body from bytes.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// How much a streamed body reads at once. ReaderStream's default (4 KiB) makes a 100 MB
/// archive 25,000 reads, each a round trip to tokio's blocking pool for a file.
pub const CHUNK: usize = 1 << 20;

/// A body streamed from a reader (a file, stdin).
pub fn streamed(reader: impl AsyncRead + Send + Sync + 'static) -> Body {
    let s = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK).map_ok(Frame::data);
    BodyExt::boxed(StreamBody::new(s))
}

/// Query parameters, `k=v&...`, percent-encoded.
pub fn query(params: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.finish()
}

impl Api {
    /// Connects to berthd at `host` (`unix:///path` or `tcp://host:port`) and agrees on an
    /// API version with it, as the docker CLI does (`_ping`'s `Api-Version`, capped at this
    /// client's).
    pub async fn connect(host: &str) -> anyhow::Result<Api> {
        let mut api = Api {
            host: host.to_string(),
            endpoint: Endpoint::parse(host)?,
            version: format!("{}.{}", CLIENT_VERSION.0, CLIENT_VERSION.1),
        };
        let resp = api.send(Method::GET, "/_ping", "", None, false).await?;
        if let Some(v) = resp
            .headers()
            .get("Api-Version")
            .and_then(|v| v.to_str().ok())
        {
            let parse = |v: &str| -> Option<(u32, u32)> {
                let (a, b) = v.split_once('.')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            };
            if let Some(server) = parse(v).filter(|s| *s < CLIENT_VERSION) {
                api.version = format!("{}.{}", server.0, server.1);
            }
        }
        Ok(api)
    }

    fn cannot_connect(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "Cannot connect to berthd at {}. Is berthd running? (start it with `berthd`, or point -H / BERTH_HOST at its socket)",
            self.host
        )
    }

    /// One request on a connection of its own; non-2xx answers become [`ApiError`]s.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<(Body, &str)>,
        upgrade: bool,
    ) -> anyhow::Result<Response<Incoming>> {
        let stream: Box<dyn Io> = match &self.endpoint {
            Endpoint::Unix(p) => Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|_| self.cannot_connect())?,
            ),
            Endpoint::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(|_| self.cannot_connect())?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| self.cannot_connect())?;
        tokio::spawn(conn.with_upgrades());
        let uri = if path == "/_ping" {
            path.to_string()
        } else if query.is_empty() {
            format!("/v{}{path}", self.version)
        } else {
            format!("/v{}{path}?{query}", self.version)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, "berth");
        if upgrade {
            req = req.header(CONNECTION, "Upgrade").header(UPGRADE, "tcp");
        }
        let req = match body {
            Some((b, ctype)) => req.header(CONTENT_TYPE, ctype).body(b)?,
            None => req.body(full(Bytes::new()))?,
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| anyhow::anyhow!("error during connect: {e}"))?;
        let status = resp.status();
        if status.is_success()
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::SWITCHING_PROTOCOLS
        {
            return Ok(resp);
        }
        let bytes = resp.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(ApiError {
            status: status.as_u16(),
            message,
        }
        .into())
    }

    /// A request whose answer is streamed: the caller reads the body.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<(Body, &str)>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.send(method, path, query, body, false).await
    }

    /// A request with a JSON answer (`null` for an empty one).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map(|b| (full(b.to_string()), "application/json"));
        let resp = self.send(method, path, query, body, false).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("unexpected answer from berthd to {path}: {e}"))
    }

    /// `GET` with a JSON answer.
    pub async fn get(&self, path: &str, query: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST` with a JSON answer.
    pub async fn post(
        &self,
        path: &str,
        query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.call(Method::POST, path, query, body).await
    }

    /// `HEAD`: the answer's headers.
    pub async fn head(&self, path: &str, query: &str) -> anyhow::Result<HeaderMap<HeaderValue>> {
        Ok(self
            .send(Method::HEAD, path, query, None, false)
            .await?
            .headers()
            .clone())
    }

    /// A hijacked connection (attach, exec start): after the daemon's `101`, the socket
    /// carries the container's streams both ways.
    pub async fn hijack(
        &self,
        path: &str,
        query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<impl AsyncRead + AsyncWrite + Unpin + Send> {
        let body = body.map(|b| (full(b.to_string()), "application/json"));
        let resp = self.send(Method::POST, path, query, body, true).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            anyhow::bail!(
                "berthd did not hand over the connection for {path} (status {})",
                resp.status()
            );
        }
        let upgraded = hyper::upgrade::on(resp).await?;
        Ok(TokioIo::new(upgraded))
    }

    /// `POST /containers/{id}/wait?condition=...`, returned once the daemon has answered
    /// with its headers (it then waits for the condition from the state the container was in
    /// when the request arrived); the future yields the exit status.
    pub async fn wait(
        &self,
        id: &str,
        condition: &str,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<i64>>> {
        let resp = self
            .send(
                Method::POST,
                &format!("/containers/{id}/wait"),
                &query(&[("condition", condition.to_string())]),
                None,
                false,
            )
            .await?;
        Ok(async move {
            let bytes = resp.into_body().collect().await?.to_bytes();
            let v: Value = serde_json::from_slice(&bytes)?;
            if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
                anyhow::bail!("{m}");
            }
            Ok(v["StatusCode"].as_i64().unwrap_or(-1))
        })
    }
}

/// A response body as a reader.
pub fn body_reader(resp: Response<Incoming>) -> impl AsyncRead + Unpin + Send {
    let stream = http_body_util::BodyStream::new(resp.into_body())
        .try_filter_map(|f| futures_util::future::ready(Ok(f.into_data().ok())))
        .map_err(std::io::Error::other);
    tokio_util::io::StreamReader::new(stream)
}

/// Runs `f` for each of `names` as Docker's multi-target commands do (`stop a b c`): each
/// success prints what `f` returns, each failure its error on stderr, and the command fails
/// at the end if any did.
pub async fn each<F, Fut>(names: &[String], mut f: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<String>>>,
{
    let mut failed = false;
    for n in names {
        match f(n.clone()).await {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    if failed {
        Err(exit(1))
    } else {
        Ok(())
    }
}

/// A name for a request path: kept as the docker CLI sends it (`registry:5000/app:v1`),
/// with only what would end or break the path percent-encoded.
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/@+=,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_the_docker_cli_takes_them() {
        assert_eq!(
            Endpoint::parse("unix:///run/b.sock").unwrap(),
            Endpoint::Unix("/run/b.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.2:2376").unwrap(),
            Endpoint::Tcp("10.0.0.2:2376".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://box").unwrap(),
            Endpoint::Tcp("box:2375".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]").unwrap(),
            Endpoint::Tcp("[::1]:2375".into())
        );
        for bad in ["tcp://", "ssh://x", "/run/b.sock"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
