//! The one redelivery backoff of the Lambda service emulator.
//!
//! A failed queue message is made visible again after this pause, and a
//! failed stream batch is retried after it: `base`, then twice that, and so
//! on, at most `cap` (a queue's visibility timeout; 5 s for a stream, which
//! Lambda retries at once on its own and the emulator only spaces out).

use std::time::Duration;

/// The pause before redelivery number `attempt` (1 for the first retry):
/// `base · 2^(attempt − 1)`, never more than `cap`.
pub fn redelivery(base: Duration, attempt: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles from the base on each attempt, and stops at the cap.
    #[test]
    fn doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (1..=6).map(|n| redelivery(ms(100), n, ms(1_000))).collect();
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), ms(1_000), ms(1_000)]
        );
        assert_eq!(
            redelivery(ms(100), 0, ms(1_000)),
            ms(100),
            "attempt 0 is the base"
        );
        assert_eq!(
            redelivery(ms(1), u32::MAX, Duration::MAX),
            ms(1 << 10),
            "the exponent stops at 10"
        );
    }
}
