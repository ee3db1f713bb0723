//! `List-Unsubscribe` (RFC 2369) with one-click (RFC 8058) on marketing email: a signed HTTPS
//! link per member (see [`crate::track::unsubscribe`]), optionally a `mailto:` too, and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`. Service mail carries neither.

use lettre::Address;
use lettre::message::header::{HeaderName, HeaderValue};
use reqwest::Url;

use super::SmtpConfig;
use crate::channels::{ChannelKind, Purpose};
use crate::config::{ConfigProblem, resolve_secret};
use crate::track::unsubscribe::{self, LinkSecret};

/// What marketing email's unsubscribe headers are built from.
pub(super) struct ListUnsubscribe {
    /// The public address of the daemon's `/unsubscribe` route, without a trailing slash.
    base: String,
    secret: LinkSecret,
    mailto: Option<Address>,
}

impl ListUnsubscribe {
    /// `None` when `smtp.unsubscribe_url` is unset: marketing email then goes without the
    /// headers (and Gmail and Yahoo treat a bulk sender without them as a spammer).
    pub(super) fn new(cfg: &SmtpConfig) -> Result<Option<ListUnsubscribe>, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mailto = match cfg.unsubscribe_mailto.as_deref().map(str::trim) {
            Some(text) => match text.parse::<Address>() {
                Ok(address) => Some(address),
                Err(e) => {
                    problems.push(ConfigProblem::new(
                        "smtp.unsubscribe_mailto",
                        format!("{text:?} is not an email address: {e}"),
                    ));
                    None
                }
            },
            None => None,
        };
        let Some(url) = cfg.unsubscribe_url.as_deref() else {
            if cfg.unsubscribe_mailto.is_some() {
                problems.push(ConfigProblem::new(
                    "smtp.unsubscribe_mailto",
                    "needs smtp.unsubscribe_url too: one-click unsubscribe (RFC 8058) is an HTTPS link",
                ));
            }
            // A secret without a URL is still checked: the HTTP endpoint uses it.
            if let Err(problem) = link_secret(cfg) {
                problems.push(problem);
            }
            return if problems.is_empty() { Ok(None) } else { Err(problems) };
        };
        let base = match check_url(url) {
            Ok(base) => Some(base),
            Err(problem) => {
                problems.push(ConfigProblem::new("smtp.unsubscribe_url", problem));
                None
            }
        };
        let secret = match link_secret(cfg) {
            Ok(Some(secret)) => Some(secret),
            Ok(None) => {
                problems.push(ConfigProblem::new(
                    "smtp.link_secret",
                    "missing secret: unsubscribe links are signed with it; set smtp.link_secret or \
                     smtp.link_secret_file",
                ));
                None
            }
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        match (base, secret) {
            (Some(base), Some(secret)) if problems.is_empty() => Ok(Some(ListUnsubscribe { base, secret, mailto })),
            _ => Err(problems),
        }
    }

    /// The two headers for `member`'s marketing email.
    pub(super) fn headers(&self, member: &str) -> [HeaderValue; 2] {
        let url = unsubscribe::url(&self.base, &self.secret, member, ChannelKind::Email, Purpose::Marketing);
        let mut value = format!("<{url}>");
        if let Some(mailto) = &self.mailto {
            // The token in the subject lets whoever reads that mailbox verify the request.
            let token = unsubscribe::sign(&self.secret, member, ChannelKind::Email, Purpose::Marketing);
            value.push_str(&format!(", <mailto:{mailto}?subject=unsubscribe%20{token}>"));
        }
        [
            HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), value),
            HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ),
        ]
    }
}

/// The key unsubscribe links are signed with (`smtp.link_secret` or `smtp.link_secret_file`),
/// if one is configured. The HTTP endpoint that takes the links needs the same one.
pub fn link_secret(cfg: &SmtpConfig) -> Result<Option<LinkSecret>, ConfigProblem> {
    if cfg.link_secret.is_none() && cfg.link_secret_file.is_none() {
        return Ok(None);
    }
    let secret = resolve_secret(cfg.link_secret.as_ref(), cfg.link_secret_file.as_deref(), "smtp.link_secret")?;
    let inline = cfg.link_secret.as_ref().is_some_and(|s| !s.expose().is_empty());
    LinkSecret::new(&secret, if inline { "smtp.link_secret" } else { "smtp.link_secret_file" }).map(Some)
}

