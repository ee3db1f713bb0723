//! Checking one member record, field by field, whatever it came from (API JSON, a JSON Lines
//! row, a CSV row). Each problem names the field; the caller adds the line number.

use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::MemberInput;
use crate::triggers::calendar::LunarBirthday;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn err(field: &str, problem: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), problem: problem.into() }
}

/// The fields a member record may carry; anything else is an error in JSON and an attribute in CSV.
pub const FIELDS: &[&str] = &[
    "consent",
    "external_id",
    "name",
    "phone",
    "email",
    "locale",
    "time_zone",
    "birth_date",
    "lunar_birthday",
    "member_since",
    "tier",
    "points",
    "attributes",
];

/// Checks a JSON object as a member. Every problem is returned, not just the first.
pub fn member_from_json(obj: &Map<String, Value>) -> Result<MemberInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(err(key, "unknown field (free fields go under \"attributes\")"));
        }
    }
    let text = |field: &str, errors: &mut Vec<FieldError>| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(Value::Number(n)) if field == "external_id" => Some(n.to_string()),
            Some(other) => {
                errors.push(err(field, format!("expected text, found {}", kind(other))));
                None
            }
        }
    };
    let fields = Fields {
        external_id: text("external_id", &mut errors),
        name: text("name", &mut errors),
        phone: text("phone", &mut errors),
        email: text("email", &mut errors),
        locale: text("locale", &mut errors),
        time_zone: text("time_zone", &mut errors),
        birth_date: text("birth_date", &mut errors),
        lunar_birthday: text("lunar_birthday", &mut errors),
        member_since: text("member_since", &mut errors),
        tier: text("tier", &mut errors),
        points: match obj.get("points") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(p) => Some(p),
                None => {
                    errors.push(err("points", format!("{n} is not a whole number")));
                    None
                }
            },
            Some(other) => {
                errors.push(err("points", format!("expected a whole number, found {}", kind(other))));
                None
            }
        },
        attributes: match obj.get("attributes") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                errors.push(err("attributes", format!("expected an object, found {}", kind(other))));
                Map::new()
            }
        },
    };
    finish(fields, errors)
}

/// Checks a CSV record given as (header, value) pairs. Empty cells are absent values; columns
/// that are not member fields become text attributes.
pub fn member_from_strings<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<MemberInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut f = Fields::default();
    for (header, value) in pairs {
        let value = value.trim();
        let v = Some(value.to_string()).filter(|s| !s.is_empty());
        match header.trim() {
            "external_id" => f.external_id = v,
            "name" => f.name = v,
            "phone" => f.phone = v,
            "email" => f.email = v,
            "locale" => f.locale = v,
            "time_zone" => f.time_zone = v,
            "birth_date" => f.birth_date = v,
            "lunar_birthday" => f.lunar_birthday = v,
            "member_since" => f.member_since = v,
            "tier" => f.tier = v,
            "points" => {
                f.points = match v.as_deref().map(i64::from_str) {
                    None => None,
                    Some(Ok(p)) => Some(p),
                    Some(Err(_)) => {
                        errors.push(err("points", format!("{value:?} is not a whole number")));
                        None
                    }
                }
            }
            "attributes" => match v.as_deref().map(serde_json::from_str::<Value>) {
                None => {}
                Some(Ok(Value::Object(m))) => f.attributes.extend(m),
                Some(_) => errors.push(err("attributes", "expected a JSON object")),
            },
            // Consent columns are read by `members::consent`.
            other if other.starts_with("consent.") => {}
            other => {
                if let Some(v) = v {
                    let name = other.strip_prefix("attributes.").unwrap_or(other);
                    f.attributes.insert(name.to_string(), Value::String(v));
                }
            }
        }
    }
    finish(f, errors)
}

#[derive(Default)]
struct Fields {
    external_id: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    locale: Option<String>,
    time_zone: Option<String>,
    birth_date: Option<String>,
    lunar_birthday: Option<String>,
    member_since: Option<String>,
    tier: Option<String>,
    points: Option<i64>,
    attributes: Map<String, Value>,
}

