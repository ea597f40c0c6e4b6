//! A Server-Sent Events parser (the WHATWG "event stream interpretation", for what the
//! revocation feed sends): lines ending in LF or CRLF, `event`, `data` and `id` fields,
//! comments (keep-alives) skipped, a blank line dispatching. Bounded: an event larger
//! than the limit is an error, not a growing buffer.

use crate::FetchError;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field (`message` when absent).
    pub(crate) event: String,
    /// The `data` lines, joined by LF.
    pub(crate) data: String,
    /// The `id` field of this event, if it had one.
    pub(crate) id: Option<String>,
}

/// Bytes in, events out.
#[derive(Debug)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    id: Option<String>,
    /// Most bytes one event (its lines together) may take.
    max: usize,
    held: usize,
}

impl SseParser {
    pub(crate) fn new(max: usize) -> Self {
        SseParser {
            line: Vec::new(),
            event: String::new(),
            data: String::new(),
            id: None,
            max,
            held: 0,
        }
    }

    /// Reads `bytes`; returns the events they complete.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, FetchError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.held += 1;
                if self.held > self.max {
                    return Err(FetchError::TooLarge);
                }
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = std::mem::take(&mut self.line);
            if line.is_empty() {
                if let Some(e) = self.dispatch() {
                    out.push(e);
                }
                continue;
            }
            let line = std::str::from_utf8(&line)
                .map_err(|_| FetchError::Invalid("event stream is not UTF-8"))?;
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => value.clone_into(&mut self.event),
                "data" => {
                    self.data.push_str(value);
                    self.data.push('\n');
                }
                "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(out)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        self.held = 0;
        let event = std::mem::take(&mut self.event);
        let id = self.id.take();
        if self.data.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b": keep-alive\n\nevent: revoked\nid: 7\ndata: {\"a\":\ndata: 1}\n\r\n:\n\nevent: end\r\ndata:{\"reason\":\"max_age\"}\n\n";
        for split in 0..stream.len() {
            let mut p = SseParser::new(1024);
            let mut got = p.feed(&stream[..split]).unwrap();
            got.extend(p.feed(&stream[split..]).unwrap());
            assert_eq!(
                got,
                [
                    SseEvent {
                        event: "revoked".into(),
                        data: "{\"a\":\n1}".into(),
                        id: Some("7".into()),
                    },
                    SseEvent {
                        event: "end".into(),
                        data: "{\"reason\":\"max_age\"}".into(),
                        id: None,
                    },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_oversized_event_is_an_error_not_a_buffer() {
        let mut p = SseParser::new(16);
        assert!(matches!(
            p.feed(b"data: 0123456789abcdef"),
            Err(FetchError::TooLarge)
        ));
        // Keep-alives alone never add up.
        let mut p = SseParser::new(16);
        for _ in 0..1000 {
            assert!(p.feed(b":\n\n").unwrap().is_empty());
        }
    }
}