/// The base URL without a trailing slash, or what is wrong with it. RFC 8058 wants HTTPS; plain
/// HTTP is allowed to loopback only (a local reverse proxy, tests).
fn check_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let url = Url::parse(text)
        .map_err(|e| format!("{text:?} is not a URL such as https://club.example.com/unsubscribe: {e}"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(format!("{text:?} must be an https URL (one-click unsubscribe requires HTTPS)")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment: the token is appended as a path segment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(extra: &str) -> SmtpConfig {
        let text = format!("host = \"smtp.example.com\"\nfrom = \"Club <club@example.com>\"\n{extra}");
        toml::from_str(&text).expect("test config parses")
    }

    /// The keys `ListUnsubscribe::new` names for a config with `extra` lines.
    fn check(extra: &str, expected: &[&str]) {
        let keys: Vec<String> = match ListUnsubscribe::new(&config(extra)) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.key).collect(),
        };
        assert_eq!(keys, expected, "for {extra:?}");
    }

    #[test]
    fn config_problems_name_their_key() {
        let secret = format!("link_secret = \"{SECRET}\"");
        check("", &[]);
        check(&format!("unsubscribe_url = \"https://club.example.com/unsubscribe\"\n{secret}"), &[]);
        check(&format!("unsubscribe_url = \"http://127.0.0.1:8080/unsubscribe/\"\n{secret}"), &[]);
        check("unsubscribe_url = \"https://club.example.com/unsubscribe\"", &["smtp.link_secret"]);
        check(
            "unsubscribe_url = \"https://club.example.com/u\"\nlink_secret_file = \"/nonexistent/secret\"",
            &["smtp.link_secret_file"],
        );
        check("unsubscribe_url = \"https://club.example.com/u\"\nlink_secret = \"short\"", &["smtp.link_secret"]);
        check(&format!("unsubscribe_url = \"http://club.example.com/u\"\n{secret}"), &["smtp.unsubscribe_url"]);
        check(&format!("unsubscribe_url = \"https://club.example.com/u?x=1\"\n{secret}"), &["smtp.unsubscribe_url"]);
        check(&format!("unsubscribe_url = \"club.example.com/u\"\n{secret}"), &["smtp.unsubscribe_url"]);
        check(
            &format!("unsubscribe_mailto = \"unsubscribe@club.example.com\"\n{secret}"),
            &["smtp.unsubscribe_mailto"],
        );
        check(
            &format!("unsubscribe_url = \"https://club.example.com/u\"\nunsubscribe_mailto = \"nope\"\n{secret}"),
            &["smtp.unsubscribe_mailto"],
        );
        check("link_secret = \"short\"", &["smtp.link_secret"]);
    }

    #[test]
    fn headers_carry_a_verifiable_link_and_the_one_click_post() {
        let cfg = config(&format!(
            "unsubscribe_url = \"https://club.example.com/unsubscribe/\"\nunsubscribe_mailto = \"bye@club.example.com\"\nlink_secret = \"{SECRET}\""
        ));
        let list = ListUnsubscribe::new(&cfg).unwrap().unwrap();
        let [unsubscribe, post] = list.headers("m-1");
        let mut headers = lettre::message::header::Headers::new();
        headers.insert_raw(unsubscribe);
        headers.insert_raw(post);
        let value = headers.get_raw("List-Unsubscribe").unwrap();
        let token = value
            .strip_prefix("<https://club.example.com/unsubscribe/")
            .and_then(|rest| rest.split_once('>'))
            .map(|(token, _)| token)
            .unwrap_or_else(|| panic!("{value}"));
        assert!(value.ends_with(&format!(", <mailto:bye@club.example.com?subject=unsubscribe%20{token}>")), "{value}");
        let secret = link_secret(&cfg).unwrap().unwrap();
        let got = unsubscribe::verify(&secret, token).unwrap();
        assert_eq!((got.member.as_str(), got.channel, got.purpose), ("m-1", ChannelKind::Email, Purpose::Marketing));
        assert_eq!(headers.get_raw("List-Unsubscribe-Post"), Some("List-Unsubscribe=One-Click"));
    }
}
