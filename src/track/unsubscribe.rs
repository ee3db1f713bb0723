//! Signed unsubscribe tokens: what goes into a `List-Unsubscribe` URL and comes back when a
//! member (or their mailbox provider, RFC 8058 one-click) uses it.
//!
//! A token is `base64url(payload ‖ tag)` without padding, where the payload is
//! `version ‖ channel ‖ purpose ‖ member external id (UTF-8)` and the tag is HMAC-SHA256 under
//! the link secret over a context label and the payload. Nothing is stored per link: the token
//! alone says who wants to stop receiving what, and only the holder of the secret can make one.
//!
//! Tokens never expire (an unsubscribe link in a two-year-old email must still work). The
//! version byte lets the format change later while old links keep verifying. Rotating the
//! secret invalidates every link already sent, so don't.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use ring::hmac;

use crate::channels::{ChannelKind, Purpose};
use crate::config::{ConfigProblem, Secret};

/// The token format this module writes.
const VERSION: u8 = 1;
/// Binds the tag to this use of the secret, so a tag made for another kind of link (a click
/// tracker sharing the secret) can never pass as an unsubscribe.
const CONTEXT: &[u8] = b"tidings/unsubscribe\0";
/// HMAC-SHA256, untruncated.
const TAG_LEN: usize = 32;
/// Version, channel and purpose.
const HEADER_LEN: usize = 3;
/// The shortest secret accepted: 32 bytes, e.g. `openssl rand -base64 32`.
pub const MIN_SECRET_LEN: usize = 32;

/// The key unsubscribe links are signed with. Never printed.
#[derive(Clone)]
pub struct LinkSecret(hmac::Key);

impl LinkSecret {
    /// The secret from configuration; `key` names it in the error (e.g. `smtp.link_secret`).
    pub fn new(secret: &Secret, key: &str) -> Result<LinkSecret, ConfigProblem> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(ConfigProblem::new(
                key,
                format!("must be at least {MIN_SECRET_LEN} characters (e.g. the output of `openssl rand -base64 32`)"),
            ));
        }
        Ok(LinkSecret(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    fn tag(&self, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(CONTEXT);
        ctx.update(payload);
        ctx.sign()
    }
}

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(***)")
    }
}

/// What a valid token asks for: stop sending `purpose` messages to `member` on `channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The member's external id.
    pub member: String,
    pub channel: ChannelKind,
    pub purpose: Purpose,
}

/// Why a token was refused. None of these is the server's fault: answer 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is incomplete or damaged")]
    Malformed,
    #[error("the link was made by a newer version (format {0})")]
    UnknownVersion(u8),
    #[error("the link's signature does not match")]
    BadSignature,
}

/// The token for `member`'s link to stop `purpose` messages on `channel`. Deterministic: the
/// same inputs always give the same token.
pub fn sign(secret: &LinkSecret, member: &str, channel: ChannelKind, purpose: Purpose) -> String {
    let mut bytes = Vec::with_capacity(HEADER_LEN + member.len() + TAG_LEN);
    bytes.extend_from_slice(&[VERSION, channel_code(channel), purpose_code(purpose)]);
    bytes.extend_from_slice(member.as_bytes());
    let tag = secret.tag(&bytes);
    bytes.extend_from_slice(tag.as_ref());
    BASE64URL.encode(bytes)
}

/// What `token` asks for, if this secret signed it. The tag is checked in constant time before
/// anything in the payload is trusted.
pub fn verify(secret: &LinkSecret, token: &str) -> Result<Unsubscribe, TokenError> {
    let bytes = BASE64URL.decode(token.trim()).map_err(|_| TokenError::Malformed)?;
    if bytes.len() < HEADER_LEN + 1 + TAG_LEN {
        return Err(TokenError::Malformed);
    }
    if bytes[0] != VERSION {
        return Err(TokenError::UnknownVersion(bytes[0]));
    }
    let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    // `hmac::verify` recomputes and compares in constant time; it needs the message whole.
    let mut message = Vec::with_capacity(CONTEXT.len() + payload.len());
    message.extend_from_slice(CONTEXT);
    message.extend_from_slice(payload);
    hmac::verify(&secret.0, &message, tag).map_err(|_| TokenError::BadSignature)?;
    // Signed by us, so well-formed unless our own encoding changed without a version bump.
    let channel = channel_from(payload[1]).ok_or(TokenError::Malformed)?;
    let purpose = purpose_from(payload[2]).ok_or(TokenError::Malformed)?;
    let member = std::str::from_utf8(&payload[HEADER_LEN..]).map_err(|_| TokenError::Malformed)?;
    Ok(Unsubscribe { member: member.to_owned(), channel, purpose })
}

/// `{base}/{token}`: the URL a `List-Unsubscribe` header carries. `base` is the public address
/// of the daemon's `/unsubscribe` route, e.g. `https://club.example.com/unsubscribe`.
pub fn url(base: &str, secret: &LinkSecret, member: &str, channel: ChannelKind, purpose: Purpose) -> String {
    format!("{}/{}", base.trim_end_matches('/'), sign(secret, member, channel, purpose))
}

