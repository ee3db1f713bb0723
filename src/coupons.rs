//! Coupon codes in messages: a per-member code from an imported pool (each code issued once,
//! to one message; a retry of the message gets the same code), or a generated signed code.
//!
//! A signed code is `PREFIX-` and 16 characters from an alphabet without 0, O, 1 and I: a 48-bit
//! nonce derived from the member and the message's occurrence (so the same message always
//! carries the same code), then a 32-bit HMAC-SHA256 tag over the prefix and the nonce under
//! `coupons.secret`. Verifying needs only the code and the secret; nothing is stored.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use ring::hmac;

use crate::channels::Outgoing;
use crate::config::{ConfigProblem, Secret};
use crate::journeys::plan::{VAR_COUPON_POOL, VAR_COUPON_PREFIX};
use crate::store::{Claimed, Store};

/// Unambiguous characters: digits 2-9 and letters without I and O.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
const NONCE_LEN: usize = 6;
const TAG_LEN: usize = 4;
const BODY_CHARS: usize = (NONCE_LEN + TAG_LEN) * 8 / 5;
const NONCE_CONTEXT: &[u8] = b"tidings/coupon-nonce\0";
const TAG_CONTEXT: &[u8] = b"tidings/coupon\0";
/// The shortest secret accepted, as for unsubscribe links.
pub const MIN_SECRET_LEN: usize = 32;

/// Whether `pool` is a usable pool name.
pub fn valid_pool(pool: &str) -> bool {
    !pool.is_empty() && pool.len() <= 64 && pool.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A signed code's prefix: 1 to 8 upper-case letters and digits.
pub fn valid_prefix(prefix: &str) -> Result<(), String> {
    if (1..=8).contains(&prefix.len()) && prefix.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("{prefix:?}: use 1 to 8 upper-case letters and digits, e.g. \"WB\""))
    }
}

/// Codes to import, trimmed, blank ones dropped, duplicates within the list removed; a code with
/// whitespace inside or longer than 64 characters is refused with its index.
pub fn clean_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, (usize, String)> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, code) in codes.into_iter().enumerate() {
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        if code.len() > 64 || code.chars().any(char::is_whitespace) {
            return Err((i, format!("{code:?}: a code is up to 64 characters without spaces")));
        }
        if seen.insert(code.to_string()) {
            out.push(code.to_string());
        }
    }
    Ok(out)
}

/// The key generated codes are signed with. Never printed.
#[derive(Clone)]
pub struct Signer(hmac::Key);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

/// Why a code is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a signed code (PREFIX-XXXXXXXXXXXXXXXX)")]
    Malformed,
    #[error("the signature does not match: not issued with this secret")]
    BadSignature,
}

impl Signer {
    pub fn new(secret: &Secret, key: &str) -> Result<Signer, ConfigProblem> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(ConfigProblem::new(
                key,
                format!("must be at least {MIN_SECRET_LEN} characters (e.g. the output of `openssl rand -base64 32`)"),
            ));
        }
        Ok(Signer(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    fn mac(&self, context: &[u8], parts: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(context);
        for p in parts {
            ctx.update(p);
            ctx.update(b"\0");
        }
        ctx.sign()
    }

    /// The code for `member`'s message of `occurrence` (the same every time).
    pub fn generate(&self, prefix: &str, member_id: i64, occurrence: &str) -> String {
        let nonce =
            self.mac(NONCE_CONTEXT, &[prefix.as_bytes(), member_id.to_string().as_bytes(), occurrence.as_bytes()]);
        let mut body = [0u8; NONCE_LEN + TAG_LEN];
        body[..NONCE_LEN].copy_from_slice(&nonce.as_ref()[..NONCE_LEN]);
        let tag = self.mac(TAG_CONTEXT, &[prefix.as_bytes(), &body[..NONCE_LEN]]);
        body[NONCE_LEN..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        format!("{prefix}-{}", encode(&body))
    }

    /// Checks a code: its prefix when it is one of ours. Case and spaces do not matter.
    pub fn verify(&self, code: &str) -> Result<String, VerifyError> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        let (prefix, body) = code.rsplit_once('-').ok_or(VerifyError::Malformed)?;
        valid_prefix(prefix).map_err(|_| VerifyError::Malformed)?;
        let body = decode(body).ok_or(VerifyError::Malformed)?;
        let tag = self.mac(TAG_CONTEXT, &[prefix.as_bytes(), &body[..NONCE_LEN]]);
        // Constant-time comparison of the truncated tag.
        let expected = &tag.as_ref()[..TAG_LEN];
        let diff = expected.iter().zip(&body[NONCE_LEN..]).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff == 0 { Ok(prefix.to_string()) } else { Err(VerifyError::BadSignature) }
    }
}

fn encode(bytes: &[u8; NONCE_LEN + TAG_LEN]) -> String {
    let mut out = String::with_capacity(BODY_CHARS);
    let (mut acc, mut bits) = (0u32, 0);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    out
}

fn decode(text: &str) -> Option<[u8; NONCE_LEN + TAG_LEN]> {
    if text.len() != BODY_CHARS {
        return None;
    }
    let mut out = [0u8; NONCE_LEN + TAG_LEN];
    let (mut acc, mut bits, mut i) = (0u32, 0, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[i] = (acc >> bits) as u8;
            i += 1;
        }
    }
    Some(out)
}

