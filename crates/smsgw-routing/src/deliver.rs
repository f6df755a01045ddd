//! One delivery through a route: the gateways in order, retries with backoff, failover, the
//! breaker, the limits and the deadline.

use std::time::{Duration, SystemTime};

use smsgw_core::{ErrorKind, Message, SendError};
use tokio::time::Instant;

use crate::breaker::Verdict;
use crate::config::OnUnknown;
use crate::outcome::{Attempt, AttemptKind, Delivered, Delivery, Reason, RouteError, summary};
use crate::router::{GatewayState, Route, to_system_time};

/// The wait before retry number `n` (1-based): `backoff × 2^(n-1)`, plus up to 25 % jitter so that
/// many messages failing together do not retry together.
fn backoff_delay(backoff: Duration, n: u32) -> Duration {
    let base = backoff.saturating_mul(1 << (n.saturating_sub(1)).min(16));
    base + base.mul_f64(fastrand::f64() * 0.25)
}

/// One delivery in progress.
pub(crate) struct Delivering<'a> {
    pub(crate) route: &'a Route,
    pub(crate) message: &'a Message,
    pub(crate) deadline: Instant,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) may_arrive_twice: bool,
    /// A retry was given up because its backoff would have passed the deadline.
    pub(crate) short_of_time: bool,
}

/// What one gateway's turn ended with.
enum Turn {
    Next,
    Done(Box<Delivery>),
}

