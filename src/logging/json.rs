//! The JSON-lines layer: each event as one JSON object per line, with the session of the
//! event or its nearest span (headless stdout and the live feed).

use std::fmt::Debug;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A layer writing each event as one JSON object per line:
/// `{"time":..,"level":"info","session":"sales-1"|null,"target":..,"message":..,"fields":{..}}`.
/// `session` comes from the event's own `session` field or the nearest span that has one.
#[derive(Debug)]
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(make_writer: W) -> Self {
        JsonLines { make_writer }
    }
}

/// The `session` field of a span, stored in its extensions.
struct SessionField(String);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(session), Some(span)) = (fields.session, ctx.span(id)) {
            span.extensions_mut().replace(SessionField(session));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let (Some(session), Some(span)) = (fields.session, ctx.span(id)) {
            span.extensions_mut().replace(SessionField(session));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let session = fields.session.or_else(|| {
            ctx.event_scope(event)?.find_map(|span| {
                span.extensions()
                    .get::<SessionField>()
                    .map(|found| found.0.clone())
            })
        });
        let mut time = String::new();
        // Formatting into a String cannot fail; an empty time is the worst outcome.
        let _ = SystemTime.format_time(&mut Writer::new(&mut time));
        let metadata = event.metadata();
        let line = serde_json::json!({
            "time": time,
            "level": metadata.level().as_str().to_ascii_lowercase(),
            "session": session,
            "target": metadata.target(),
            "message": fields.message.unwrap_or_default(),
            "fields": fields.others,
        });
        let mut text = line.to_string();
        text.push('\n');
        // A log line that cannot be written has nowhere else to go.
        let _ = self
            .make_writer
            .make_writer_for(metadata)
            .write_all(text.as_bytes());
    }
}

/// Collects an event's or span's fields into JSON values.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    session: Option<String>,
    others: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        match (field.name(), value) {
            ("message", serde_json::Value::String(text)) => self.message = Some(text),
            ("session", serde_json::Value::String(text)) => self.session = Some(text),
            ("session", other) => self.session = Some(other.to_string()),
            (name, value) => {
                self.others.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects written bytes so a test can read them back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    fn json_lines(captured: &Captured) -> Vec<serde_json::Value> {
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn json_lines_carry_the_session_of_the_enclosing_span() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", session = "sales-1");
            let _entered = span.enter();
            tracing::warn!(attempt = 3, cause = "conflict", "reconnecting");
        });
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "warn");
        assert_eq!(line["session"], "sales-1");
        assert_eq!(line["message"], "reconnecting");
        assert_eq!(line["fields"]["attempt"], 3);
        assert_eq!(line["fields"]["cause"], "conflict");
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }

    #[test]
    fn json_lines_without_a_session_say_null() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(sessions = 3_u64, "pool started");
        });
        let lines = json_lines(&captured);
        assert_eq!(lines[0]["session"], serde_json::Value::Null);
        assert_eq!(lines[0]["fields"]["sessions"], 3);
    }

    #[test]
    fn an_event_field_named_session_wins_over_the_span() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("pool", session = "outer");
            let _entered = span.enter();
            tracing::info!(session = "inner", "picked");
        });
        assert_eq!(json_lines(&captured)[0]["session"], "inner");
    }
}
