//! The CLI's client for the daemon's API on 127.0.0.1 (`reqwest`, no TLS: loopback only).
//! Paths are built from segments with [`path`], which percent-encodes each one, so keys,
//! collections and ids may hold `/`, `?`, spaces or any other character.

use anyhow::{Context, Result, bail};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

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

/// Characters left as they are in a path segment or a query value.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `/seg1/seg2/...`, each segment percent-encoded.
pub(crate) fn path(segments: &[&str]) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        out.extend(utf8_percent_encode(segment, KEEP));
    }
    out
}

/// A query value, percent-encoded.
pub(crate) fn query_value(value: &str) -> String {
    utf8_percent_encode(value, KEEP).to_string()
}

impl Client {
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::RequestBuilder> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).context("an HTTP method")?;
        let url = format!("http://{}{path}", self.addr);
        let mut request = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        Ok(request)
    }

    /// Sends a request and reads the whole answer.
    ///
    /// # Errors
    /// The daemon cannot be reached or answers with something that is not JSON.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let response = self
            .request(method, path, body)?
            .send()
            .await
            .with_context(|| format!("connect to the daemon at {} (is it running?)", self.addr))?;
        let status = response.status().as_u16();
        let text = response.text().await.context("read the answer")?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("a body that is not JSON: {text}"))?
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

    /// Sends `body` as `media` (or nothing) and returns the answer's bytes; fails on a
    /// non-2xx answer with the API's error message.
    ///
    /// # Errors
    /// The daemon cannot be reached, or refuses.
    pub(crate) async fn bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Vec<u8>> {
        let mut request = self.request(method, path, None)?;
        if let Some((bytes, media)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, media)
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("connect to the daemon at {} (is it running?)", self.addr))?;
        let status = response.status();
        let bytes = response.bytes().await.context("read the answer")?.to_vec();
        if !status.is_success() {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("error");
            let message = body["error"]["message"].as_str().unwrap_or("");
            bail!("{code}: {message} (HTTP {})", status.as_u16());
        }
        Ok(bytes)
    }

    /// Follows a Server-Sent Events stream, calling `each` with every event's data until it
    /// returns `false` or the stream ends.
    ///
    /// # Errors
    /// The daemon cannot be reached or refuses.
    pub(crate) async fn events(
        &self,
        path: &str,
        mut each: impl FnMut(&str) -> bool,
    ) -> Result<()> {
        let mut response = self
            .request("GET", path, None)?
            .send()
            .await
            .with_context(|| format!("connect to the daemon at {} (is it running?)", self.addr))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("the daemon refused ({status}): {text}");
        }
        let mut pending = String::new();
        while let Some(chunk) = response.chunk().await.context("read the stream")? {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(data) = line.trim_end_matches(['\r', '\n']).strip_prefix("data: ")
                    && !each(data)
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(
            path(&["v1", "threads", "t", "kv", "a/b c?d"]),
            "/v1/threads/t/kv/a%2Fb%20c%3Fd"
        );
        assert_eq!(query_value("x&y=z"), "x%26y%3Dz");
    }
}