impl Delivering<'_> {
    pub(crate) async fn run(mut self) -> Delivery {
        let route = self.route;
        let list = route.gateways_for(&self.message.phone);
        let mut skipped_until: Vec<Option<Instant>> = Vec::new();
        let mut tried = false;
        for (i, id) in list.iter().enumerate() {
            let Some(state) = route.inner.states.get(id) else {
                continue; // checked at build time
            };
            if i > 0 {
                metrics::counter!("sms_route_failovers_total", "route" => route.target.clone(), "gateway" => id.clone())
                    .increment(1);
            }
            if let Turn::Done(d) = self.turn(state, &mut skipped_until, &mut tried).await {
                return *d;
            }
        }
        if !tried && !skipped_until.is_empty() {
            let retry = skipped_until.iter().flatten().min().copied();
            return Err(self
                .fail(
                    ErrorKind::NotSent,
                    Reason::AllOpen,
                    "every gateway's circuit breaker is open: nothing was sent".into(),
                )
                .retry_at(retry.map(to_system_time)));
        }
        if self.short_of_time {
            return self.deadline_error(false);
        }
        let kind = self.overall_kind();
        Err(self.fail(
            kind,
            Reason::GatewaysFailed,
            "no gateway delivered the message".into(),
        ))
    }

    /// Unknown beats not_sent beats refused beats config: the kind says what a caller may do next.
    fn overall_kind(&self) -> ErrorKind {
        let has = |k: AttemptKind| self.attempts.iter().any(|a| a.kind == k);
        if self.may_arrive_twice || has(AttemptKind::Unknown) {
            ErrorKind::Unknown
        } else if has(AttemptKind::NotSent)
            || has(AttemptKind::BreakerOpen)
            || self.attempts.is_empty()
        {
            ErrorKind::NotSent
        } else if has(AttemptKind::Refused) {
            ErrorKind::Refused
        } else {
            ErrorKind::Config
        }
    }

    fn fail(&mut self, kind: ErrorKind, reason: Reason, what: String) -> RouteError {
        let attempts = std::mem::take(&mut self.attempts);
        let mut message = format!("{what}; {}", summary(&attempts));
        if kind == ErrorKind::Unknown && reason != Reason::OutcomeUnknown {
            message.push_str("; an earlier attempt may have sent the message");
        }
        RouteError::new(
            kind,
            reason,
            &self.route.target,
            self.route.plan.route.as_deref(),
            message,
            attempts,
        )
    }

    fn deadline_error(&mut self, cut: bool) -> Delivery {
        let kind = if cut {
            ErrorKind::Unknown
        } else {
            self.overall_kind()
        };
        let secs = self.route.plan.deadline.as_secs_f64();
        Err(self.fail(
            kind,
            Reason::Deadline,
            format!("the deadline of {secs} s passed"),
        ))
    }

    fn note(
        &mut self,
        gateway: &str,
        kind: AttemptKind,
        err: Option<&SendError>,
        at: SystemTime,
        took: Duration,
    ) {
        metrics::counter!("sms_route_attempts_total", "route" => self.route.target.clone(), "gateway" => gateway.to_owned(), "result" => kind.as_str())
            .increment(1);
        self.attempts.push(Attempt {
            gateway: gateway.to_owned(),
            kind,
            error: err.map(|e| e.message().to_owned()),
            code: err.and_then(|e| e.code().map(str::to_owned)),
            ms: took.as_millis().try_into().unwrap_or(u64::MAX),
            at,
        });
    }

    /// Tries one gateway, with retries; `Next` moves on to the next gateway.
    async fn turn(
        &mut self,
        state: &GatewayState,
        skipped_until: &mut Vec<Option<Instant>>,
        tried: &mut bool,
    ) -> Turn {
        let plan = &*self.route.plan;
        let id = state.gateway.id();
        let mut tries = 0u32;
        loop {
            if Instant::now() >= self.deadline {
                return Turn::Done(Box::new(self.deadline_error(false)));
            }
            let permit = match state.breaker.admit() {
                Ok(p) => p,
                Err(until) => {
                    let err = SendError::new(
                        ErrorKind::NotSent,
                        id,
                        "skipped: the circuit breaker is open",
                    );
                    self.note(
                        id,
                        AttemptKind::BreakerOpen,
                        Some(&err),
                        SystemTime::now(),
                        Duration::ZERO,
                    );
                    skipped_until.push(until);
                    return Turn::Next;
                }
            };
            let reservation = match &state.recipients {
                None => None,
                Some(guard) => {
                    match guard.reserve(&state.gateway.rewrite_phone(&self.message.phone)) {
                        Ok(r) => Some(r),
                        Err(retry) => {
                            drop(permit);
                            return Turn::Done(Box::new(self.rate_limited(state, retry)));
                        }
                    }
                }
            };
            let refund = |r: Option<_>| {
                if let (Some(g), Some(r)) = (&state.recipients, r) {
                    g.refund(r);
                }
            };
            if let Some(rate) = &state.rate {
                match rate.acquire(self.deadline).await {
                    Ok(waited) if !waited.is_zero() => {
                        metrics::counter!("sms_gateway_rate_limit_waits_total", "gateway" => id.to_owned()).increment(1);
                        metrics::histogram!("sms_gateway_rate_limit_wait_seconds", "gateway" => id.to_owned())
                            .record(waited.as_secs_f64());
                    }
                    Ok(_) => {}
                    Err(why) => {
                        drop(permit);
                        refund(reservation);
                        let why = if why.is_empty() {
                            String::new()
                        } else {
                            format!(": {why}")
                        };
                        let err = SendError::new(
                            ErrorKind::NotSent,
                            id,
                            format!(
                                "no send token (rate {}/s) before the deadline{why}",
                                state.limits.rate.unwrap_or_default()
                            ),
                        );
                        self.note(
                            id,
                            AttemptKind::NotSent,
                            Some(&err),
                            SystemTime::now(),
                            Duration::ZERO,
                        );
                        return Turn::Done(Box::new(self.deadline_error(false)));
                    }
                }
            }
            *tried = true;
            tries += 1;
            let at = SystemTime::now();
            let start = Instant::now();
            let mut cut = false;
            let result = if plan.cut_sends {
                match tokio::time::timeout_at(self.deadline, state.gateway.send(self.message)).await
                {
                    Ok(r) => r,
                    Err(_) => {
                        cut = true;
                        Err(SendError::new(
                            ErrorKind::Unknown,
                            id,
                            "cut by the route's deadline while the gateway had the message",
                        ))
                    }
                }
            } else {
                state.gateway.send(self.message).await
            };
            let took = start.elapsed();
            let err = match result {
                Ok(receipt) => {
                    permit.finish(Verdict::Healthy);
                    self.note(id, AttemptKind::Sent, None, at, took);
                    return Turn::Done(Box::new(Ok(self.delivered(id, receipt))));
                }
                Err(e) => e,
            };
            let kind = AttemptKind::from(err.kind());
            self.note(id, kind, Some(&err), at, took);
            match kind {
                AttemptKind::NotSent => {
                    permit.finish(Verdict::Failed);
                    refund(reservation);
                    if tries <= plan.retries {
                        let delay = backoff_delay(plan.backoff, tries);
                        if Instant::now() + delay < self.deadline {
                            tracing::debug!(
                                gateway = id,
                                retry = tries,
                                delay_ms = delay.as_millis() as u64,
                                "retrying"
                            );
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        self.short_of_time = true;
                    }
                    return Turn::Next;
                }
                AttemptKind::Refused => {
                    // The gateway answered: it works, this message is the problem.
                    permit.finish(Verdict::Healthy);
                    refund(reservation);
                    return Turn::Next;
                }
                AttemptKind::Config => {
                    permit.finish(Verdict::Neutral);
                    refund(reservation);
                    return Turn::Next;
                }
                _ => {
                    permit.finish(Verdict::Failed);
                    if cut {
                        return Turn::Done(Box::new(self.deadline_error(true)));
                    }
                    if plan.on_unknown == OnUnknown::Stop {
                        return Turn::Done(Box::new(Err(self.fail(
                            ErrorKind::Unknown,
                            Reason::OutcomeUnknown,
                            format!("gateway '{id}' may have sent the message; stopped (on_unknown = \"stop\")"),
                        ))));
                    }
                    self.may_arrive_twice = true;
                    return Turn::Next;
                }
            }
        }
    }

    fn rate_limited(&mut self, state: &GatewayState, retry: Instant) -> Delivery {
        let id = state.gateway.id();
        let limit = state
            .limits
            .per_recipient
            .map(|p| p.to_string())
            .unwrap_or_default();
        let retry_at = to_system_time(retry);
        let err = SendError::new(
            ErrorKind::NotSent,
            id,
            format!(
                "per_recipient {limit} reached for this number; retry after {}",
                crate::outcome::format_time(retry_at)
            ),
        )
        .with_code("rate_limited");
        self.note(
            id,
            AttemptKind::RateLimited,
            Some(&err),
            SystemTime::now(),
            Duration::ZERO,
        );
        metrics::counter!("sms_gateway_per_recipient_rejected_total", "gateway" => id.to_owned())
            .increment(1);
        let kind = if self.may_arrive_twice {
            ErrorKind::Unknown
        } else {
            ErrorKind::NotSent
        };
        Err(self
            .fail(
                kind,
                Reason::RateLimited,
                format!("gateway '{id}': per_recipient {limit} reached for this number"),
            )
            .retry_at(Some(retry_at)))
    }

    fn delivered(&mut self, gateway: &str, receipt: smsgw_core::Receipt) -> Delivered {
        let twice = self.may_arrive_twice;
        Delivered {
            result: "sent",
            target: self.route.target.clone(),
            route: self.route.plan.route.clone(),
            gateway: gateway.to_owned(),
            receipt,
            may_arrive_twice: twice,
            warning: twice.then(|| {
                "an earlier gateway's outcome was unknown and the route failed over: the message may arrive twice"
                    .to_owned()
            }),
            attempts: std::mem::take(&mut self.attempts),
        }
    }
}
