//! Retry policies and backoff delays. Pure: the store copies a policy into
//! each job, and the worker asks [`RetryPolicy::decide`] what a failed
//! attempt leads to.

use std::time::Duration;

use serde::Serialize;

/// How a job is retried. Retry `n` (1-based) waits `backoff_base ^ n`
/// seconds, capped at `max_delay`; with `jitter`, a random delay in
/// `[0, that]` instead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Any number >= 1.
    pub backoff_base: f64,
    pub max_delay_ms: Option<i64>,
    pub jitter: bool,
    /// Exit codes that go straight to the dead letter queue.
    pub no_retry_exit_codes: Vec<i32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff_base: 2.0,
            max_delay_ms: None,
            jitter: false,
            no_retry_exit_codes: Vec::new(),
        }
    }
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Run again after this delay.
    Retry(Duration),
    /// Into the dead letter queue.
    Dead(DeadReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    RetriesSpent,
    NoRetryExitCode(i32),
}

impl DeadReason {
    pub fn describe(self, attempts: u32) -> String {
        match self {
            DeadReason::RetriesSpent => format!("failed {attempts} attempt(s), no retries left"),
            DeadReason::NoRetryExitCode(code) => {
                format!("exit code {code} is in no_retry_exit_codes")
            }
        }
    }
}

/// The longest delay we ever compute: beyond this `f64` seconds lose meaning.
const MAX_DELAY_CAP: Duration = Duration::from_secs(365 * 24 * 3600);

impl RetryPolicy {
    /// Attempts in all: the first and the retries (saturating: `max_retries`
    /// may be `u32::MAX`).
    pub fn max_attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// The delay before retry `n` (1-based), before jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let secs = self.backoff_base.max(1.0).powf(f64::from(retry));
        let mut delay = Duration::try_from_secs_f64(secs).unwrap_or(MAX_DELAY_CAP);
        delay = delay.min(MAX_DELAY_CAP);
        if let Some(max) = self.max_delay_ms {
            delay = delay.min(Duration::from_millis(max.max(0) as u64));
        }
        delay
    }

    /// Decides the fate of a job whose attempt number `attempts` (1-based,
    /// counting this one) failed with `exit_code`. `random` is a number in
    /// `[0, 1)`, used only with jitter.
    pub fn decide(&self, attempts: u32, exit_code: Option<i32>, random: f64) -> Decision {
        if let Some(code) = exit_code.filter(|c| self.no_retry_exit_codes.contains(c)) {
            return Decision::Dead(DeadReason::NoRetryExitCode(code));
        }
        if attempts > self.max_retries {
            return Decision::Dead(DeadReason::RetriesSpent);
        }
        let delay = self.delay(attempts);
        if self.jitter {
            Decision::Retry(delay.mul_f64(random.clamp(0.0, 1.0)))
        } else {
            Decision::Retry(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32, base: f64, max_delay_ms: Option<i64>) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff_base: base,
            max_delay_ms,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn delays_grow_as_base_to_the_n() {
        let table = [
            (2.0, None, 1, 2_000),
            (2.0, None, 2, 4_000),
            (2.0, None, 3, 8_000),
            (1.5, None, 2, 2_250),
            (1.0, None, 5, 1_000),
            (3.0, Some(10_000), 5, 10_000),
            (2.0, Some(0), 3, 0),
            (10.0, None, 400, MAX_DELAY_CAP.as_millis() as u64),
        ];
        for (base, cap, retry, ms) in table {
            let got = policy(3, base, cap).delay(retry);
            assert_eq!(
                got,
                Duration::from_millis(ms),
                "base {base} cap {cap:?} retry {retry}"
            );
        }
    }

    #[test]
    fn decisions_follow_retries_and_exit_codes() {
        let mut p = policy(2, 2.0, None);
        p.no_retry_exit_codes = vec![2];
        assert_eq!(
            p.decide(1, Some(1), 0.5),
            Decision::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            p.decide(2, Some(1), 0.5),
            Decision::Retry(Duration::from_secs(4))
        );
        assert_eq!(
            p.decide(3, Some(1), 0.5),
            Decision::Dead(DeadReason::RetriesSpent)
        );
        assert_eq!(
            p.decide(1, Some(2), 0.5),
            Decision::Dead(DeadReason::NoRetryExitCode(2))
        );
        assert_eq!(
            p.decide(1, None, 0.5),
            Decision::Retry(Duration::from_secs(2))
        );
        assert_eq!(
            policy(0, 2.0, None).decide(1, Some(1), 0.0),
            Decision::Dead(DeadReason::RetriesSpent)
        );
    }

    #[test]
    fn jitter_scales_the_delay() {
        let mut p = policy(3, 2.0, None);
        p.jitter = true;
        assert_eq!(
            p.decide(2, Some(1), 0.25),
            Decision::Retry(Duration::from_secs(1))
        );
        assert_eq!(p.decide(2, Some(1), 0.0), Decision::Retry(Duration::ZERO));
    }
}
