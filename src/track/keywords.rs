//! Inbound SMS opt-out keywords: what a member replies to stop messages. English carrier
//! keywords (STOP, UNSUBSCRIBE, CANCEL, END, QUIT, STOPALL…) and the Chinese ones SMS footers
//! ask for (T, TD, 退订, 取消, 退出, 回T退订…). Pure: text in, yes or no.

/// The keywords, upper case, compared after normalising the reply.
const KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "UNSUB",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT OUT",
    "OPT-OUT",
    "REVOKE",
    "T",
    "TD",
    "退订",
    "退定",
    "取消",
    "取消订阅",
    "退出",
    "回T退订",
    "T退订",
    "TD退订",
    "退订短信",
];

/// Whether an inbound SMS body is an opt-out: the whole reply, trimmed, without surrounding
/// punctuation, in any case and in full-width or half-width letters, is one of the keywords.
/// A sentence that merely contains "stop" is not.
pub fn is_opt_out(body: &str) -> bool {
    let normalised: String = body
        .chars()
        .map(|c| match c {
            // Full-width ASCII (Ｔ, ＳＴＯＰ) and the ideographic space.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect::<String>()
        .to_uppercase();
    let trimmed =
        normalised.trim_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation() || "。！，、".contains(c));
    let words: Vec<&str> = trimmed.split_whitespace().collect();
    let collapsed = words.join(" ");
    KEYWORDS.contains(&collapsed.as_str())
}

/// Whether an SMS text carries an opt-out footer that a reply keyword answers: "Reply STOP to
/// opt out", "Text END to stop", "回T退订", "退订回T"… (a Chinese footer names 退订; an English
/// one asks for a reply whose word [`is_opt_out`] accepts).
pub fn has_opt_out_footer(text: &str) -> bool {
    let upper = text.to_uppercase();
    if upper.contains("退订") || upper.contains("取消订阅") {
        return true;
    }
    ["REPLY ", "TEXT ", "SEND ", "回复"].iter().any(|lead| {
        upper.match_indices(lead).any(|(i, _)| {
            let rest = upper[i + lead.len()..].trim_start();
            let word: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
            !word.is_empty() && is_opt_out(&word)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{has_opt_out_footer, is_opt_out};

    #[test]
    fn footers_that_a_reply_keyword_answers() {
        for text in ["Hi! Reply STOP to opt out.", "Sale today. Text END to stop", "生日快乐！回T退订", "优惠 退订回T"]
        {
            assert!(has_opt_out_footer(text), "{text}");
        }
        for text in ["Happy birthday!", "Reply to this message to say hi", "Don't stop believing"] {
            assert!(!has_opt_out_footer(text), "{text}");
        }
    }

    #[test]
    fn carrier_and_chinese_keywords_opt_out() {
        for body in [
            "STOP",
            "stop",
            " Stop. ",
            "STOP!",
            "Stop all",
            "UNSUBSCRIBE",
            "unsub",
            "Cancel",
            "end",
            "QUIT",
            "T",
            "t",
            "TD",
            "td",
            "Ｔ",
            "ＴＤ",
            "退订",
            " 退订。",
            "取消",
            "退出",
            "回T退订",
            "opt out",
            "OPTOUT",
            "stopall",
        ] {
            assert!(is_opt_out(body), "{body:?}");
        }
    }

    #[test]
    fn ordinary_replies_do_not() {
        for body in [
            "",
            "thanks",
            "Please don't stop the offers",
            "stop it now please",
            "TT",
            "退订了吗？",
            "Yes",
            "STOPS",
            "结束",
        ] {
            assert!(!is_opt_out(body), "{body:?}");
        }
    }
}