fn finish(f: Fields, mut errors: Vec<FieldError>) -> Result<MemberInput, Vec<FieldError>> {
    let external_id = match f.external_id {
        Some(id) if id.chars().count() <= 128 && !id.chars().any(char::is_control) => id,
        Some(_) => {
            errors.push(err("external_id", "must be at most 128 characters without control characters"));
            String::new()
        }
        None => {
            errors.push(err("external_id", "missing"));
            String::new()
        }
    };
    let name = f.name.unwrap_or_else(|| {
        errors.push(err("name", "missing"));
        String::new()
    });
    let phone = f.phone.and_then(|p| match normalize_phone(&p) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(err("phone", e));
            None
        }
    });
    let email = f.email.and_then(|e| match lettre::Address::from_str(&e) {
        Ok(_) => Some(e),
        Err(_) => {
            errors.push(err("email", format!("{e:?} is not an email address")));
            None
        }
    });
    let locale = f.locale.and_then(|l| {
        let ok = l.len() <= 35
            && l.split(['-', '_'])
                .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if ok {
            Some(l.replace('_', "-"))
        } else {
            errors.push(err("locale", format!("{l:?} is not a language tag such as zh-CN or en")));
            None
        }
    });
    let time_zone = f.time_zone.and_then(|z| match TimeZone::get(&z) {
        Ok(_) => Some(z),
        Err(_) => {
            errors.push(err("time_zone", format!("{z:?} is not an IANA time zone such as Asia/Shanghai")));
            None
        }
    });
    let mut date = |field: &str, v: Option<String>| {
        v.and_then(|d| match parse_date(&d) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(err(field, e));
                None
            }
        })
    };
    let birth_date = date("birth_date", f.birth_date);
    let member_since = date("member_since", f.member_since);
    let lunar_birthday = f.lunar_birthday.and_then(|b| match b.parse::<LunarBirthday>() {
        Ok(b) => Some(b),
        Err(e) => {
            errors.push(err("lunar_birthday", e));
            None
        }
    });
    if errors.is_empty() {
        Ok(MemberInput {
            external_id,
            name,
            phone,
            email,
            locale,
            time_zone,
            birth_date,
            lunar_birthday,
            member_since,
            tier: f.tier,
            points: f.points.unwrap_or(0),
            attributes: f.attributes,
        })
    } else {
        Err(errors)
    }
}

/// E.164: `+`, a country code that does not start with 0, at most 15 digits in all. Spaces,
/// dots, dashes and brackets are dropped first.
pub fn normalize_phone(p: &str) -> Result<String, String> {
    let cleaned: String = p.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = cleaned.strip_prefix('+');
    match digits {
        Some(d) if (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0') => {
            Ok(cleaned)
        }
        _ => Err(format!("{p:?} is not an E.164 number such as +8613800138000")),
    }
}

fn parse_date(d: &str) -> Result<Date, String> {
    let bad = || format!("{d:?} is not a date as YYYY-MM-DD");
    if d.len() != 10 {
        return Err(bad());
    }
    let date: Date = d.parse().map_err(|_| bad())?;
    if date.year() < 1900 {
        return Err(format!("{d:?} is before 1900"));
    }
    Ok(date)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expected: Result<(), &[&str]>) {
        let got = member_from_json(input.as_object().unwrap());
        match (got, expected) {
            (Ok(_), Ok(())) => {}
            (Err(errs), Err(fields)) => {
                let got: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(got, fields, "{errs:?}");
            }
            (got, expected) => panic!("{input}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn fields_are_checked_and_named() {
        check(json!({"external_id": "M1", "name": "王小明"}), Ok(()));
        check(
            json!({"external_id": "M1", "name": "A", "phone": "+86 138 0013 8000", "email": "a@example.com",
                   "time_zone": "Asia/Shanghai", "birth_date": "1990-02-28", "points": 10}),
            Ok(()),
        );
        check(json!({"name": "A"}), Err(&["external_id"]));
        check(json!({"external_id": "M1", "name": "A", "phone": "13800138000"}), Err(&["phone"]));
        check(json!({"external_id": "M1", "name": "A", "time_zone": "Mars/Olympus"}), Err(&["time_zone"]));
        check(json!({"external_id": "M1", "name": "A", "birth_date": "1990-02-30"}), Err(&["birth_date"]));
        check(json!({"external_id": "M1", "name": "A", "email": "nope"}), Err(&["email"]));
        check(json!({"external_id": "M1", "name": "A", "points": "ten"}), Err(&["points"]));
        check(json!({"external_id": "M1", "name": "A", "nickname": "x"}), Err(&["nickname"]));
        check(json!({"external_id": "M1"}), Err(&["name"]));
    }

    #[test]
    fn phones_are_normalized_to_e164() {
        assert_eq!(normalize_phone("+1 (415) 555-0100").unwrap(), "+14155550100");
        assert!(normalize_phone("+0123456789").is_err());
        assert!(normalize_phone("+1234").is_err());
    }

    #[test]
    fn csv_columns_that_are_not_fields_become_attributes() {
        let m =
            member_from_strings([("external_id", "M2"), ("name", "Ada"), ("city", "Leeds"), ("points", "")]).unwrap();
        assert_eq!(m.attributes.get("city"), Some(&json!("Leeds")));
        assert_eq!(m.points, 0);
    }
}
