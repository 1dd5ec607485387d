//! Fault kinds the simulator can inject, parsed from the admin API, and the seeded random
//! fault plan used by soak runs and the demo.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::wa::node::Node;
use crate::wa::stanza;

/// One fault, applied to a live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `<stream:error><conflict type="replaced"/>` (440).
    Conflict,
    /// Device removed (401): the device is forgotten.
    Logout,
    /// `<stream:error code="515"/>`.
    Restart,
    /// `<stream:error code=N/>` (500, 503).
    StreamError(u16),
    /// `<failure reason=N>`; 402 carries `expire` seconds.
    Failure { code: u16, expires_s: Option<u64> },
    /// `<xmlstreamend/>` (428).
    End,
    /// Abrupt TCP close, no close frame.
    Drop,
    /// Stop answering; keep the socket open.
    Stall,
    /// Delay the server hello of later handshakes by this long.
    SlowHandshake(Duration),
}

/// Why a fault request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error(
        "unknown fault kind {0:?}: use conflict, logout, restart, stream-error, failure, end, drop, stall or slow-handshake"
    )]
    UnknownKind(String),
    #[error("fault {kind} needs a code among {allowed}")]
    BadCode {
        kind: &'static str,
        allowed: &'static str,
    },
}

impl Fault {
    /// Parses the admin API's `kind`, `code` and `expires_s`.
    pub fn parse(
        kind: &str,
        code: Option<u16>,
        expires_s: Option<u64>,
    ) -> Result<Fault, FaultError> {
        Ok(match kind {
            "conflict" => Fault::Conflict,
            "logout" => Fault::Logout,
            "restart" => Fault::Restart,
            "stream-error" => match code.unwrap_or(503) {
                c @ (500 | 503) => Fault::StreamError(c),
                _ => {
                    return Err(FaultError::BadCode {
                        kind: "stream-error",
                        allowed: "500, 503",
                    });
                }
            },
            "failure" => match code {
                Some(c @ (401 | 402 | 403 | 405 | 406)) => Fault::Failure {
                    code: c,
                    expires_s: if c == 402 {
                        Some(expires_s.unwrap_or(60))
                    } else {
                        None
                    },
                },
                _ => {
                    return Err(FaultError::BadCode {
                        kind: "failure",
                        allowed: "401, 402, 403, 405, 406",
                    });
                }
            },
            "end" => Fault::End,
            "drop" => Fault::Drop,
            "stall" => Fault::Stall,
            "slow-handshake" => {
                Fault::SlowHandshake(Duration::from_secs(u64::from(code.unwrap_or(5))))
            }
            other => return Err(FaultError::UnknownKind(other.to_string())),
        })
    }

    /// The short name used in stats and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Conflict => "conflict",
            Fault::Logout => "logout",
            Fault::Restart => "restart",
            Fault::StreamError(_) => "stream-error",
            Fault::Failure { .. } => "failure",
            Fault::End => "end",
            Fault::Drop => "drop",
            Fault::Stall => "stall",
            Fault::SlowHandshake(_) => "slow-handshake",
        }
    }

    /// The stanza that ends the connection, for the faults that send one.
    pub fn stanza(&self) -> Option<Node> {
        match self {
            Fault::Conflict => Some(stanza::conflict_replaced()),
            Fault::Logout => Some(stanza::device_removed()),
            Fault::Restart => Some(stanza::stream_error(515)),
            Fault::StreamError(code) => Some(stanza::stream_error(*code)),
            Fault::Failure { code, expires_s } => {
                let expire = expires_s.map(|s| s.to_string());
                let extra: Vec<(&str, &str)> = match &expire {
                    Some(e) => vec![("expire", e.as_str())],
                    None => Vec::new(),
                };
                Some(stanza::failure(*code, &extra))
            }
            Fault::End => Some(stanza::xmlstreamend()),
            Fault::Drop | Fault::Stall | Fault::SlowHandshake(_) => None,
        }
    }
}

/// A seeded random plan: every `every`, one random live device gets one of `kinds`.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub every: Duration,
    pub kinds: Vec<Fault>,
    pub seed: u64,
}

impl FaultPlan {
    /// The demo's mix: conflict, drop, stall, 515, 503, logout.
    pub fn demo(seed: u64, every: Duration) -> Self {
        FaultPlan {
            every,
            kinds: vec![
                Fault::Conflict,
                Fault::Drop,
                Fault::Stall,
                Fault::Restart,
                Fault::StreamError(503),
                Fault::Logout,
            ],
            seed,
        }
    }

    /// The picker for this plan.
    pub fn rng(&self) -> StdRng {
        StdRng::seed_from_u64(self.seed)
    }

    /// Picks the next fault and a device index among `n`.
    pub fn pick(&self, rng: &mut StdRng, n: usize) -> Option<(usize, Fault)> {
        if n == 0 || self.kinds.is_empty() {
            return None;
        }
        let device = rng.gen_range(0..n);
        let fault = self.kinds[rng.gen_range(0..self.kinds.len())].clone();
        Some((device, fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_refuses_bad_ones() {
        assert_eq!(Fault::parse("conflict", None, None), Ok(Fault::Conflict));
        assert_eq!(
            Fault::parse("failure", Some(402), Some(30)),
            Ok(Fault::Failure {
                code: 402,
                expires_s: Some(30)
            })
        );
        assert_eq!(
            Fault::parse("stream-error", Some(500), None),
            Ok(Fault::StreamError(500))
        );
        assert!(matches!(
            Fault::parse("stream-error", Some(404), None),
            Err(FaultError::BadCode { .. })
        ));
        assert!(matches!(
            Fault::parse("failure", None, None),
            Err(FaultError::BadCode { .. })
        ));
        assert_eq!(
            Fault::parse("explode", None, None),
            Err(FaultError::UnknownKind("explode".into()))
        );
    }

    #[test]
    fn plan_is_repeatable_for_a_seed() {
        let plan = FaultPlan::demo(42, Duration::from_secs(3));
        let (mut a, mut b) = (plan.rng(), plan.rng());
        let xs: Vec<_> = (0..20).map(|_| plan.pick(&mut a, 12)).collect();
        let ys: Vec<_> = (0..20).map(|_| plan.pick(&mut b, 12)).collect();
        assert_eq!(xs, ys);
        assert_eq!(plan.pick(&mut a, 0), None);
    }
}
