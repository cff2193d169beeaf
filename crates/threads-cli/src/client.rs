//! A small HTTP/1.1 client for the daemon's API on 127.0.0.1 (plain TCP, one request per
//! connection).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where the daemon is and how to authenticate.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `host:port`.
    pub(crate) addr: String,
    /// The bearer token.
    pub(crate) token: String,
}

/// An answer: the status and the JSON body.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The body.
    pub(crate) body: Value,
}

impl Client {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<TcpStream> {
        let mut stream = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connect to the daemon at {} (is it running?)", self.addr))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        Ok(stream)
    }

    /// Sends a request and reads the whole answer.
    ///
    /// # Errors
    /// The daemon cannot be reached or answers with something that is not HTTP and JSON.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let mut stream = self.send(method, path, body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("a malformed HTTP answer")?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status")?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let body = if body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body)
                .with_context(|| format!("a body that is not JSON: {body}"))?
        };
        Ok(Answer { status, body })
    }

    /// Sends a request and fails on a non-2xx answer, with the API's error message.
    ///
    /// # Errors
    /// As [`Client::call`], or the API's error.
    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let answer = self.call(method, path, body).await?;
        if !(200..300).contains(&answer.status) {
            let code = answer.body["error"]["code"].as_str().unwrap_or("error");
            let message = answer.body["error"]["message"].as_str().unwrap_or("");
            bail!("{code}: {message} (HTTP {})", answer.status);
        }
        Ok(answer.body)
    }

    /// Follows a Server-Sent Events stream, calling `each` with every event's data.
    ///
    /// # Errors
    /// The daemon cannot be reached or refuses.
    pub(crate) async fn events(
        &self,
        path: &str,
        mut each: impl FnMut(&str) -> bool,
    ) -> Result<()> {
        let stream = self.send("GET", path, None).await?;
        let mut lines = BufReader::new(stream).lines();
        let status = lines.next_line().await?.unwrap_or_default();
        if !status.contains(" 200 ") {
            bail!("the daemon refused: {status}");
        }
        while let Some(line) = lines.next_line().await? {
            if let Some(data) = line.strip_prefix("data: ")
                && !each(data)
            {
                break;
            }
        }
        Ok(())
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
