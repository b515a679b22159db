//! Deadlines of composite calls: every backend call gets what is left of the
//! caller's deadline (its `grpc-timeout`, or the gateway's request timeout),
//! so no backend keeps working for a caller that has given up.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Request;

#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// The caller's deadline: its `grpc-timeout`, or `default` without one.
    pub fn of<T>(request: &Request<T>, default: Duration) -> Self {
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(default, |t| t.min(default));
        Self(Instant::now() + timeout)
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// A backend request that carries what is left of the deadline.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.remaining());
        request
    }
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "S", "12", "123456789S", "5x", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_callers_shorter_deadline_wins() {
        let mut request = Request::new(());
        request.set_timeout(Duration::from_millis(300));
        let deadline = Deadline::of(&request, Duration::from_secs(30));
        assert!(deadline.remaining() <= Duration::from_millis(300));
        let without = Deadline::of(&Request::new(()), Duration::from_secs(30));
        assert!(without.remaining() > Duration::from_secs(29));
    }
}
