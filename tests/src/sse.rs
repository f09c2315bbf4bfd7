//! A reader of `text/event-stream` responses (server push of topic subscriptions).
//!
//! Parses the wire format as the HTML standard's event-stream interpretation does: lines end in
//! `\n`, `\r\n` or `\r`; `field: value` lines (one optional space after the colon) set `id`,
//! `event` and `data` (several `data` lines join with `\n`); a blank line dispatches the event; a
//! line starting with `:` is a comment, which the broker sends as a heartbeat on idle streams.
//! Comments are reported as they arrive, so a test can see heartbeats of an idle stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::client::{Client, Resp};
use crate::queue::Message;

/// Time allowed to connect and get the response head of a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// One event of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// What an event stream yields: an event, or a comment line (text after the `:`).
#[derive(Debug, Clone, PartialEq)]
pub enum SseItem {
    Event(SseEvent),
    Comment(String),
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An open event stream. Dropping it closes the connection.
pub struct SseStream {
    what: String,
    body: ByteStream,
    /// Bytes received but not yet split into lines.
    buf: Vec<u8>,
    /// The last chunk ended in `\r`: a `\n` starting the next one belongs to that line ending.
    after_cr: bool,
    /// The event being assembled from field lines.
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    ready: VecDeque<SseItem>,
    comments: usize,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").field("what", &self.what).finish()
    }
}

impl SseStream {
    /// `GET path` through `client` (with its bearer token), expecting 200 with content type
    /// `text/event-stream`. The stream has no overall time limit.
    pub async fn open(client: &Client, path: &str) -> SseStream {
        match Self::try_open(client, path).await {
            Ok(stream) => stream,
            Err(resp) => panic!("{resp}: expected a 200 event stream"),
        }
    }

