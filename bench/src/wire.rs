//! The measured phases' HTTP/1.1 client: one kept-alive `TcpStream` per concurrent slot, each
//! request written with one `write_all` from a reused buffer, each answer read into a reused
//! buffer and parsed just far enough to know its status and where it ends.
//!
//! Why not reqwest here: it costs this program 40-55 µs of CPU per request, which at 20,000
//! reports/s is more than half of the two cores the collector under test shares with it, and
//! makes the `/healthz` figure the client's limit rather than the server's. Setup, enrolment and
//! scraping `/metrics` still use reqwest, where cost does not matter.
//!
//! What it speaks: plain HTTP (no TLS), no pipelining (one request in flight per connection),
//! answers framed by `Content-Length` (204, 304 and 1xx may omit it). A chunked answer is an
//! error ([`WireError::Chunked`]), never a hang; so are a missing length, a bad status line, a
//! head over [`MAX_HEAD`] and bytes the server sent beyond the answer (it cannot be in step with
//! a client that never pipelines). After any error the connection is dropped and the next
//! request opens a new one; `Connection: close` (or an HTTP/1.0 answer without keep-alive) is
//! honoured the same way once the answer is read.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest status line plus headers accepted (the collector's are ~150 bytes).
pub const MAX_HEAD: usize = 8 * 1024;

/// How long one exchange (connect, write, read the whole answer) may take, as reqwest's was set.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why an exchange failed; the connection is closed afterwards.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed mid-exchange: {0}")]
    Io(std::io::Error),
    #[error("the server closed the connection before the answer was complete")]
    Closed,
    #[error("chunked answers are not supported")]
    Chunked,
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

impl WireError {
    /// The outcome class this error is counted under, as `hatang-load` prints it.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Connect(_) => "error: connect",
            Self::Timeout(_) => "error: timeout",
            Self::Io(_) | Self::Closed => "error: closed",
            Self::Chunked => "error: chunked",
            Self::Malformed(_) => "error: malformed",
        }
    }
}

/// Status line and headers of an answer, as far as framing needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of status line and headers, the blank line included.
    pub len: usize,
    /// Bytes of body after the head.
    pub content_length: usize,
    /// The server will close the connection after this answer.
    pub close: bool,
}

/// Parses the head at the start of `buf`: `Ok(None)` while `\r\n\r\n` has not arrived yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, WireError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() >= MAX_HEAD {
            return Err(WireError::Malformed("head larger than 8 KiB"));
        }
        // A status line that cannot become valid is refused now rather than after 8 KiB.
        check_version_prefix(buf)?;
        return Ok(None);
    };
    if end + 4 > MAX_HEAD {
        return Err(WireError::Malformed("head larger than 8 KiB"));
    }
    let mut lines = buf[..end].split(|&b| b == b'\n').map(|l| match l {
        [rest @ .., b'\r'] => rest,
        l => l,
    });
    let status_line = lines.next().unwrap_or_default();
    let (http10, status) = parse_status_line(status_line)?;
    let mut content_length: Option<usize> = None;
    let mut close = http10;
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(WireError::Malformed("header line without a colon"))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(WireError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(WireError::Chunked);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    let bodiless = matches!(status, 100..=199 | 204 | 304);
    let content_length = match content_length {
        Some(n) => n,
        None if bodiless => 0,
        None => return Err(WireError::Malformed("no Content-Length")),
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        content_length,
        close,
    }))
}

/// `HTTP/1.x SSS[ reason]`: (is HTTP/1.0, status).
fn parse_status_line(line: &[u8]) -> Result<(bool, u16), WireError> {
    let bad = WireError::Malformed("bad status line");
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(bad)?;
    let (&minor, rest) = rest
        .split_first()
        .ok_or(WireError::Malformed("bad status line"))?;
    let http10 = match minor {
        b'0' => true,
        b'1' => false,
        _ => return Err(WireError::Malformed("bad status line")),
    };
    let code = match rest {
        [b' ', a, b, c] | [b' ', a, b, c, b' ', ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit()) =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(WireError::Malformed("bad status line")),
    };
    if code < 100 {
        return Err(WireError::Malformed("bad status line"));
    }
    Ok((http10, code))
}

