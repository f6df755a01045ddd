//! The circuit breaker of one gateway: closed, open for a cool-down after consecutive failures,
//! then half-open with exactly one probe in flight.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The state of a gateway's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Sends go through.
    Closed,
    /// The gateway is skipped until the cool-down has passed.
    Open,
    /// One message is probing the gateway; others skip it until the probe's outcome is known.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of the `sms_gateway_breaker_state` gauge: 0 closed, 1 open, 2 half-open.
    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// What a finished attempt means for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The gateway answered (sent, or refused this one message): it works.
    Healthy,
    /// A retry-safe or unknown failure.
    Failed,
    /// Says nothing about the gateway (a configuration error, a send cancelled before it started).
    Neutral,
}

pub(crate) struct Breaker {
    gateway: String,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
    /// The verdicts of the last [`RECENT`] attempts that said something about the gateway
    /// (true: failed), for the failure rate people see beside the breaker state.
    recent: Mutex<std::collections::VecDeque<bool>>,
}

/// How many recent attempts the failure rate covers.
pub(crate) const RECENT: usize = 100;

/// Leave to send through a gateway; a probe must be reported, and one dropped unreported (its
/// delivery was cancelled) lets the next message probe.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    /// A breaker that opens after `threshold` consecutive failures (never when 0).
    pub(crate) fn new(gateway: &str, threshold: u32, cooldown: Duration) -> Breaker {
        let b = Breaker {
            gateway: gateway.to_owned(),
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
            recent: Mutex::new(std::collections::VecDeque::with_capacity(RECENT)),
        };
        b.publish(BreakerState::Closed);
        b
    }

    /// Leave to send, or `Err(until)`: skip the gateway (until then, or `None` while a probe runs).
    pub(crate) fn admit(&self) -> Result<Permit<'_>, Option<Instant>> {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Ok(Permit {
                breaker: self,
                probe: false,
                done: false,
            }),
            State::Open { until } if Instant::now() < until => Err(Some(until)),
            State::Open { .. } => {
                *s = State::HalfOpen;
                drop(s);
                self.publish(BreakerState::HalfOpen);
                tracing::info!(gateway = %self.gateway, "circuit breaker half-open: probing");
                Ok(Permit {
                    breaker: self,
                    probe: true,
                    done: false,
                })
            }
            State::HalfOpen => Err(None),
        }
    }

    /// The state now (an open breaker whose cool-down has passed still says open until probed).
    pub(crate) fn state(&self) -> (BreakerState, Option<Instant>) {
        match *self.lock() {
            State::Closed { .. } => (BreakerState::Closed, None),
            State::Open { until } => (BreakerState::Open, Some(until)),
            State::HalfOpen => (BreakerState::HalfOpen, None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("sms_gateway_breaker_state", "gateway" => self.gateway.clone())
            .set(state.gauge());
    }

    /// Of the last (at most [`RECENT`]) attempts that said something about the gateway: how
    /// many, and how many failed.
    pub(crate) fn recent(&self) -> (usize, usize) {
        let r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        (r.len(), r.iter().filter(|f| **f).count())
    }

    fn record(&self, probe: bool, verdict: Verdict) {
        if verdict != Verdict::Neutral {
            let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if r.len() == RECENT {
                r.pop_front();
            }
            r.push_back(verdict == Verdict::Failed);
        }
        if self.threshold == 0 {
            return;
        }
        let mut s = self.lock();
        let (next, changed) = match (*s, verdict) {
            (_, Verdict::Healthy) => (
                State::Closed { failures: 0 },
                !matches!(*s, State::Closed { .. }),
            ),
            (State::Closed { failures }, Verdict::Failed) if failures + 1 >= self.threshold => {
                (self.open(), true)
            }
            (State::Closed { failures }, Verdict::Failed) => (
                State::Closed {
                    failures: failures + 1,
                },
                false,
            ),
            (State::HalfOpen, Verdict::Failed) if probe => (self.open(), true),
            // A probe that proved nothing: the next message probes again.
            (State::HalfOpen, Verdict::Neutral) if probe => (
                State::Open {
                    until: Instant::now(),
                },
                true,
            ),
            (other, _) => (other, false),
        };
        *s = next;
        drop(s);
        if changed {
            let state = match next {
                State::Closed { .. } => BreakerState::Closed,
                State::Open { .. } => BreakerState::Open,
                State::HalfOpen => BreakerState::HalfOpen,
            };
            self.publish(state);
            if state == BreakerState::Open && verdict == Verdict::Failed {
                metrics::counter!("sms_gateway_breaker_opened_total", "gateway" => self.gateway.clone())
                    .increment(1);
                tracing::warn!(gateway = %self.gateway, cooldown_s = self.cooldown.as_secs_f64(), "circuit breaker open");
            } else if state == BreakerState::Closed {
                tracing::info!(gateway = %self.gateway, "circuit breaker closed");
            }
        }
    }

    fn open(&self) -> State {
        State::Open {
            until: Instant::now() + self.cooldown,
        }
    }
}

impl Permit<'_> {
    /// Reports the attempt's outcome.
    pub(crate) fn finish(mut self, verdict: Verdict) {
        self.done = true;
        self.breaker.record(self.probe, verdict);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(self.probe, Verdict::Neutral);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_probes_once_and_closes() {
        let b = Breaker::new("g", 2, Duration::from_millis(50));
        b.admit().unwrap().finish(Verdict::Failed);
        assert_eq!(b.state().0, BreakerState::Closed);
        b.admit().unwrap().finish(Verdict::Failed);
        assert_eq!(b.state().0, BreakerState::Open);
        assert!(b.admit().is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let probe = b.admit().unwrap();
        assert_eq!(
            b.admit().err(),
            Some(None),
            "a second probe was let through"
        );
        drop(probe);
        let probe = b.admit().expect("a dropped probe lets the next one probe");
        probe.finish(Verdict::Healthy);
        assert_eq!(b.state().0, BreakerState::Closed);
        let off = Breaker::new("g", 0, Duration::from_secs(1));
        for _ in 0..10 {
            off.admit().unwrap().finish(Verdict::Failed);
        }
        assert!(off.admit().is_ok());
    }
}
