//! Server-sent events read from a byte stream split anywhere: `event:` and `data:` lines,
//! events ended by a blank line, comments (keep-alives) skipped.

/// One event: its name (`message` when none was given) and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// Collects bytes; yields each complete event once.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }
}

impl Iterator for SseParser {
    type Item = SseEvent;

    fn next(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.iter().position(|b| *b == b'\n')?;
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                let name = self.name.take();
                if let Some(data) = self.data.take() {
                    return Some(SseEvent {
                        name: name.unwrap_or_else(|| "message".into()),
                        data,
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => self.name = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = b": keep-alive\n\nevent: status\ndata: {\"a\":1}\n\nevent: log\ndata: one\r\ndata: two\n\ndata: plain\n\n";
        for cut in 0..text.len() {
            let mut parser = SseParser::default();
            parser.push(&text[..cut]);
            let mut events: Vec<SseEvent> = parser.by_ref().collect();
            parser.push(&text[cut..]);
            events.extend(parser.by_ref());
            let got: Vec<(&str, &str)> = events
                .iter()
                .map(|e| (e.name.as_str(), e.data.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    ("status", "{\"a\":1}"),
                    ("log", "one\ntwo"),
                    ("message", "plain")
                ],
                "cut at {cut}"
            );
        }
    }
}
