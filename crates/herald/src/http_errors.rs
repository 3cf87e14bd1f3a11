//! JSON bodies for the errors hyper writes itself. When a request cannot even be parsed
//! (a malformed Content-Length, bytes that are not HTTP, a head that is too large or
//! too slow), hyper answers before the router sees anything, with a status line and an
//! empty body, which the SDKs cannot parse. This wrapper around a connection's socket
//! recognises such an answer as it is written (a 4xx or 5xx head with
//! `content-length: 0`; every answer of the router carries a JSON body) and writes the
//! documented error shape in its place.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct JsonErrorIo<S> {
    inner: S,
    /// A rewritten answer being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonErrorIo<S> {
    pub fn new(inner: S) -> JsonErrorIo<S> {
        JsonErrorIo {
            inner,
            pending: None,
        }
    }
}

/// The JSON answer that replaces `head`, if `head` is one of hyper's empty error answers.
fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    if !(head.starts_with(b"HTTP/1.1 4") || head.starts_with(b"HTTP/1.1 5"))
        || !head.ends_with(b"\r\n\r\n")
    {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let empty = text
        .split("\r\n")
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    let status_line = text.split("\r\n").next()?;
    let code: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let reason = status_line.splitn(3, ' ').nth(2).unwrap_or("error");
    let kind = match code {
        413 => "payload_too_large",
        500..=599 => "server_error",
        _ => "generic_error",
    };
    let body = serde_json::json!({
        "code": kind,
        "detail": format!("{reason}: the request could not be read as HTTP/1.1"),
    })
    .to_string();
    let mut out = String::with_capacity(text.len() + body.len() + 64);
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        if line.eq_ignore_ascii_case("content-length: 0") {
            out.push_str("content-type: application/json\r\n");
            out.push_str(&format!("content-length: {}\r\n", body.len()));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrorIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrorIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(replacement) => this.pending = Some((replacement, 0)),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // Write the whole replacement, then report the original bytes as written (hyper
        // calls again with the same bytes while this returns Pending).
        while let Some((bytes, done)) = this.pending.as_mut() {
            if *done == bytes.len() {
                this.pending = None;
                return Poll::Ready(Ok(buf.len()));
            }
            match Pin::new(&mut this.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each answer's head as one buffer, which is what
    // `rewrite` looks at.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_error_answers_get_a_json_body_and_others_pass() {
        let head = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite(head).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: x"));
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["code"], "generic_error");
        assert!(rewrite(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-length: 30\r\n\r\n").is_none());
    }
}
