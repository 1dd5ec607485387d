//! Checks on what a simulated phone decrypted: wait for a count, then every id exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use wasp::sim::Handle;

/// Waits (up to `within`) until `phone`'s phone decrypted `n` texts; answers them as (id, text).
pub async fn phone_got(
    sim: &Handle,
    phone: &str,
    n: usize,
    within: Duration,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + within;
    loop {
        let got: Vec<(String, String)> = sim
            .messages(phone)
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.text.unwrap_or_default()))
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{phone} got {} of {n}: {:?}",
            got.len(),
            sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every id once, each with its own text, and nothing else.
pub fn exactly_once(got: &[(String, String)], ids: &[String], texts: &[String]) {
    let mut seen = HashSet::new();
    for (id, _) in got {
        assert!(seen.insert(id.clone()), "{id} shown twice");
    }
    let want: HashMap<&String, &String> = ids.iter().zip(texts).collect();
    let have: HashMap<&String, &String> = got.iter().map(|(i, t)| (i, t)).collect();
    assert_eq!(have, want, "every message once, under its queued id");
}
