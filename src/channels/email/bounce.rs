//! Hard bounces: which refusals of a recipient mean the address is gone for good.

/// Whether a 5xx reply to RCPT says the mailbox does not exist (a hard bounce), rather than that
/// this message or this sender is refused (policy, spam, a full mailbox, our own address).
///
/// The enhanced status code (RFC 3463), when the reply has one, decides: 5.1.1 bad mailbox,
/// 5.1.2 bad domain, 5.1.3 bad address syntax, 5.1.6 mailbox moved, 5.1.10 null MX. Any other
/// (5.7.1 policy, 5.2.2 mailbox full, 5.1.7/5.1.8 our sender address) is not. Without one, the
/// basic codes 550, 551 and 553 mean the mailbox does not exist, unless the text says the
/// refusal is about spam or policy: suppressing a good address costs a member for good.
pub(super) fn address_gone(code: u16, text: &str) -> bool {
    if let Some((class, subject, detail)) = enhanced_status(text) {
        return class == 5 && subject == 1 && matches!(detail, 1 | 2 | 3 | 6 | 10);
    }
    let text = text.to_ascii_lowercase();
    let policy = ["spam", "block", "policy", "reputation", "rbl", "listed", "rate limit", "relay"];
    matches!(code, 550 | 551 | 553) && !policy.iter().any(|word| text.contains(word))
}

/// `5.1.1` at the start of a reply's text as numbers.
fn enhanced_status(text: &str) -> Option<(u16, u16, u16)> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| p.parse::<u16>().ok());
    let status = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_bounces_are_told_from_other_refusals() {
        fn check(code: u16, text: &str, gone: bool) {
            assert_eq!(address_gone(code, text), gone, "{code} {text}");
        }
        check(550, "5.1.1 no such user", true);
        check(550, "5.1.2 bad destination system", true);
        check(553, "5.1.3 bad destination mailbox address syntax", true);
        check(551, "5.1.6 mailbox has moved", true);
        check(550, "5.1.10 recipient address has null MX", true);
        // Refusals of this message or this sender, not of the address.
        check(550, "5.7.1 message rejected as spam", false);
        check(550, "5.1.8 bad sender domain", false);
        check(550, "5.1.0 address rejected", false);
        check(552, "5.2.2 mailbox full", false);
        check(554, "5.7.1 relay access denied", false);
        // No enhanced code: the basic code decides, unless the text says policy.
        check(550, "no such user here", true);
        check(551, "user not local; please try <forward@example.org>", true);
        check(553, "mailbox name not allowed", true);
        check(550, "blocked: 192.0.2.1 listed at zen.spamhaus.org", false);
        check(550, "relaying denied", false);
        check(554, "transaction failed", false);
        check(552, "requested mail action aborted", false);
    }
}
