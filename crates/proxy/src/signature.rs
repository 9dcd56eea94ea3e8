//! Signed HTTP bodies, both ways: the billing webhook Warden receives and
//! the webhooks it sends. The scheme is Stripe's: a header `t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; the timestamp inside
//! the MAC lets a receiver refuse a captured body replayed later.

use hmac::{Hmac, Mac};

type HmacSha256 = Hmac<sha2::Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    NoTimestamp,
    /// The timestamp is this many seconds from now.
    Stale(u64),
    Mismatch,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "no signature header"),
            Self::NoTimestamp => write!(f, "the signature has no timestamp t="),
            Self::Stale(secs) => write!(
                f,
                "the signature's timestamp is {secs} s from now: a replayed or delayed body"
            ),
            Self::Mismatch => write!(f, "the signature does not match the body"),
        }
    }
}

fn mac(secret: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Checks a header against `body` (in constant time) and its timestamp
/// against `tolerance_secs` around `now_secs`.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Refusal::NoTimestamp)?;
    let skew = now_secs.abs_diff(timestamp);
    if skew > tolerance_secs {
        return Err(Refusal::Stale(skew));
    }
    let valid = signatures.iter().any(|hex| {
        from_hex(hex).is_some_and(|given| mac(secret, timestamp, body).verify_slice(&given).is_ok())
    });
    if valid {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_signature_of_this_body_under_this_secret_passes() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("s3cret", 1000, body);
        assert_eq!(verify("s3cret", Some(&header), body, 1000, 300), Ok(()));
        assert_eq!(verify("s3cret", Some(&header), body, 1299, 300), Ok(()));
        assert_eq!(
            verify("s3cret", None, body, 1000, 300),
            Err(Refusal::Missing)
        );
        assert_eq!(
            verify("s3cret", Some(&header), body, 1301, 300),
            Err(Refusal::Stale(301))
        );
        assert_eq!(
            verify("s3cret", Some(&header), b"{}", 1000, 300),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify("other", Some(&header), body, 1000, 300),
            Err(Refusal::Mismatch)
        );
        let odd = verify("s3cret", Some("t=1000,v1=zz"), body, 1000, 300);
        assert_eq!(odd, Err(Refusal::Mismatch));
    }
}