/// What has arrived of a status line must be a prefix of `HTTP/1.`.
fn check_version_prefix(buf: &[u8]) -> Result<(), WireError> {
    let n = buf.len().min(7);
    if buf[..n] == b"HTTP/1."[..n] {
        Ok(())
    } else {
        Err(WireError::Malformed("bad status line"))
    }
}

fn parse_decimal(value: &[u8]) -> Result<usize, WireError> {
    let bad = || WireError::Malformed("bad Content-Length");
    if value.is_empty() || value.len() > 15 || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    Ok(value
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

/// A request body and how it is labelled.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub content_type: &'a str,
    /// `Content-Encoding`, when the body is encoded (`gzip`).
    pub content_encoding: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// One request, to be written by [`encode`].
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    /// The whole `Authorization` value (`Bearer …`).
    pub authorization: Option<&'a [u8]>,
    pub body: Option<Body<'a>>,
}

/// Writes `request` for `host` into `out` (cleared first): no allocation once `out` is large
/// enough, the body copied in so the whole request leaves in one write.
pub fn encode(out: &mut Vec<u8>, host: &str, request: &Request<'_>) {
    out.clear();
    let mut put = |parts: &[&[u8]]| parts.iter().for_each(|p| out.extend_from_slice(p));
    put(&[
        request.method.as_bytes(),
        b" ",
        request.path.as_bytes(),
        b" HTTP/1.1\r\nHost: ",
        host.as_bytes(),
        b"\r\n",
    ]);
    if let Some(auth) = request.authorization {
        put(&[b"Authorization: ", auth, b"\r\n"]);
    }
    if let Some(body) = &request.body {
        put(&[b"Content-Type: ", body.content_type.as_bytes(), b"\r\n"]);
        if let Some(encoding) = body.content_encoding {
            put(&[b"Content-Encoding: ", encoding.as_bytes(), b"\r\n"]);
        }
    }
    let body = request.body.map_or(&[][..], |b| b.bytes);
    out.extend_from_slice(b"Content-Length: ");
    write!(out, "{}", body.len()).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Where the requests go: a resolved address and the `Host` header naming it.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
}

impl Endpoint {
    /// From a base URL such as `http://127.0.0.1:8080` (a path after the authority is ignored).
    pub async fn resolve(base: &str) -> anyhow::Result<Arc<Self>> {
        let rest = base.strip_prefix("http://").ok_or_else(|| {
            anyhow::anyhow!("{base}: the load generator speaks plain http:// only")
        })?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            anyhow::bail!("{base}: no host");
        }
        let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| anyhow::anyhow!("{base}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{base}: {with_port} resolves to nothing"))?;
        Ok(Arc::new(Self {
            addr,
            host: host.to_string(),
        }))
    }
}

/// One kept-alive connection (opened on first use, reopened after an error or a close) and its
/// answer buffer.
#[derive(Debug)]
pub struct Conn {
    endpoint: Arc<Endpoint>,
    stream: Option<TcpStream>,
    buf: Box<[u8]>,
    /// [`TIMEOUT`]; shorter in tests.
    timeout: Duration,
}

impl Conn {
    pub fn new(endpoint: Arc<Endpoint>) -> Self {
        Self {
            endpoint,
            stream: None,
            buf: vec![0; MAX_HEAD].into_boxed_slice(),
            timeout: TIMEOUT,
        }
    }

    /// Sends one encoded request and reads its whole answer: the status code.
    pub async fn send(&mut self, request: &[u8]) -> Result<u16, WireError> {
        let answer = tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .unwrap_or(Err(WireError::Timeout(self.timeout)));
        match answer {
            Ok(head) => {
                if head.close {
                    self.stream = None;
                }
                Ok(head.status)
            }
            Err(e) => {
                // Whatever state the stream is in, it is out of step now.
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Head, WireError> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.endpoint.addr)
                    .await
                    .map_err(WireError::Connect)?;
                // Requests are single writes already; Nagle would only delay them.
                s.set_nodelay(true).map_err(WireError::Connect)?;
                self.stream.insert(s)
            }
        };
        stream.write_all(request).await.map_err(WireError::Io)?;
        let mut filled = 0;
        let head = loop {
            if let Some(head) = parse_head(&self.buf[..filled])? {
                break head;
            }
            filled += read_some(stream, &mut self.buf[filled..]).await?;
        };
        // The body is drained through the same buffer, then dropped.
        let mut left = (head.len + head.content_length)
            .checked_sub(filled)
            .ok_or(WireError::Malformed("bytes beyond the answer"))?;
        while left > 0 {
            let n = read_some(stream, &mut self.buf).await?;
            left = left
                .checked_sub(n)
                .ok_or(WireError::Malformed("bytes beyond the answer"))?;
        }
        Ok(head)
    }
}