    /// Like [`SseStream::open`], but a non-200 answer is returned (with its body) for the test
    /// to check.
    pub async fn try_open(client: &Client, path: &str) -> Result<SseStream, Resp> {
        let what = format!("GET {path} on {}", client.base());
        let http = reqwest::Client::builder()
            .connect_timeout(OPEN_TIMEOUT)
            .build()
            .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"));
        let mut req = http.get(format!("{}{path}", client.base())).header("Accept", "text/event-stream");
        if let Some(token) = client.bearer() {
            req = req.bearer_auth(token);
        }
        let response = tokio::time::timeout(OPEN_TIMEOUT, req.send())
            .await
            .unwrap_or_else(|_| panic!("{what}: no response head within {OPEN_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{what}: transport error: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status != 200 {
            let text = tokio::time::timeout(OPEN_TIMEOUT, response.text())
                .await
                .unwrap_or_else(|_| panic!("{what}: no error body within {OPEN_TIMEOUT:?}"))
                .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e}"));
            return Err(Resp {
                method: reqwest::Method::GET,
                path: path.to_string(),
                status,
                headers,
                json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
                text,
            });
        }
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{what}: content type {content_type:?}, expected text/event-stream"
        );
        let body = futures::stream::unfold(response, |mut r| async move {
            r.chunk().await.transpose().map(|chunk| (chunk, r))
        });
        Ok(SseStream::over(what, Box::pin(body)))
    }

    /// A reader of `body`; `what` names the stream in failure messages.
    fn over(what: String, body: ByteStream) -> SseStream {
        SseStream {
            what,
            body,
            buf: Vec::new(),
            after_cr: false,
            id: None,
            event: None,
            data: None,
            ready: VecDeque::new(),
            comments: 0,
        }
    }

    /// Comment lines (heartbeats) seen so far.
    pub fn comments(&self) -> usize {
        self.comments
    }

    /// The next event or comment, or `None` if none arrives within `within`. Fails the test if
    /// the stream ends or breaks.
    pub async fn next_item(&mut self, within: Duration) -> Option<SseItem> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let chunk = match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("{}: the stream ended", self.what),
                Ok(Some(Err(e))) => panic!("{}: the stream broke: {e}", self.what),
                Ok(Some(Ok(chunk))) => chunk,
            };
            self.feed(&chunk);
        }
    }

    /// The next event within `within`, skipping (and counting) comments; `None` if none arrives.
    pub async fn try_next_event(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_item(left).await? {
                SseItem::Event(e) => return Some(e),
                SseItem::Comment(_) => continue,
            }
        }
    }

    /// The next event as a delivered message, checked (see [`SseStream::next_message`]); `None`
    /// if none arrives within `within`.
    pub async fn try_next_message(&mut self, within: Duration) -> Option<Message> {
        let event = self.try_next_event(within).await?;
        Some(self.message(event))
    }

    /// The next event as a delivered message, checked: its `data` is a message object with a
    /// receipt, and the event `id` is the message id. Fails the test if none arrives in time.
    pub async fn next_message(&mut self, within: Duration) -> Message {
        match self.try_next_message(within).await {
            Some(message) => message,
            None => panic!("{}: no event within {within:?}", self.what),
        }
    }

    fn message(&self, event: SseEvent) -> Message {
        let message: Message = serde_json::from_str(&event.data)
            .unwrap_or_else(|e| panic!("{}: event data is not a message ({e}): {event:?}", self.what));
        assert_eq!(
            event.id.as_deref(),
            Some(message.id.as_str()),
            "{}: event id is not the message id: {event:?}",
            self.what
        );
        assert!(!message.receipt.is_empty(), "no receipt in {event:?}");
        assert!(message.receive_count >= 1, "receive_count below 1 in {event:?}");
        message
    }

    /// The next `n` messages, each within `within` of the previous one.
    pub async fn next_messages(&mut self, n: usize, within: Duration) -> Vec<Message> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            got.push(self.next_message(within).await);
        }
        got
    }

    /// Reads the stream for `period` and fails the test if an event arrives; returns how many
    /// comments arrived meanwhile.
    pub async fn expect_no_event_for(&mut self, period: Duration) -> usize {
        let deadline = Instant::now() + period;
        let before = self.comments;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.comments - before;
            }
            if let Some(SseItem::Event(e)) = self.next_item(left).await {
                panic!("{}: an event arrived while none was expected: {e:?}", self.what);
            }
        }
    }

    /// Reads the stream until the broker ends it, failing the test if it is still open after
    /// `within`; returns the messages that arrived before the end.
    pub async fn expect_end_within(&mut self, within: Duration) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + within;
        let mut got = Vec::new();
        loop {
            if let Some(item) = self.ready.pop_front() {
                if let SseItem::Event(e) = item {
                    got.push(self.message(e));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("{}: still open after {within:?}", self.what),
                Ok(None) | Ok(Some(Err(_))) => return got,
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
            }
        }
    }

    /// Splits received bytes into lines and interprets each complete one.
    fn feed(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            match self.buf[i] {
                b'\n' | b'\r' => {
                    let line = String::from_utf8_lossy(&self.buf[start..i]).into_owned();
                    if self.buf[i] == b'\r' {
                        if i + 1 == self.buf.len() {
                            self.after_cr = true;
                        } else if self.buf[i + 1] == b'\n' {
                            i += 1;
                        }
                    }
                    self.line(&line);
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        self.buf.drain(..start);
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            if let Some(mut data) = self.data.take() {
                // Every data line added a '\n'; the last one is not part of the data.
                data.pop();
                self.ready.push_back(SseItem::Event(SseEvent {
                    id: self.id.take(),
                    event: self.event.take(),
                    data,
                }));
            }
            self.id = None;
            self.event = None;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            self.comments += 1;
            self.ready.push_back(SseItem::Comment(comment.to_string()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => {
                let data = self.data.get_or_insert_with(String::new);
                data.push_str(value);
                data.push('\n');
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(chunks: &[&str]) -> (Vec<SseItem>, usize) {
        let mut s = SseStream::over("test".into(), Box::pin(futures::stream::empty()));
        for c in chunks {
            s.feed(c.as_bytes());
        }
        (s.ready.into_iter().collect(), s.comments)
    }

    fn event(id: Option<&str>, data: &str) -> SseItem {
        SseItem::Event(SseEvent { id: id.map(str::to_string), event: None, data: data.to_string() })
    }

    #[test]
    fn events_comments_and_line_endings() {
        let (items, comments) = parsed(&[
            "id: 1\ndata: {\"a\":1}\n\n:\n\n",
            "id: 2\r\nda",
            "ta:x\r",
            "\ndata: y\r\r: hb\n",
            "data:\ndata: z\n\n",
        ]);
        assert_eq!(
            items,
            vec![
                event(Some("1"), "{\"a\":1}"),
                SseItem::Comment(String::new()),
                event(Some("2"), "x\ny"),
                SseItem::Comment(" hb".to_string()),
                event(None, "\nz"),
            ]
        );
        assert_eq!(comments, 2);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let (items, _) = parsed(&["id: 7\n\ndata: z\n\n"]);
        assert_eq!(items, vec![event(None, "z")]);
    }
}
