//! Email complaints: a feedback-loop report (ARF, RFC 5965) a mailbox provider sends when a
//! recipient marks a message as spam. The report is a `multipart/report` whose
//! `message/feedback-report` part names the feedback type and the original recipient
//! (`Original-Rcpt-To`); the third part carries the original message or its headers, whose `To`
//! is used when the report names no recipient. Pure: parsing only.

use mail_parser::{MessageParser, MimeHeaders};

/// What a report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// `abuse`, `fraud`, `virus`, `other`, `not-spam`... lower case.
    pub feedback_type: String,
    /// The complaining recipients' addresses, lower case.
    pub recipients: Vec<String>,
}

impl Complaint {
    /// Whether the report is a complaint about the mail (rather than, say, `not-spam`).
    pub fn is_abuse(&self) -> bool {
        self.feedback_type == "abuse"
    }
}

/// Reads an ARF report.
pub fn parse_arf(raw: &[u8]) -> Result<Complaint, String> {
    let msg = MessageParser::default().parse(raw).ok_or("not a MIME message")?;
    let is = |p: &mail_parser::MessagePart, ctype: &str, sub: &str| {
        p.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case(ctype) && c.subtype().is_some_and(|s| s.eq_ignore_ascii_case(sub))
        })
    };
    let report = msg
        .parts
        .iter()
        .find(|p| is(p, "message", "feedback-report"))
        .ok_or("no message/feedback-report part (not an RFC 5965 report)")?;
    let report = fields(report.contents());
    let feedback_type = report
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("feedback-type"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .ok_or("the report has no Feedback-Type")?;
    let mut recipients: Vec<String> = report
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("original-rcpt-to"))
        .filter_map(|(_, v)| address(v))
        .collect();
    if recipients.is_empty() {
        let original = msg.parts.iter().find(|p| is(p, "message", "rfc822") || is(p, "text", "rfc822-headers"));
        if let Some(original) = original {
            recipients = fields(original.contents())
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("to"))
                .flat_map(|(_, v)| v.split(',').filter_map(address).collect::<Vec<_>>())
                .collect();
        }
    }
    recipients.sort();
    recipients.dedup();
    if recipients.is_empty() {
        return Err("the report names no recipient (Original-Rcpt-To, or the original message's To)".into());
    }
    Ok(Complaint { feedback_type, recipients })
}

/// Header-style fields (`Name: value`, continuation lines folded) up to the first blank line.
fn fields(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The address in `rfc822;user@example.com`, `<user@example.com>` or `Name <user@example.com>`.
fn address(v: &str) -> Option<String> {
    let v = v.trim();
    let v = v.split_once(';').map_or(v, |(kind, rest)| if kind.eq_ignore_ascii_case("rfc822") { rest } else { v });
    let v = match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    let v = v.trim();
    (v.contains('@') && !v.contains(char::is_whitespace)).then(|| v.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of RFC 5965's example (appendix B.1), as a mailbox provider sends it.
    const SAMPLE: &str = "From: <abusedesk@example.com>\r
Date: Thu, 8 Mar 2005 17:40:36 EDT\r
Subject: FW: Earn money\r
To: <abuse@example.net>\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report;\r
     boundary=\"part1_13d.2e68ed54_boundary\"\r
\r
--part1_13d.2e68ed54_boundary\r
Content-Type: text/plain; charset=\"US-ASCII\"\r
Content-Transfer-Encoding: 7bit\r
\r
This is an email abuse report for an email message received from IP\r
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.  For more information\r
about this format please see http://www.mipassoc.org/arf/.\r
\r
--part1_13d.2e68ed54_boundary\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: abuse\r
User-Agent: SomeGenerator/1.0\r
Version: 1\r
Original-Mail-From: <somespammer@example.net>\r
Original-Rcpt-To: <User@Example.com>\r
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r
Reporting-MTA: dns; mail.example.com\r
Source-IP: 192.0.2.1\r
\r
--part1_13d.2e68ed54_boundary\r
Content-Type: message/rfc822\r
Content-Disposition: inline\r
\r
From: <somespammer@example.net>\r
Received: from mailserver.example.net (mailserver.example.net\r
        [192.0.2.1]) by example.com with ESMTP id M63d4137594e46;\r
        Thu, 08 Mar 2005 14:00:00 -0400\r
To: <Undisclosed Recipients>\r
Subject: Earn money\r
MIME-Version: 1.0\r
Content-type: text/plain\r
Message-ID: 8787KJKJ3K4J3K4J3K4J3.mail@example.net\r
Date: Thu, 02 Sep 2004 12:34:56 EDT\r
\r
Spam Spam Spam\r
Spam Spam Spam\r
--part1_13d.2e68ed54_boundary--\r
";

    #[test]
    fn an_rfc_5965_report_names_the_recipient() {
        let c = parse_arf(SAMPLE.as_bytes()).unwrap();
        assert_eq!(c, Complaint { feedback_type: "abuse".into(), recipients: vec!["user@example.com".into()] });
        assert!(c.is_abuse());
    }

    #[test]
    fn without_original_rcpt_to_the_original_to_is_used() {
        let sample = SAMPLE
            .replace("Original-Rcpt-To: <User@Example.com>\r\n", "")
            .replace("To: <Undisclosed Recipients>", "To: Ada <ada@example.org>");
        assert_eq!(parse_arf(sample.as_bytes()).unwrap().recipients, ["ada@example.org"]);
    }

    #[test]
    fn other_mail_is_not_a_report() {
        assert!(
            parse_arf(b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n").unwrap_err().contains("feedback-report")
        );
        let no_type = SAMPLE.replace("Feedback-Type: abuse\r\n", "");
        assert!(parse_arf(no_type.as_bytes()).unwrap_err().contains("Feedback-Type"));
    }
}
