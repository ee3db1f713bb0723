//! The fixture member every template is rendered against at load: the full render context with
//! every field filled, in Chinese or English dress depending on the locale. A template that
//! renders here references only variables the caller provides.

use serde_json::{Map, Value, json};

use super::helpers::Lang;

/// The fixture context for `locale` (a birthday occurrence), the shape the dispatcher builds.
pub fn fixture_context(locale: &str) -> Value {
    let (name, first_name, time_zone, holiday) = match Lang::of(Some(locale)) {
        Lang::Zh => ("王小明", "小明", "Asia/Shanghai", "圣诞节"),
        // An apostrophe in the name shows the escaping difference between HTML and plain text.
        Lang::En => ("Emma O'Neill", "Emma", "Europe/London", "Christmas"),
    };
    json!({
        "locale": locale,
        "time_zone": time_zone,
        "member": {
            "external_id": "M1",
            "name": name,
            "first_name": first_name,
            "phone": "+8613800138000",
            "email": "a@example.com",
            "tier": "gold",
            "points": 12345,
            "birth_date": "1990-11-23",
            "lunar_birthday": "10-08",
            "member_since": "2020-05-01",
            "attributes": {},
            "value": {
                "segment": "active", "rfm": "435", "r": 4, "f": 3, "m": 5,
                "p_alive": 0.87, "expected_purchases": 1.4, "frequency": 6, "monetary": 1280.5
            }
        },
        "occurrence": {
            "key": "birthday:2026",
            "date": "2026-11-23",
            "years": 3,
            "holiday": holiday,
            "days": 30,
            "age": 36,
            "last_activity": "2026-10-24",
            "festival": "mid_autumn",
            "lunar_date": "农历十月初五",
            "zodiac": if matches!(Lang::of(Some(locale)), Lang::Zh) { "马" } else { "Horse" },
            "ganzhi": "丙午",
            "p_alive": 0.31,
            "last_purchase": "2026-08-14"
        },
        "programme": {"name": "Jade Club"},
        "rule": {"id": "birthday"}
    })
}

/// The fixture context for `locale` with a key's `fixture.json` merged over `occurrence`.
pub(super) fn fixture_with(locale: &str, occurrence: &Map<String, Value>) -> Value {
    let mut ctx = fixture_context(locale);
    if let Some(occ) = ctx.get_mut("occurrence").and_then(Value::as_object_mut) {
        for (k, v) in occurrence {
            occ.insert(k.clone(), v.clone());
        }
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overrides_only_occurrence_fields_given() {
        let over = json!({"key": "anniversary:2026", "years": 6}).as_object().cloned().unwrap();
        let ctx = fixture_with("zh-CN", &over);
        assert_eq!(ctx["occurrence"]["key"], "anniversary:2026");
        assert_eq!(ctx["occurrence"]["years"], 6);
        assert_eq!(ctx["occurrence"]["date"], "2026-11-23");
        assert_eq!(ctx["occurrence"]["holiday"], "圣诞节");
        assert_eq!(ctx["locale"], "zh-CN");
        assert_eq!(fixture_context("en-GB")["member"]["first_name"], "Emma");
    }
}
