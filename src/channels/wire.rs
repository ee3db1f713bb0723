//! What the HTTP providers share. All of them: `Retry-After` and error texts without URLs. The
//! HTTP SMS providers (Aliyun, Tencent Cloud, the generic HTTP gateway) also: one client built
//! the same way, base URL checks, the split between a failure before the provider saw the
//! request (transient) and one after (unknown), and the hashing their request signatures use.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

use crate::channels::SendOutcome;

/// Connecting gets at most this long, even when the whole request may take longer.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP client per provider: a connect timeout and a total timeout (reqwest has neither by
/// default), and no redirects (a redirect from an API means a wrong base URL; following it
/// would turn a POST into a GET, or send the credentials elsewhere).
pub(crate) fn client(provider: &str, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| anyhow::anyhow!("{provider}: cannot build the http client: {e}"))
}

/// An API base URL: http(s), a host, no credentials, no query or fragment. Problems do not echo
/// the URL, which may hold credentials.
pub(crate) fn base_url(raw: &str, secret_key: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) url".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("must not carry credentials; set {secret_key} instead"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_string());
    }
    Ok(url)
}

/// The `Host` header reqwest sends for `url`: the host, and the port when it is not the
/// scheme's default. Signatures cover it, so it must match byte for byte.
pub(crate) fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// `+` then 2 to 15 digits, the first not 0.
pub(crate) fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// What came back: the status, the `Retry-After` hint, and the body (which may still break off).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Result<Vec<u8>, reqwest::Error>,
}

/// Sends the request and reads the whole answer.
pub(crate) async fn exchange(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = response.bytes().await.map(|b| b.to_vec());
    Ok(Answer { status, retry_after, body })
}

/// Sends the request, reads the whole answer and classifies it with the provider's `classify`
/// (status, body, `Retry-After`). Without a complete answer (no response, or a body that broke
/// off: whether the provider took the message is in the body) it is a [`transport_failure`].
pub(crate) async fn send_classified(
    provider: &str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
    message_id: i64,
    classify: impl FnOnce(StatusCode, &[u8], Option<Duration>) -> SendOutcome,
) -> SendOutcome {
    let answer = match exchange(request).await {
        Ok(answer) => answer,
        Err(e) => return transport_failure(provider, e, timeout),
    };
    let body = match answer.body {
        Ok(body) => body,
        Err(e) => return transport_failure(provider, e, timeout),
    };
    let outcome = classify(answer.status, &body, answer.retry_after);
    match &outcome {
        SendOutcome::Sent { provider_id } => {
            tracing::debug!(message.id = message_id, provider_id = %provider_id, "{provider} accepted the message");
        }
        SendOutcome::Transient { error, .. }
        | SendOutcome::Permanent { error }
        | SendOutcome::Gone { error }
        | SendOutcome::Unknown { error } => {
            tracing::debug!(message.id = message_id, status = answer.status.as_u16(), %error, "{provider} refused the message");
        }
    }
    outcome
}

/// The request got no complete HTTP answer. A failure to connect means the provider never saw
/// it: worth another try. A timeout or a dropped connection after that may come after the
/// provider accepted the message: retrying could send the SMS twice, so the outcome is unknown.
pub(crate) fn transport_failure(provider: &str, e: reqwest::Error, timeout: Duration) -> SendOutcome {
    if e.is_connect() {
        let error = format!("{provider}: cannot connect: {}", describe(e));
        return SendOutcome::Transient { error, retry_after: None };
    }
    let error = if e.is_timeout() {
        format!("{provider}: no answer within {}s; the message may have been accepted", timeout.as_secs())
    } else {
        format!("{provider}: the request failed after it was sent: {}", describe(e))
    };
    SendOutcome::Unknown { error }
}

/// `Retry-After` as delta-seconds or an HTTP-date (relative to `now`; a date in the past means
/// "now"). Anything else is ignored.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A reqwest error and its causes, without the URL.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        let part = err.to_string();
        // Some layers repeat their cause in their own message; say each text once.
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = err.source();
    }
    text
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex of SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encoding as RFC 3986 says: everything but letters, digits and `-_.~` (so a space is
/// `%20`, never `+`, and `*` is `%2A`), upper-case hex.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let check = |value: &str, expected: Option<u64>| {
            assert_eq!(parse_retry_after(value, now), expected.map(Duration::from_secs), "{value:?}");
        };
        check("7", Some(7));
        check("Sun, 06 Nov 1994 08:50:07 GMT", Some(30));
        check("Sun, 06 Nov 1994 08:00:00 GMT", Some(0));
        check("soon", None);
    }

    #[test]
    fn hashing() {
        // FIPS 180-2 and RFC 4231 (test case 2) vectors.
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc3986_encoding() {
        let check = |input: &str, expected: &str| assert_eq!(percent_encode(input), expected, "{input:?}");
        check("AZaz09-_.~", "AZaz09-_.~");
        check("a b*c+d/e", "a%20b%2Ac%2Bd%2Fe");
        check("{\"n\":\"王\"}", "%7B%22n%22%3A%22%E7%8E%8B%22%7D");
    }

    #[test]
    fn hosts() {
        let host = |u: &str| host_header(&Url::parse(u).unwrap());
        assert_eq!(host("https://dysmsapi.aliyuncs.com"), "dysmsapi.aliyuncs.com");
        assert_eq!(host("https://dysmsapi.aliyuncs.com:443/"), "dysmsapi.aliyuncs.com");
        assert_eq!(host("http://127.0.0.1:8123/x"), "127.0.0.1:8123");
    }

    #[test]
    fn base_urls() {
        assert!(base_url("https://sms.tencentcloudapi.com", "k").is_ok());
        assert!(base_url("ftp://x", "k").is_err());
        assert!(base_url("https://u:p@x", "k").unwrap_err().contains("set k"));
        assert!(base_url("https://x/?a=1", "k").is_err());
    }
}