/// What the dispatcher needs: the signer (when a secret is configured) and the pools' warning
/// thresholds.
#[derive(Debug, Clone, Default)]
pub struct Coupons {
    pub signer: Option<Signer>,
    pub warn_below: i64,
    pub pools: BTreeMap<String, i64>,
}

impl Coupons {
    pub fn warn_below(&self, pool: &str) -> i64 {
        self.pools.get(pool).copied().unwrap_or(self.warn_below)
    }
}

/// The codes for the messages of a batch that are about to go out and carry a coupon: one
/// `issue_coupons` call per pool (a retry gets its first code again), generated codes computed.
/// `Err(reason)` for a message whose pool is exhausted (or whose signed code has no secret): it
/// is skipped with that reason. A pool found below its threshold is warned about.
pub async fn issue(
    store: &Store,
    coupons: &Coupons,
    ready: &[(Claimed, Outgoing)],
    now: Timestamp,
) -> anyhow::Result<HashMap<i64, Result<String, String>>> {
    let mut out = HashMap::new();
    let mut by_pool: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (c, _) in ready {
        if let Some(pool) = c.vars.get(VAR_COUPON_POOL).and_then(|v| v.as_str()) {
            by_pool.entry(pool).or_default().push((c.id, c.member_id));
        } else if let Some(prefix) = c.vars.get(VAR_COUPON_PREFIX).and_then(|v| v.as_str()) {
            let code = match &coupons.signer {
                Some(s) => Ok(s.generate(prefix, c.member_id, &c.occurrence)),
                None => Err("signed coupon: coupons.secret is not set".to_string()),
            };
            out.insert(c.id, code);
        }
    }
    if by_pool.is_empty() {
        return Ok(out);
    }
    for (pool, wants) in &by_pool {
        let issued: HashMap<i64, String> = store.issue_coupons(pool, wants, now).await?.into_iter().collect();
        for (message, _) in wants {
            let code = issued.get(message).cloned().ok_or_else(|| format!("coupon pool {pool:?} exhausted"));
            if code.is_err() {
                tracing::warn!(pool, message.id = message, "coupon pool exhausted; message skipped");
            }
            out.insert(*message, code);
        }
    }
    for p in store.coupon_pools().await? {
        if by_pool.contains_key(p.pool.as_str()) && p.remaining < coupons.warn_below(&p.pool) {
            tracing::warn!(pool = %p.pool, remaining = p.remaining, total = p.total, "coupon pool running low");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> Signer {
        Signer::new(&Secret::new(secret), "coupons.secret").unwrap()
    }

    #[test]
    fn signed_codes_are_stable_short_unambiguous_and_verify() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let a = s.generate("WB", 42, "inactive60:2026-03-02T00:00:00Z:s1");
        assert_eq!(a, s.generate("WB", 42, "inactive60:2026-03-02T00:00:00Z:s1"), "deterministic");
        assert_ne!(a, s.generate("WB", 43, "inactive60:2026-03-02T00:00:00Z:s1"), "per member");
        assert_ne!(a, s.generate("WB", 42, "inactive60:2026-06-02T00:00:00Z:s1"), "per occurrence");
        assert_eq!(a.len(), 3 + BODY_CHARS);
        assert!(a.starts_with("WB-"));
        assert!(!a[3..].contains(['0', 'O', '1', 'I']), "{a}");
        assert_eq!(s.verify(&a), Ok("WB".to_string()));
        assert_eq!(s.verify(&a.to_lowercase()), Ok("WB".to_string()), "case does not matter");
        // Another secret, a changed character, another prefix, garbage.
        assert_eq!(signer("another-secret-of-32-characters!!").verify(&a), Err(VerifyError::BadSignature));
        let last = a.chars().last().unwrap();
        let flipped = format!("{}{}", &a[..a.len() - 1], if last == 'Z' { 'Y' } else { 'Z' });
        assert_eq!(s.verify(&flipped), Err(VerifyError::BadSignature));
        assert_eq!(s.verify(&format!("XX{}", &a[2..])), Err(VerifyError::BadSignature));
        assert_eq!(s.verify("WB-0000"), Err(VerifyError::Malformed));
        assert_eq!(s.verify("nonsense"), Err(VerifyError::Malformed));
    }

    #[test]
    fn encoding_round_trips() {
        let bytes = [0u8, 255, 1, 128, 77, 3, 9, 200, 17, 64];
        assert_eq!(decode(&encode(&bytes)), Some(bytes));
    }

    #[test]
    fn short_secrets_and_bad_prefixes_are_refused() {
        assert!(Signer::new(&Secret::new("short"), "coupons.secret").is_err());
        assert!(valid_prefix("WB").is_ok());
        assert!(valid_prefix("wb").is_err());
        assert!(valid_prefix("").is_err());
        assert!(valid_pool("winback-2026"));
        assert!(!valid_pool("win back"));
    }
}