// The wire codes are fixed here rather than taken from the enums' order, so reordering an enum
// never breaks links already sent.
fn channel_code(channel: ChannelKind) -> u8 {
    match channel {
        ChannelKind::Sms => 1,
        ChannelKind::Email => 2,
        ChannelKind::Push => 3,
        ChannelKind::Webhook => 4,
    }
}

fn channel_from(code: u8) -> Option<ChannelKind> {
    ChannelKind::ALL.into_iter().find(|c| channel_code(*c) == code)
}

fn purpose_code(purpose: Purpose) -> u8 {
    match purpose {
        Purpose::Marketing => 1,
        Purpose::Service => 2,
    }
}

fn purpose_from(code: u8) -> Option<Purpose> {
    [Purpose::Marketing, Purpose::Service].into_iter().find(|p| purpose_code(*p) == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> LinkSecret {
        LinkSecret::new(&Secret::new(s), "smtp.link_secret").unwrap()
    }

    fn key() -> LinkSecret {
        secret("0123456789abcdef0123456789abcdef")
    }

    /// Signs and verifies, checking the round trip and that the token is URL-safe.
    fn check(member: &str, channel: ChannelKind, purpose: Purpose) {
        let token = sign(&key(), member, channel, purpose);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        let got = verify(&key(), &token).unwrap();
        assert_eq!(got, Unsubscribe { member: member.to_owned(), channel, purpose });
    }

    #[test]
    fn tokens_round_trip() {
        check("m-1", ChannelKind::Email, Purpose::Marketing);
        check("会员/42?x=1&y", ChannelKind::Sms, Purpose::Service);
        check("x", ChannelKind::Push, Purpose::Marketing);
        check("ext:9999999999", ChannelKind::Webhook, Purpose::Service);
    }

    #[test]
    fn tokens_are_deterministic_and_differ_by_every_field() {
        let a = sign(&key(), "m-1", ChannelKind::Email, Purpose::Marketing);
        assert_eq!(a, sign(&key(), "m-1", ChannelKind::Email, Purpose::Marketing));
        for other in [
            sign(&key(), "m-2", ChannelKind::Email, Purpose::Marketing),
            sign(&key(), "m-1", ChannelKind::Sms, Purpose::Marketing),
            sign(&key(), "m-1", ChannelKind::Email, Purpose::Service),
            sign(&secret("another secret, also 32 chars long"), "m-1", ChannelKind::Email, Purpose::Marketing),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn another_secret_does_not_verify() {
        let token = sign(&key(), "m-1", ChannelKind::Email, Purpose::Marketing);
        let other = secret("another secret, also 32 chars long");
        assert_eq!(verify(&other, &token), Err(TokenError::BadSignature));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let token = sign(&key(), "m-1", ChannelKind::Email, Purpose::Marketing);
        let bytes = BASE64URL.decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            let result = verify(&key(), &BASE64URL.encode(&tampered));
            let expected = if i == 0 { TokenError::UnknownVersion(VERSION ^ 0x01) } else { TokenError::BadSignature };
            assert_eq!(result, Err(expected), "byte {i}");
        }
    }

    #[test]
    fn a_payload_moved_to_another_member_is_refused() {
        // Keep the tag, change who it is for.
        let token = sign(&key(), "m-1", ChannelKind::Email, Purpose::Marketing);
        let mut bytes = BASE64URL.decode(&token).unwrap();
        let tag = bytes.split_off(bytes.len() - TAG_LEN);
        bytes.truncate(HEADER_LEN);
        bytes.extend_from_slice(b"m-2");
        bytes.extend_from_slice(&tag);
        assert_eq!(verify(&key(), &BASE64URL.encode(&bytes)), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "not base64!", "AAAA", "+/+/", &"A".repeat(40)] {
            assert_eq!(verify(&key(), token), Err(TokenError::Malformed), "{token:?}");
        }
        // Cut short by a mail client where it still decodes: the tag no longer matches.
        let token = sign(&key(), "member-0001", ChannelKind::Email, Purpose::Marketing);
        assert_eq!(verify(&key(), &token[..48]), Err(TokenError::BadSignature));
        assert!(verify(&key(), &token[..token.len() - 1]).is_err());
        assert_eq!(verify(&key(), &format!("{token}=")), Err(TokenError::Malformed));
    }

    #[test]
    fn a_short_secret_is_a_config_error_naming_the_key() {
        let err = LinkSecret::new(&Secret::new("short"), "smtp.link_secret").unwrap_err();
        assert_eq!(err.key, "smtp.link_secret");
        assert!(format!("{:?}", key()).contains("***"));
    }

    #[test]
    fn url_joins_the_base_and_the_token() {
        let token = sign(&key(), "m-1", ChannelKind::Email, Purpose::Marketing);
        let want = format!("https://club.example.com/unsubscribe/{token}");
        for base in ["https://club.example.com/unsubscribe", "https://club.example.com/unsubscribe/"] {
            assert_eq!(url(base, &key(), "m-1", ChannelKind::Email, Purpose::Marketing), want);
        }
    }
}
