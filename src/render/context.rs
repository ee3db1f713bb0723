//! The render context: what a template sees of a member, an occurrence, the rule and the
//! programme. Built the same way for sending, previews and template validation.

use serde_json::{Map, Value, json};

use crate::members::Member;

/// The context for one message.
pub fn build(
    member: &Member,
    occurrence: &Map<String, Value>,
    programme_name: &str,
    rule_id: &str,
    locale: &str,
    time_zone: &str,
) -> Value {
    json!({
        "locale": locale,
        "time_zone": time_zone,
        "member": {
            "external_id": member.external_id,
            "name": member.name,
            "first_name": first_name(&member.name),
            "phone": member.phone,
            "email": member.email,
            "tier": member.tier,
            "points": member.points,
            "birth_date": member.birth_date.map(|d| d.to_string()),
            "lunar_birthday": member.lunar_birthday.map(|b| b.to_string()),
            "member_since": member.member_since.map(|d| d.to_string()),
            "attributes": member.attributes,
            "value": value(member),
        },
        "occurrence": occurrence,
        "programme": { "name": programme_name },
        "rule": { "id": rule_id },
    })
}

/// The member's value for templates: segment, RFM scores, P(alive) and expected purchases (two
/// decimals). Null fields before the first refresh, so templates can `{{#if}}` on them.
fn value(member: &Member) -> Value {
    let round = |x: f64| (x * 100.0).round() / 100.0;
    match &member.value {
        None => json!({
            "segment": null, "rfm": null, "r": null, "f": null, "m": null,
            "p_alive": null, "expected_purchases": null, "frequency": null, "monetary": null,
        }),
        Some(v) => json!({
            "segment": v.segment.as_str(),
            "rfm": format!("{}{}{}", v.r, v.f, v.m),
            "r": v.r, "f": v.f, "m": v.m,
            "p_alive": v.p_alive.map(round),
            "expected_purchases": v.expected_purchases.map(round),
            "frequency": v.frequency,
            "monetary": round(v.monetary),
        }),
    }
}

/// How to greet someone by name: a Chinese name of two to four characters is a one-character
/// surname and a given name (王小明 → 小明); a Western name greets by its first word.
pub fn first_name(name: &str) -> String {
    let name = name.trim();
    let chars: Vec<char> = name.chars().collect();
    let cjk = |c: &char| ('\u{4e00}'..='\u{9fff}').contains(c);
    if chars.iter().all(cjk) && (2..=4).contains(&chars.len()) {
        return chars[1..].iter().collect();
    }
    name.split_whitespace().next().unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::first_name;

    #[test]
    fn greets_by_given_name() {
        for (full, first) in [("王小明", "小明"), ("李伟", "伟"), ("Ada Lovelace", "Ada"), ("Cher", "Cher"), ("", "")]
        {
            assert_eq!(first_name(full), first, "{full}");
        }
    }
}
