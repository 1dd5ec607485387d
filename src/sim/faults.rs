//! Fault kinds the simulator can inject, parsed from the admin API, and the seeded random
//! fault plan used by soak runs and the demo.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::Handle;
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
    /// Swallow the device's outgoing messages (`true`) or stop (`false`): the server still
    /// checks and acks each one, as WhatsApp does once it took a message, but no copy is
    /// relayed, so no recipient gets it and no delivery receipt comes back. The socket stays
    /// healthy: this is the silent loss the end-to-end probe is for.
    Blackhole(bool),
}

/// Why a fault request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error(
        "unknown fault kind {0:?}: use conflict, logout, restart, stream-error, failure, end, drop, stall, slow-handshake, blackhole or blackhole-off"
    )]
    UnknownKind(String),
    #[error("fault {kind} needs a code among {allowed}")]
    BadCode {
        kind: &'static str,
        allowed: &'static str,
    },
    #[error("fault {kind} takes no code {code}")]
    UnexpectedCode { kind: &'static str, code: u16 },
    #[error("expires_s is only for fault failure with code 402")]
    UnexpectedExpiry,
    #[error("slow-handshake takes a delay of at most {max} seconds, not {given}")]
    DelayTooLong { given: u64, max: u64 },
}

/// The numbers that may come with a fault kind (admin API fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultArgs {
    pub code: Option<u16>,
    /// Seconds until a 402 temporary ban ends.
    pub expires_s: Option<u64>,
    /// Seconds of slow-handshake delay (`code` is accepted too); 0 ends the delay.
    pub delay_s: Option<u64>,
}

/// The longest slow-handshake delay accepted.
pub const MAX_DELAY_S: u64 = 600;

impl Fault {
    /// Parses the admin API's `kind` with its numbers. Kinds that imply a code accept that
    /// code and no other; a 402 failure without `expires_s` expires in 60 s.
    pub fn parse(kind: &str, args: FaultArgs) -> Result<Fault, FaultError> {
        let only = |kind: &'static str, natural: Option<u16>| match args.code {
            Some(code) if Some(code) != natural => Err(FaultError::UnexpectedCode { kind, code }),
            _ => Ok(()),
        };
        if args.expires_s.is_some() && !(kind == "failure" && args.code == Some(402)) {
            return Err(FaultError::UnexpectedExpiry);
        }
        Ok(match kind {
            "conflict" => only("conflict", Some(440)).map(|_| Fault::Conflict)?,
            "logout" => only("logout", Some(401)).map(|_| Fault::Logout)?,
            "restart" => only("restart", Some(515)).map(|_| Fault::Restart)?,
            "end" => only("end", Some(428)).map(|_| Fault::End)?,
            "drop" => only("drop", None).map(|_| Fault::Drop)?,
            "stall" => only("stall", None).map(|_| Fault::Stall)?,
            "blackhole" => only("blackhole", None).map(|_| Fault::Blackhole(true))?,
            "blackhole-off" => only("blackhole-off", None).map(|_| Fault::Blackhole(false))?,
            "stream-error" => match args.code {
                Some(c @ (500 | 503)) => Fault::StreamError(c),
                _ => {
                    return Err(FaultError::BadCode {
                        kind: "stream-error",
                        allowed: "500, 503",
                    });
                }
            },
            "failure" => match args.code {
                Some(c @ (401 | 402 | 403 | 405 | 406)) => Fault::Failure {
                    code: c,
                    expires_s: (c == 402).then(|| args.expires_s.unwrap_or(60)),
                },
                _ => {
                    return Err(FaultError::BadCode {
                        kind: "failure",
                        allowed: "401, 402, 403, 405, 406",
                    });
                }
            },
            "slow-handshake" => {
                let seconds = args.delay_s.or(args.code.map(u64::from)).unwrap_or(5);
                if seconds > MAX_DELAY_S {
                    return Err(FaultError::DelayTooLong {
                        given: seconds,
                        max: MAX_DELAY_S,
                    });
                }
                Fault::SlowHandshake(Duration::from_secs(seconds))
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
            Fault::Blackhole(true) => "blackhole",
            Fault::Blackhole(false) => "blackhole-off",
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
            Fault::Drop | Fault::Stall | Fault::SlowHandshake(_) | Fault::Blackhole(_) => None,
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

/// Runs a plan until `cancel`: every `plan.every`, one live device picked by the seeded
/// generator gets a fault picked the same way.
pub(super) async fn run_plan(plan: FaultPlan, handle: Handle, cancel: CancellationToken) {
    let mut rng = plan.rng();
    let mut tick = tokio::time::interval(plan.every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let live = handle.live_devices();
        if let Some((i, fault)) = plan.pick(&mut rng, live.len()) {
            tracing::info!(device = %live[i], fault = fault.name(), "simulator fault plan");
            let _ = handle.fault(&live[i], fault).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_refuses_bad_ones() {
        let code = |c: u16| FaultArgs {
            code: Some(c),
            ..FaultArgs::default()
        };
        let none = FaultArgs::default();
        assert_eq!(Fault::parse("conflict", none), Ok(Fault::Conflict));
        assert_eq!(Fault::parse("restart", code(515)), Ok(Fault::Restart));
        assert_eq!(
            Fault::parse(
                "failure",
                FaultArgs {
                    code: Some(402),
                    expires_s: Some(30),
                    delay_s: None
                }
            ),
            Ok(Fault::Failure {
                code: 402,
                expires_s: Some(30)
            })
        );
        assert_eq!(
            Fault::parse("failure", code(402)),
            Ok(Fault::Failure {
                code: 402,
                expires_s: Some(60)
            })
        );
        assert_eq!(
            Fault::parse("stream-error", code(500)),
            Ok(Fault::StreamError(500))
        );
        assert_eq!(
            Fault::parse(
                "slow-handshake",
                FaultArgs {
                    delay_s: Some(3),
                    ..none
                }
            ),
            Ok(Fault::SlowHandshake(Duration::from_secs(3)))
        );
        assert_eq!(Fault::parse("blackhole", none), Ok(Fault::Blackhole(true)));
        assert_eq!(
            Fault::parse("blackhole-off", none),
            Ok(Fault::Blackhole(false))
        );
        assert!(matches!(
            Fault::parse("blackhole", code(500)),
            Err(FaultError::UnexpectedCode { .. })
        ));
        assert!(matches!(
            Fault::parse("stream-error", code(404)),
            Err(FaultError::BadCode { .. })
        ));
        assert!(matches!(
            Fault::parse("stream-error", none),
            Err(FaultError::BadCode { .. })
        ));
        assert!(matches!(
            Fault::parse("failure", none),
            Err(FaultError::BadCode { .. })
        ));
        assert!(matches!(
            Fault::parse("conflict", code(503)),
            Err(FaultError::UnexpectedCode { .. })
        ));
        assert!(matches!(
            Fault::parse("slow-handshake", code(3600)),
            Err(FaultError::DelayTooLong { .. })
        ));
        assert_eq!(
            Fault::parse(
                "failure",
                FaultArgs {
                    code: Some(403),
                    expires_s: Some(5),
                    delay_s: None
                }
            ),
            Err(FaultError::UnexpectedExpiry)
        );
        assert_eq!(
            Fault::parse("explode", none),
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