/// Reads at least one byte; end of stream is [`WireError::Closed`].
async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, WireError> {
    match stream.read(buf).await {
        Ok(0) => Err(WireError::Closed),
        Ok(n) => Ok(n),
        Err(e) => Err(WireError::Io(e)),
    }
}

/// Idle connections to one endpoint, kept between phases as reqwest's pool kept them, so the
/// measured phase runs on the connections its warm-up opened.
#[derive(Debug)]
pub struct Client {
    endpoint: Arc<Endpoint>,
    idle: Mutex<Vec<Conn>>,
}

impl Client {
    pub async fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::resolve(base).await?,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// An idle connection, or a new one (opened on its first request).
    pub fn checkout(&self) -> Conn {
        self.idle
            .lock()
            .expect("the pool lock is never poisoned")
            .pop()
            .unwrap_or_else(|| Conn::new(Arc::clone(&self.endpoint)))
    }

    pub fn checkin(&self, conn: Conn) {
        self.idle
            .lock()
            .expect("the pool lock is never poisoned")
            .push(conn);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const ANSWER: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n\
content-length: 21\r\ndate: Fri, 27 Nov 2026 08:00:00 GMT\r\n\r\n{\"status\":\"accepted\"}";

    fn head_of(bytes: &[u8]) -> Result<Option<Head>, WireError> {
        parse_head(bytes)
    }

    #[test]
    fn a_recorded_answer_parses_whatever_prefix_has_arrived() {
        let head_len = ANSWER.len() - 21;
        for cut in 0..=ANSWER.len() {
            let got = head_of(&ANSWER[..cut]).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            if cut < head_len {
                assert_eq!(got, None, "cut {cut}");
            } else {
                assert_eq!(
                    got,
                    Some(Head {
                        status: 202,
                        len: head_len,
                        content_length: 21,
                        close: false
                    }),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn connection_close_and_http10_mean_reconnect() {
        let close = head_of(b"HTTP/1.1 503 Busy\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n");
        assert!(close.unwrap().unwrap().close);
        let old = head_of(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert!(old.unwrap().unwrap().close);
        let kept =
            head_of(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n");
        assert!(!kept.unwrap().unwrap().close);
    }

    #[test]
    fn framing_errors_are_errors() {
        let cases: [(&[u8], &str); 8] = [
            (b"HTTP/1.1 200 OK\r\n\r\n", "error: malformed"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                "error: chunked",
            ),
            (
                b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
                "error: malformed",
            ),
            (
                b"HTTP/2 200\r\nContent-Length: 0\r\n\r\n",
                "error: malformed",
            ),
            (b"SSH-2.0-OpenSSH_9.2\r\n", "error: malformed"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "error: malformed",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "error: malformed",
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                "error: malformed",
            ),
        ];
        for (bytes, class) in cases {
            let err = head_of(bytes).expect_err(&String::from_utf8_lossy(bytes));
            assert_eq!(err.class(), class, "{}", String::from_utf8_lossy(bytes));
        }
        // Without a length, only answers that never have a body are framed.
        let empty = head_of(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((empty.status, empty.content_length), (204, 0));
        let endless = vec![b'x'; MAX_HEAD];
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.extend_from_slice(&endless);
        assert_eq!(head_of(&big).unwrap_err().class(), "error: malformed");
    }

    #[test]
    fn a_request_is_one_buffer_with_its_length() {
        let mut out = Vec::new();
        let body = Body {
            content_type: "application/json",
            content_encoding: Some("gzip"),
            bytes: b"\x1f\x8b...",
        };
        let request = Request {
            method: "POST",
            path: "/api/v1/reports",
            authorization: Some(b"Bearer k"),
            body: Some(body),
        };
        encode(&mut out, "127.0.0.1:9", &request);
        assert_eq!(
            out,
            b"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAuthorization: Bearer k\r\n\
Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\n\x1f\x8b..."
        );
        let get = Request {
            method: "GET",
            path: "/healthz",
            authorization: None,
            body: None,
        };
        encode(&mut out, "h", &get);
        assert_eq!(
            out,
            b"GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
        );
    }

    /// A server that answers every request (a head up to its blank line) with `answer`, written
    /// a byte at a time when `dribble`; counts the connections it accepted.
    async fn scripted(answer: &'static [u8], dribble: bool) -> (Arc<Endpoint>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                s.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            if dribble {
                                for b in answer {
                                    s.write_all(&[*b]).await.unwrap();
                                    tokio::time::sleep(Duration::from_micros(200)).await;
                                }
                            } else {
                                s.write_all(answer).await.unwrap();
                            }
                        }
                    }
                });
            }
        });
        let endpoint = Endpoint::resolve(&format!("http://{addr}")).await.unwrap();
        (endpoint, accepted)
    }

    fn healthz(host: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let get = Request {
            method: "GET",
            path: "/healthz",
            authorization: None,
            body: None,
        };
        encode(&mut out, host, &get);
        out
    }

    /// `send` bounded, so a client that hangs fails the test instead of stalling it.
    async fn send(conn: &mut Conn, request: &[u8]) -> Result<u16, WireError> {
        tokio::time::timeout(Duration::from_secs(5), conn.send(request))
            .await
            .expect("the client answers within 5 s")
    }

    #[tokio::test]
    async fn an_answer_split_into_single_bytes_is_read_whole_and_the_connection_kept() {
        let (endpoint, accepted) = scripted(ANSWER, true).await;
        let request = healthz(&endpoint.host);
        let mut conn = Conn::new(endpoint);
        for _ in 0..3 {
            assert_eq!(send(&mut conn, &request).await.unwrap(), 202);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one kept-alive connection"
        );
    }

    #[tokio::test]
    async fn bad_answers_are_errors_and_the_next_request_reconnects() {
        let cases: [(&'static [u8], &str); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                "error: chunked",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok",
                "error: malformed",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
                "error: malformed",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "error: timeout",
            ),
        ];
        for (answer, class) in cases {
            let (endpoint, accepted) = scripted(answer, false).await;
            let request = healthz(&endpoint.host);
            let mut conn = Conn::new(endpoint);
            conn.timeout = Duration::from_millis(300);
            for round in 1..=2 {
                let err = send(&mut conn, &request).await.unwrap_err();
                assert_eq!(err.class(), class, "{}", String::from_utf8_lossy(answer));
                assert_eq!(accepted.load(Ordering::SeqCst), round, "reconnected");
            }
        }
    }

    #[tokio::test]
    async fn refused_and_closed_connections_are_counted_apart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let endpoint = Endpoint::resolve(&format!("http://{addr}")).await.unwrap();
        let mut conn = Conn::new(Arc::clone(&endpoint));
        let err = send(&mut conn, &healthz(&endpoint.host)).await.unwrap_err();
        assert_eq!(err.class(), "error: connect");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let endpoint = Endpoint::resolve(&format!("http://{addr}")).await.unwrap();
        let mut conn = Conn::new(Arc::clone(&endpoint));
        let err = send(&mut conn, &healthz(&endpoint.host)).await.unwrap_err();
        assert_eq!(err.class(), "error: closed");
    }

    #[tokio::test]
    async fn endpoints_are_plain_http_only() {
        let https = Endpoint::resolve("https://127.0.0.1:1").await.unwrap_err();
        assert!(https.to_string().contains("plain http://"), "{https}");
        let e = Endpoint::resolve("http://127.0.0.1:8080/x").await.unwrap();
        assert_eq!((e.host.as_str(), e.addr.port()), ("127.0.0.1:8080", 8080));
        assert_eq!(
            Endpoint::resolve("http://[::1]").await.unwrap().addr.port(),
            80
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_head(&bytes);
        }

        #[test]
        fn a_valid_head_then_noise_never_panics(noise in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut bytes = ANSWER[..ANSWER.len() - 21].to_vec();
            bytes.extend_from_slice(&noise);
            let head = parse_head(&bytes).unwrap().unwrap();
            proptest::prop_assert_eq!(head.content_length, 21);
        }
    }
}
