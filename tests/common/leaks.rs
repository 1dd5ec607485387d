//! Looking for key material where it must not be: a log sink for a capturing subscriber,
//! every printable form of a key (raw, base64 in four flavours, hex, a derived Debug's
//! `[1, 2, 3]`) cut into 12-byte windows, and a search of a haystack for any of them.
//! Include with `#[path = "common/leaks.rs"] mod leaks;`.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use tracing_subscriber::fmt::MakeWriter;

/// The window every needle has: long enough that no chance match happens, short enough
/// that any printed part of a key is caught.
const WINDOW: usize = 12;

/// A log sink shared by the capturing subscriber.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Both forms wasp writes its logs in, plain text and JSON, into this sink.
    pub fn layers<S>(&self) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer;
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(self.clone())
            .and_then(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(self.clone()),
            )
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Every form in which a key could show up, each as every 12-byte window.
pub fn leak_needles(keys: &[[u8; 32]]) -> Vec<Vec<u8>> {
    let mut needles = HashSet::new();
    for k in keys {
        let mut forms: Vec<Vec<u8>> = vec![k.to_vec()];
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(k).into_bytes());
        }
        forms.push(
            k.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        );
        forms.push(format!("{:?}", &k[..]).into_bytes());
        for form in forms {
            for window in form.windows(WINDOW) {
                needles.insert(window.to_vec());
            }
        }
    }
    needles.into_iter().collect()
}

/// The first needle found in `haystack` (as text), by one pass over its windows.
pub fn find_leak(haystack: &[u8], needles: &[Vec<u8>]) -> Option<String> {
    let set: HashSet<&[u8]> = needles.iter().map(Vec::as_slice).collect();
    haystack
        .windows(WINDOW)
        .find(|w| set.contains(w))
        .map(|n| String::from_utf8_lossy(n).into_owned())
}
