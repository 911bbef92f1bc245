use std::time::Duration;

use chrono::{DateTime, Utc};

/// A `Retry-After` header: a number of seconds or an HTTP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// Wait this long.
    Delay(Duration),
    /// Wait until then.
    At(DateTime<Utc>),
}

impl RetryAfter {
    /// Parses a header value; `None` if it is neither form.
    ///
    /// ```
    /// use std::time::Duration;
    /// use headwater_core::policy::RetryAfter;
    /// assert_eq!(RetryAfter::parse("120"), Some(RetryAfter::Delay(Duration::from_secs(120))));
    /// assert!(matches!(RetryAfter::parse("Wed, 21 Oct 2015 07:28:00 GMT"), Some(RetryAfter::At(_))));
    /// assert_eq!(RetryAfter::parse("soon"), None);
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
            return value
                .parse::<u64>()
                .ok()
                .map(|seconds| Self::Delay(Duration::from_secs(seconds)));
        }
        DateTime::parse_from_rfc2822(value)
            .ok()
            .map(|date| Self::At(date.with_timezone(&Utc)))
    }

    /// How long to wait from `now` (zero for a date in the past).
    pub fn delay_from(&self, now: DateTime<Utc>) -> Duration {
        match self {
            Self::Delay(delay) => *delay,
            Self::At(at) => (*at - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            RetryAfter::parse(" 7 ").unwrap().delay_from(now),
            Duration::from_secs(7)
        );
        let at = RetryAfter::parse("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(at.delay_from(now), Duration::from_secs(60));
        let past = RetryAfter::parse("Wed, 21 Oct 2015 07:00:00 GMT").unwrap();
        assert_eq!(past.delay_from(now), Duration::ZERO);
    }

    #[test]
    fn garbage_is_ignored() {
        for value in ["", "-1", "1.5", "soon", "99999999999999999999999"] {
            assert_eq!(RetryAfter::parse(value), None, "{value}");
        }
    }
}
