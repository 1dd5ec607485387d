//! One connection's view of its pushed stanzas: which ids it sent when, so it can tell when
//! `max_unacked` of them are overdue and end the stream with `<stream:error><ack id/>`
//! naming the oldest. The stanzas themselves wait in the device's mailbox.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::strict::Strictness;

/// Sent ids, oldest first.
#[derive(Debug, Default)]
pub struct Delivery {
    sent: VecDeque<(String, Instant)>,
}

impl Delivery {
    /// A stanza with this id went out now.
    pub fn sent(&mut self, id: &str, at: Instant) {
        self.sent.push_back((id.to_string(), at));
    }

    /// The client closed these ids.
    pub fn closed(&mut self, ids: &[&str]) {
        self.sent.retain(|(id, _)| !ids.contains(&id.as_str()));
    }

    /// When the `max_unacked`-th oldest stanza becomes overdue; `None` when the ack check is
    /// off or fewer are outstanding.
    pub fn deadline(&self, strict: &Strictness) -> Option<Instant> {
        if !strict.ack_check() {
            return None;
        }
        let (_, at) = self.sent.get(strict.max_unacked - 1)?;
        Some(*at + strict.ack_timeout)
    }

    /// Drops ids no longer pending (`pending` asks the mailbox), then answers the id of the
    /// oldest overdue stanza when at least `max_unacked` are overdue at `now`.
    pub fn overdue(
        &mut self,
        strict: &Strictness,
        now: Instant,
        pending: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.sent.retain(|(id, _)| pending(id));
        if !strict.ack_check() {
            return None;
        }
        let late = |at: &Instant| now.saturating_duration_since(*at) >= strict.ack_timeout;
        let overdue = self.sent.iter().filter(|(_, at)| late(at)).count();
        (overdue >= strict.max_unacked)
            .then(|| self.sent.front().map(|(id, _)| id.clone()))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn three_overdue_name_the_oldest_and_acks_reset_the_count() {
        let strict = Strictness {
            ack_timeout: Duration::from_secs(20),
            ..Strictness::default()
        };
        let t0 = Instant::now();
        let mut d = Delivery::default();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            d.sent(id, t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(d.deadline(&strict), Some(t0 + Duration::from_secs(22)));
        let all = |_: &str| true;
        assert_eq!(d.overdue(&strict, t0 + Duration::from_secs(21), all), None);
        assert_eq!(
            d.overdue(&strict, t0 + Duration::from_secs(22), all),
            Some("a".into())
        );
        d.closed(&["a"]);
        assert_eq!(d.overdue(&strict, t0 + Duration::from_secs(22), all), None);
        // An id the mailbox no longer holds stops counting.
        assert_eq!(
            d.overdue(&strict, t0 + Duration::from_secs(60), |id| id != "b"),
            None
        );
        assert_eq!(d.deadline(&Strictness::lenient()), None);
    }
}
