//! The lease rules, free of I/O so a model test can drive them: the Lua scripts Redis runs
//! (acquire, renew, release), how long a node may trust a lease it renewed, and the placement
//! arithmetic (each node's share, how many it may claim per round).

use std::time::{Duration, Instant};

/// Acquire: `KEYS[1]` lease, `KEYS[2]` fence counter; `ARGV[1]` node, `ARGV[2]` TTL in ms.
/// Answers the new token, or 0 when someone holds the lease.
pub const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
";

/// Renew: `KEYS[1]` lease; `ARGV[1]` the value we hold, `ARGV[2]` TTL in ms. 1 renewed, 0 lost.
pub const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Release: `KEYS[1]` lease; `ARGV[1]` the value we hold. Deletes only our own lease.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// The value stored in a lease key.
pub fn lease_value(token: u64, node: &str) -> String {
    format!("{token}:{node}")
}

/// The owner named by a lease value.
pub fn owner_of(value: &str) -> Option<&str> {
    value.split_once(':').map(|(_, node)| node)
}

/// A lease this node holds, as far as it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub token: u64,
    pub value: String,
    /// Until when the node may use it (dial, keep the socket): see [`trust_until`].
    pub valid_until: Instant,
    /// Being handed over: still renewed until the socket is closed, never dialled again.
    pub leaving: bool,
}

/// A lease acquired or renewed by a request *sent* at `sent` expires in Redis no earlier than
/// `sent + ttl` (Redis starts the TTL when it runs the script, after the send). The holder
/// trusts it only until half of that, leaving the other half for closing its socket, for
/// clock drift between hosts' timers and for a reply that arrived late.
pub fn trust_until(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl / 2
}

/// How often a node renews, heartbeats and places: four rounds per TTL, so a renewal that
/// fails once is retried before the trust window ends.
pub fn round(ttl: Duration) -> Duration {
    (ttl / 4).max(Duration::from_millis(50))
}

/// The most sessions one node should hold: `ceil(total / nodes)`.
pub fn share(total: usize, nodes: usize) -> usize {
    total.div_ceil(nodes.max(1))
}

/// How many leases a node may take in one round: what the connect rate limit lets it dial in
/// that time (at least one), so a new node takes its share gradually, never in a storm.
pub fn claims_per_round(connects_per_second: u32, round: Duration) -> usize {
    let per_round = f64::from(connects_per_second) * round.as_secs_f64();
    (per_round.ceil() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_claims() {
        assert_eq!(share(40, 2), 20);
        assert_eq!(share(40, 3), 14);
        assert_eq!(share(3, 0), 3);
        assert_eq!(claims_per_round(5, Duration::from_millis(500)), 3);
        assert_eq!(claims_per_round(1, Duration::from_millis(50)), 1);
        assert_eq!(owner_of(&lease_value(7, "node-b")), Some("node-b"));
    }

    #[test]
    fn trust_ends_halfway_to_the_earliest_expiry() {
        let sent = Instant::now();
        let ttl = Duration::from_secs(2);
        assert_eq!(trust_until(sent, ttl), sent + Duration::from_secs(1));
        assert!(round(ttl) < ttl / 2);
    }
}
