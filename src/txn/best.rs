//! Choosing the response a forking proxy sends upstream (RFC 3261 §16.7
//! step 6).
//!
//! When every branch has a final response (or timed out, which counts as a
//! 408), the proxy picks one: a 6xx if there is any, otherwise the lowest
//! class (3xx before 4xx before 5xx). Within 4xx it prefers the responses
//! that tell the caller how to retry (401, 407, 415, 420, 484); otherwise
//! the lowest code, then the earliest. A chosen 503 goes upstream as 500, since the 503 described
//! the downstream server, not this proxy. Challenges of all 401/407
//! responses are merged into the chosen one by the proxy (it has the
//! messages; this module only sees status codes).

/// Index of the best response in `codes` (in arrival order), or `None` for
/// an empty list. Within a rank the lowest code wins (as in Kamailio), then
/// the earliest.
pub fn best(codes: &[u16]) -> Option<usize> {
    codes.iter().enumerate().min_by_key(|&(i, &c)| (rank(c), c, i)).map(|(i, _)| i)
}

fn rank(code: u16) -> u32 {
    match code {
        600..=699 => 0,
        300..=399 => 1,
        401 | 407 | 415 | 420 | 484 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// The status to send upstream for the chosen `code`.
pub fn upstream_status(code: u16) -> u16 {
    if code == 503 { 500 } else { code }
}

/// True when the response ends the fork at once: a 6xx (the remaining
/// branches are cancelled, §16.7 step 5) or a 2xx.
pub fn ends_fork(code: u16) -> bool {
    (200..300).contains(&code) || code >= 600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_hundreds_win_then_lowest_class() {
        assert_eq!(best(&[]), None);
        assert_eq!(best(&[486, 603, 302]), Some(1));
        assert_eq!(best(&[500, 404, 302]), Some(2));
        assert_eq!(best(&[503, 486, 408]), Some(1));
        assert_eq!(best(&[486, 404]), Some(1), "the lowest code within a class");
        assert_eq!(best(&[480, 480]), Some(0), "then the earliest");
    }

    #[test]
    fn retry_information_is_preferred_in_4xx() {
        assert_eq!(best(&[404, 408, 407]), Some(2));
        assert_eq!(best(&[486, 401, 484]), Some(1));
    }

    #[test]
    fn service_unavailable_becomes_500() {
        assert_eq!(upstream_status(503), 500);
        assert_eq!(upstream_status(486), 486);
        assert!(ends_fork(200) && ends_fork(603) && !ends_fork(486));
    }
}
