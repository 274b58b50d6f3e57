//! The little HTTP/1.1 this server needs: find a request head, parse it, frame a response.

use crate::MAX_HEAD;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads until `buf[..end]` holds a whole request head. `Err(None)`: the peer closed (or the
/// socket failed), nothing to answer; `Err(Some(why))`: answer 400.
pub(crate) async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<usize, Option<&'static str>> {
    let mut chunk = [0u8; 4096];
    loop {
        match head_end(buf) {
            Some(end) if end <= MAX_HEAD => return Ok(end),
            _ if buf.len() >= MAX_HEAD => return Err(Some("head too large")),
            _ => {}
        }
        match stream.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => return Err(None),
            Ok(0) => return Err(Some("truncated head")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(None),
        }
    }
}

/// Index just past the blank line ending the head (CRLF or bare LF line ends).
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            if i == start || buf[start..i] == *b"\r" {
                return Some(i + 1);
            }
            start = i + 1;
        }
    }
    None
}

/// A parsed request head, borrowing the read buffer.
#[derive(Debug, PartialEq)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
}

impl Request<'_> {
    /// The first value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The target without its query string.
    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(self.target)
    }

    /// Whether the connection stays open. A request with a body closes it: bodies are not read.
    pub(crate) fn keep_alive(&self) -> bool {
        let has = |h: &str, token: &str| {
            self.header(h)
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        let has_body = self.header("transfer-encoding").is_some()
            || self
                .header("content-length")
                .is_some_and(|v| v.trim() != "0");
        let wanted = match self.version {
            "HTTP/1.1" => !has("connection", "close"),
            _ => has("connection", "keep-alive"),
        };
        wanted && !has_body
    }
}

/// Parses a request head as found by [`head_end`]. Errors are the reason logged with the 400.
pub(crate) fn parse_request(head: &[u8]) -> Result<Request<'_>, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "head is not UTF-8")?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("bad method");
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("bad target");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported version");
    }
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("header without colon")?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("bad header name"); // also rejects obsolete line folding
        }
        headers.push((name, value.trim()));
    }
    Ok(Request {
        method,
        target,
        version,
        headers,
    })
}

/// A whole `text/plain` response; `head_only` (for HEAD) keeps the length but drops the body.
pub(crate) fn response(status: &str, body: &str, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: {conn}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
