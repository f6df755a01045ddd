//! A gateway's limits at run time: the `rate` token bucket and the `per_recipient` guard.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::time::Instant;

/// The most messages a `per_recipient` limit may allow per window.
pub const MAX_PER_RECIPIENT: u32 = 1000;
/// The longest `per_recipient` window (30 days).
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// The memory budget of one gateway's per-recipient table, in remembered sends: the table keeps at
/// most `RECIPIENT_BUDGET / N` numbers (and at least 1000) for a limit of N per window.
pub const RECIPIENT_BUDGET: usize = 1_000_000;

/// `per_recipient = "N/<duration>"`: at most N messages to one number within any window of that
/// length, e.g. `5/1h`, `10/30m`, `3/45s`, `20/1d`.
///
/// ```
/// use smsgw_routing::PerRecipient;
/// let p: PerRecipient = "10/30m".parse().unwrap();
/// assert_eq!((p.max, p.window.as_secs()), (10, 1800));
/// assert_eq!(p.to_string(), "10/30m");
/// assert!("5/1x".parse::<PerRecipient>().unwrap_err().contains("unit"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerRecipient {
    /// How many messages.
    pub max: u32,
    /// Within how long.
    pub window: Duration,
}

impl FromStr for PerRecipient {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("'{s}' {why}; write N/<duration> like 5/1h, 10/30m or 3/45s");
        let (n, d) = s.trim().split_once('/').ok_or_else(|| bad("has no '/'"))?;
        let max: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("does not start with a whole number"))?;
        if !(1..=MAX_PER_RECIPIENT).contains(&max) {
            return Err(bad(&format!(
                "allows {max} messages, not 1..={MAX_PER_RECIPIENT}"
            )));
        }
        let d = d.trim();
        let digits = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
        let (num, unit) = d.split_at(digits);
        let num: u64 = if num.is_empty() {
            1
        } else {
            num.parse().map_err(|_| bad("has no valid duration"))?
        };
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(bad("has no unit (s, m, h or d)")),
            _ => {
                return Err(bad(&format!(
                    "has the unknown unit '{unit}' (use s, m, h or d)"
                )));
            }
        };
        let window = Duration::from_secs(num.saturating_mul(unit_secs));
        if window.is_zero() || window > MAX_WINDOW {
            return Err(bad("has a window outside 1s..=30d"));
        }
        Ok(PerRecipient { max, window })
    }
}

impl fmt::Display for PerRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.window.as_secs();
        let (n, u) = [(86_400, "d"), (3600, "h"), (60, "m")]
            .into_iter()
            .find(|(u, _)| s.is_multiple_of(*u))
            .map(|(u, name)| (s / u, name))
            .unwrap_or((s, "s"));
        write!(f, "{}/{n}{u}", self.max)
    }
}

impl Serialize for PerRecipient {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A gateway's `rate` held outside this process, so that several processes together keep it: a
/// token bucket in a broker's key-value store (`smsgw-nats`), say. Give it to
/// [`Router::build_shared`](crate::Router::build_shared); without one, each process keeps its own
/// bucket.
#[async_trait::async_trait]
pub trait SharedRate: Send + Sync + std::fmt::Debug + 'static {
    /// Takes one send token of `gateway` (whose limit is `per_second`, bursts of `burst`),
    /// waiting at most `max_wait`. `Ok(waited)`, or `Err(why)` when no token came in time or the
    /// store could not be asked (the send is then `not_sent`, retry-safe).
    async fn acquire(
        &self,
        gateway: &str,
        per_second: f64,
        burst: u32,
        max_wait: Duration,
    ) -> Result<Duration, String>;
}

/// Where a gateway's `rate` is kept.
pub(crate) enum Rate {
    /// In this process.
    Local(RateLimit),
    /// Across processes.
    Shared(std::sync::Arc<dyn SharedRate>, String, f64, u32),
}

impl Rate {
    /// Takes a token, waiting until `deadline` at the latest; `Err(why)` when none came.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<Duration, String> {
        match self {
            Rate::Local(r) => r.acquire(deadline).await.map_err(|()| String::new()),
            Rate::Shared(s, id, per_second, burst) => {
                let budget = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout_at(deadline, s.acquire(id, *per_second, *burst, budget))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(String::new()),
                }
            }
        }
    }
}

/// The `rate` token bucket of one gateway, shared by every concurrent send of the process. Waiters
/// queue in arrival order (a fair mutex) so that a thundering herd does not spin on the bucket.
pub(crate) struct RateLimit {
    limiter: RateLimiter<NotKeyed, InMemoryState, MonotonicClock>,
    queue: tokio::sync::Mutex<()>,
}

