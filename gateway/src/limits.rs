//! Rate limits per partner and per staff id, applied to every authenticated request.

use crate::auth::Requester;
use crate::refusal::Refusal;

/// Rate limits per partner and per staff id.
pub struct Limiter {
    partners: governor::DefaultKeyedRateLimiter<String>,
    staff: governor::DefaultKeyedRateLimiter<String>,
    /// Checks per staff id per minute, with the quota they were made for (the covenant's).
    checks: std::sync::Mutex<(u32, governor::DefaultKeyedRateLimiter<String>)>,
}

fn per_minute(n: u32) -> governor::DefaultKeyedRateLimiter<String> {
    governor::RateLimiter::keyed(governor::Quota::per_minute(
        std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
    ))
}

impl Limiter {
    /// Requests per second per partner and per staff id (at least 1).
    pub fn new(per_partner: u32, per_staff: u32) -> Self {
        let q = |n: u32| {
            governor::Quota::per_second(
                std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
            )
        };
        Limiter {
            partners: governor::RateLimiter::keyed(q(per_partner)),
            staff: governor::RateLimiter::keyed(q(per_staff)),
            checks: std::sync::Mutex::new((0, per_minute(1))),
        }
    }

    /// Counts one check of a staff id against the covenant's `per_minute` (a check is a probe
    /// by nature: tighter than other requests); `rate-limited` when over it.
    pub fn check_probe(&self, req: &Requester, per_minute_quota: u32) -> Result<(), Refusal> {
        use governor::clock::{Clock, DefaultClock};
        let mut guard = match self.checks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.0 != per_minute_quota {
            *guard = (per_minute_quota, per_minute(per_minute_quota));
        }
        guard
            .1
            .check_key(&format!("{}/{}", req.partner_id, req.staff_id))
            .map_err(|e| {
                crate::metrics::metrics()
                    .rate_limited
                    .get_or_create(&crate::metrics::ReasonLabel { reason: "check" })
                    .inc();
                Refusal::RateLimited(
                    e.wait_time_from(DefaultClock::default().now())
                        .as_secs()
                        .max(1),
                )
            })
    }

    /// Forgets keys whose quota is full again, so memory does not grow with every staff id seen.
    pub fn prune(&self) {
        self.partners.retain_recent();
        self.staff.retain_recent();
        if let Ok(g) = self.checks.lock() {
            g.1.retain_recent();
        }
    }

    /// Counts one request; `rate-limited` (with the seconds to wait) when over either limit.
    pub fn check(&self, req: &Requester) -> Result<(), Refusal> {
        use governor::clock::{Clock, DefaultClock};
        let wait = |e: governor::NotUntil<governor::clock::QuantaInstant>| {
            Refusal::RateLimited(
                e.wait_time_from(DefaultClock::default().now())
                    .as_secs()
                    .max(1),
            )
        };
        let counted = |scope: &'static str| {
            move |e| {
                crate::metrics::metrics()
                    .rate_limited
                    .get_or_create(&crate::metrics::ReasonLabel { reason: scope })
                    .inc();
                wait(e)
            }
        };
        self.partners
            .check_key(&req.partner_id)
            .map_err(counted("partner"))?;
        self.staff
            .check_key(&format!("{}/{}", req.partner_id, req.staff_id))
            .map_err(counted("staff"))?;
        Ok(())
    }
}
