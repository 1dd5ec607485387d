//! The deliverer: sends each session's oldest queued event (never two of one session at
//! once, so order holds), at most `CONCURRENCY` sessions at a time. After a 2xx the event
//! leaves the queue; 5xx, 408, 429, network errors and timeouts wait `retry_base * 2^n`
//! (capped at `retry_cap`, each wait drawn between half and all of it) and try again until
//! `give_up_after`; any other answer moves the event to the dead letters at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::client::{Answer, post};
use super::sign::SIGNATURE_HEADER;
use super::{WebhookSetup, now_ms};
use crate::store::keys::KeysError;
use crate::store::webhook_queue::Delivery;

/// Sessions whose head is being sent at once.
const CONCURRENCY: usize = 32;
/// The queue is looked at again at least this often (redeliveries, a failed read).
const POLL: Duration = Duration::from_secs(1);

/// What to do with an event after one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry(String),
    Dead(String),
}

/// The verdict on `answer`: 2xx delivered; 408, 429, 5xx and no answer retried; the rest dead.
pub fn judge(answer: &Answer) -> Verdict {
    match answer {
        Answer::Status(s) if (200..300).contains(s) => Verdict::Delivered,
        Answer::Status(s @ (408 | 429 | 500..=599)) => {
            Verdict::Retry(format!("the receiver answered {s}"))
        }
        Answer::Status(s) => Verdict::Dead(format!("the receiver answered {s}")),
        Answer::Failed(why) => Verdict::Retry(why.clone()),
    }
}

/// How long to wait before try `attempt + 1` (after `attempt` failures, from 1): the capped
/// exponential delay, scaled by a random factor in [0.5, 1].
pub fn backoff(base: Duration, cap: Duration, attempt: u32, rng: &mut impl Rng) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(cap).mul_f64(rng.gen_range(0.5..=1.0))
}

async fn blocking<T: Send + 'static>(
    setup: &WebhookSetup,
    f: impl FnOnce(&crate::store::keys::KeyStore) -> Result<T, KeysError> + Send + 'static,
) -> Option<T> {
    let keys = setup.keys.clone();
    match tokio::task::spawn_blocking(move || f(&keys)).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            warn!(error = %e, "webhook queue");
            None
        }
        Err(_) => None,
    }
}

pub(super) async fn run(setup: WebhookSetup, cancel: CancellationToken) {
    let mut flying: HashSet<String> = HashSet::new();
    let mut tries: JoinSet<(Delivery, Answer)> = JoinSet::new();
    // Which session each try is for, so a try that ended abnormally frees its session.
    let mut owner: HashMap<tokio::task::Id, String> = HashMap::new();
    loop {
        let mut wake = tokio::time::Instant::now() + POLL;
        // Read once a round: a reload applies from the next try.
        let (targets, settings) = (setup.hooks.targets(), setup.settings());
        if let Some(heads) = blocking(&setup, |k| k.webhook_heads()).await {
            let now = now_ms();
            for head in heads {
                if flying.contains(&head.session) || flying.len() >= CONCURRENCY {
                    continue;
                }
                if head.next_at > now {
                    let at =
                        tokio::time::Instant::now() + Duration::from_millis(head.next_at - now);
                    wake = wake.min(at);
                    continue;
                }
                let Some(url) = targets.url(&head.session).cloned() else {
                    let why = "no webhook is configured for this session any more";
                    let seq = head.seq;
                    if blocking(&setup, move |k| k.webhook_bury(seq, why, now_ms()))
                        .await
                        .is_some()
                    {
                        setup.metrics.webhook_dead.inc();
                    }
                    continue;
                };
                flying.insert(head.session.clone());
                let session = head.session.clone();
                let mut headers = vec![
                    ("x-wasp-event", head.event.clone()),
                    ("x-wasp-delivery", head.seq.to_string()),
                ];
                if let Some(secret) = &settings.secret {
                    headers.push((SIGNATURE_HEADER, secret.sign(head.body.as_bytes())));
                }
                let timeout = settings.config.timeout;
                let handle = tries.spawn(async move {
                    let answer = post(&url, &headers, head.body.clone(), timeout).await;
                    (head, answer)
                });
                owner.insert(handle.id(), session);
            }
        }
        if let Some(depth) = blocking(&setup, |k| k.webhook_depth()).await {
            setup
                .metrics
                .webhook_queue_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(done) = tries.join_next_with_id(), if !tries.is_empty() => match done {
                Ok((id, (head, answer))) => {
                    owner.remove(&id);
                    flying.remove(&head.session);
                    settle(&setup, head, &answer).await;
                }
                Err(e) => {
                    // The event stays queued; its session may try again.
                    if let Some(session) = owner.remove(&e.id()) {
                        flying.remove(&session);
                    }
                }
            },
            _ = setup.hooks.wait_queued() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    // Tries in flight end here; their events stay queued and go out after a restart.
    tries.abort_all();
}

/// Records the outcome of one try.
async fn settle(setup: &WebhookSetup, head: Delivery, answer: &Answer) {
    let config = setup.settings().config;
    let seq = head.seq;
    let now = now_ms();
    let verdict = match judge(answer) {
        Verdict::Retry(why) if now.saturating_sub(head.queued_at) >= ms(config.give_up_after) => {
            Verdict::Dead(format!(
                "still failing after {}: {why}",
                crate::config::format_duration(config.give_up_after)
            ))
        }
        other => other,
    };
    match verdict {
        Verdict::Delivered => {
            if blocking(setup, move |k| k.webhook_delivered(seq))
                .await
                .is_some()
            {
                setup.metrics.webhook_delivered.inc();
            }
        }
        Verdict::Retry(why) => {
            let wait = backoff(
                config.retry_base,
                config.retry_cap,
                head.attempts + 1,
                &mut rand::thread_rng(),
            );
            debug!(session = %head.session, seq, error = %why, ?wait, "webhook try failed");
            let next = now + ms(wait);
            if blocking(setup, move |k| k.webhook_retry_later(seq, next, &why))
                .await
                .is_some()
            {
                setup.metrics.webhook_retried.inc();
            }
        }
        Verdict::Dead(why) => {
            warn!(session = %head.session, seq, reason = %why, "webhook event dead-lettered");
            if blocking(setup, move |k| k.webhook_bury(seq, &why, now))
                .await
                .is_some()
            {
                setup.metrics.webhook_dead.inc();
            }
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn answers_are_judged_by_status() {
        assert_eq!(judge(&Answer::Status(204)), Verdict::Delivered);
        for s in [408, 429, 500, 503] {
            assert!(
                matches!(judge(&Answer::Status(s)), Verdict::Retry(_)),
                "{s}"
            );
        }
        for s in [400, 401, 404, 410, 301] {
            assert!(matches!(judge(&Answer::Status(s)), Verdict::Dead(_)), "{s}");
        }
        assert!(matches!(
            judge(&Answer::Failed("refused".into())),
            Verdict::Retry(_)
        ));
    }

    #[test]
    fn backoff_doubles_within_its_jitter_and_stops_at_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for attempt in 1..30u32 {
            let full = base.saturating_mul(1 << (attempt - 1).min(20)).min(cap);
            let d = backoff(base, cap, attempt, &mut rng);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