impl RateLimit {
    pub(crate) fn new(rate: f64, burst: u32) -> Option<RateLimit> {
        let period = Duration::from_secs_f64(1.0 / rate);
        let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst.max(1))?);
        Some(RateLimit {
            limiter: RateLimiter::direct_with_clock(quota, MonotonicClock),
            queue: tokio::sync::Mutex::new(()),
        })
    }

    /// Takes a token, waiting for one until `deadline` at the latest. `Ok(waited)`, or `Err(())`
    /// when no token comes in time (then none was taken).
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<Duration, ()> {
        let start = Instant::now();
        let wait = async {
            let _turn = self.queue.lock().await;
            loop {
                match self.limiter.check() {
                    // No await between taking the token and returning: cancelling loses none.
                    Ok(()) => return Ok(start.elapsed()),
                    Err(not_until) => {
                        let d = not_until.wait_time_from(self.limiter.clock().now());
                        if Instant::now() + d > deadline {
                            return Err(());
                        }
                        tokio::time::sleep(d).await;
                    }
                }
            }
        };
        tokio::time::timeout_at(deadline, wait)
            .await
            .unwrap_or(Err(()))
    }
}

/// The `per_recipient` guard of one gateway: a sliding window of send times per number, in a
/// table of bounded size.
pub(crate) struct RecipientGuard {
    limit: PerRecipient,
    capacity: usize,
    table: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// A send counted against a number; given back with [`RecipientGuard::refund`] when the message
/// was definitely not sent.
pub(crate) struct Reservation {
    key: String,
    at: Instant,
}

impl RecipientGuard {
    pub(crate) fn new(limit: PerRecipient) -> Self {
        RecipientGuard {
            limit,
            capacity: (RECIPIENT_BUDGET / limit.max as usize).max(1000),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one send to `number`, or says when the next one will be allowed.
    pub(crate) fn reserve(&self, number: &str) -> Result<Reservation, Instant> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !table.contains_key(number) && table.len() >= self.capacity {
            self.make_room(&mut table, now);
        }
        let times = table.entry(number.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.limit.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit.max as usize {
            return Err(times[0] + self.limit.window);
        }
        times.push_back(now);
        Ok(Reservation {
            key: number.to_owned(),
            at: now,
        })
    }

    /// Gives a reservation back (the message was definitely not sent).
    pub(crate) fn refund(&self, r: Reservation) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = table.get_mut(&r.key)
            && let Some(pos) = times.iter().rposition(|t| *t == r.at)
        {
            times.remove(pos);
        }
    }

    /// Drops numbers whose window has passed; if the table is still full, forgets the tenth of the
    /// numbers used longest ago. Sweeping a tenth at once keeps the cost per new number constant
    /// on average even when every entry is live (an SMS pumping run over many numbers).
    fn make_room(&self, table: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        let window = self.limit.window;
        table.retain(|_, t| {
            t.back()
                .is_some_and(|last| now.duration_since(*last) < window)
        });
        if table.len() < self.capacity {
            return;
        }
        let mut last_use: Vec<Instant> = table.values().filter_map(|t| t.back().copied()).collect();
        let cut = last_use.len() / 10;
        let (_, nth, _) = last_use.select_nth_unstable(cut);
        let nth = *nth;
        table.retain(|_, t| t.back().is_some_and(|last| *last > nth));
        tracing::warn!(
            numbers = table.len(),
            "per_recipient table full: forgot the numbers used longest ago"
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_limits() {
        for (s, max, secs) in [
            ("5/1h", 5, 3600),
            ("10/30m", 10, 1800),
            ("3/45s", 3, 45),
            ("1/d", 1, 86_400),
        ] {
            let p: PerRecipient = s.parse().unwrap();
            assert_eq!((p.max, p.window.as_secs()), (max, secs), "{s}");
        }
        for bad in ["5", "x/1h", "0/1h", "5/1x", "5/0s", "5/31d", "5/h1", "5/1"] {
            assert!(bad.parse::<PerRecipient>().is_err(), "{bad} accepted");
        }
        assert_eq!(
            "2/90s".parse::<PerRecipient>().unwrap().to_string(),
            "2/90s"
        );
        assert_eq!(
            "2/120m".parse::<PerRecipient>().unwrap().to_string(),
            "2/2h"
        );
    }

    #[tokio::test]
    async fn guard_counts_refunds_and_stays_bounded() {
        let g = RecipientGuard::new("2/1h".parse().unwrap());
        let a = g.reserve("+1").unwrap();
        g.reserve("+1").unwrap();
        let retry = g.reserve("+1").err().unwrap();
        assert!(retry > Instant::now() + Duration::from_secs(3500));
        g.refund(a);
        g.reserve("+1").unwrap();
        assert!(g.reserve("+2").is_ok());
        let g = RecipientGuard::new("1000/1h".parse().unwrap());
        assert_eq!(g.capacity, 1000);
        for i in 0..(g.capacity + 50) {
            g.reserve(&format!("+9{i}")).unwrap();
        }
        assert!(g.len() <= g.capacity, "{} > {}", g.len(), g.capacity);
    }

    #[tokio::test]
    async fn rate_limit_gives_up_at_the_deadline() {
        let r = RateLimit::new(1.0, 1).unwrap();
        let soon = Instant::now() + Duration::from_millis(200);
        assert!(r.acquire(soon).await.is_ok());
        let t = Instant::now();
        assert!(r.acquire(soon).await.is_err());
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "waited for nothing"
        );
    }
}
