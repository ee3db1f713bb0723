//! Consent carried in a member's record: `"consent": {"sms": "granted", "email.service":
//! "revoked"}` in JSON (API and JSON Lines), `consent.sms`, `consent.email.service` columns in
//! CSV. A key is a channel (marketing) or `channel.purpose`; a value is `granted` or `revoked`
//! (an empty CSV cell says nothing). Pure: parsing and validation, each error naming its field.

use serde_json::{Map, Value};

use super::validate::FieldError;
use crate::channels::{ChannelKind, Purpose};
use crate::store::consent::ConsentChange;

/// What a record says: (channel, purpose, granted), in the order given.
pub type Given = Vec<(ChannelKind, Purpose, bool)>;

/// The source recorded for consent that arrives with member records.
pub const SOURCE: &str = "import";

fn key(k: &str) -> Option<(ChannelKind, Purpose)> {
    let (channel, purpose) = match k.split_once('.') {
        Some((c, p)) => (c, Purpose::parse(p)?),
        None => (k, Purpose::Marketing),
    };
    Some((ChannelKind::parse(channel)?, purpose))
}

fn one(field: &str, k: &str, v: &str, out: &mut Given, errors: &mut Vec<FieldError>) {
    let Some((channel, purpose)) = key(k) else {
        errors.push(FieldError {
            field: field.into(),
            problem: "a consent key is a channel (sms, email, push, webhook), optionally .marketing or .service".into(),
        });
        return;
    };
    match v {
        "granted" => out.push((channel, purpose, true)),
        "revoked" => out.push((channel, purpose, false)),
        _ => errors.push(FieldError { field: field.into(), problem: format!("{v:?}: use granted or revoked") }),
    }
}

/// The `consent` object of a JSON member record (none: nothing said).
pub fn from_json(obj: &Map<String, Value>) -> Result<Given, Vec<FieldError>> {
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    match obj.get("consent") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let field = format!("consent.{k}");
                match v {
                    Value::String(s) => one(&field, k, s.trim(), &mut out, &mut errors),
                    _ => errors.push(FieldError { field, problem: "expected \"granted\" or \"revoked\"".into() }),
                }
            }
        }
        Some(_) => errors.push(FieldError {
            field: "consent".into(),
            problem: "expected an object such as {\"sms\": \"granted\", \"email.service\": \"revoked\"}".into(),
        }),
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The `consent.<key>` columns of a CSV row.
pub fn from_columns<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Given, Vec<FieldError>> {
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (header, value) in pairs {
        let Some(k) = header.trim().strip_prefix("consent.") else { continue };
        let value = value.trim();
        if !value.is_empty() {
            one(header.trim(), k, value, &mut out, &mut errors);
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The store's changes for one member's record.
pub fn changes(member: &str, given: &Given) -> Vec<ConsentChange> {
    given
        .iter()
        .map(|&(channel, purpose, granted)| ConsentChange {
            member: member.to_string(),
            channel,
            purpose,
            granted,
            source: SOURCE.into(),
        })
        .collect()
}

/// Both halves of a record, or every problem of either.
pub fn both<A, B>(a: Result<A, Vec<FieldError>>, b: Result<B, Vec<FieldError>>) -> Result<(A, B), Vec<FieldError>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err(a.err().into_iter().flatten().chain(b.err().into_iter().flatten()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_check(v: Value, want: Result<Given, Vec<&str>>) {
        let obj = json!({ "consent": v });
        let got = from_json(obj.as_object().unwrap()).map_err(|e| e.into_iter().map(|e| e.field).collect::<Vec<_>>());
        assert_eq!(got, want.map_err(|e| e.into_iter().map(str::to_string).collect()));
    }

    #[test]
    fn json_keys_are_channels_optionally_with_a_purpose() {
        use ChannelKind::*;
        use Purpose::*;
        json_check(
            json!({"sms": "granted", "email.service": "revoked", "push.marketing": "granted"}),
            Ok(vec![(Email, Service, false), (Push, Marketing, true), (Sms, Marketing, true)]),
        );
        json_check(
            json!({"fax": "granted", "sms": "yes", "email": true}),
            Err(vec!["consent.email", "consent.fax", "consent.sms"]),
        );
        json_check(json!(null), Ok(vec![]));
        let bad = json!({"consent": ["sms"]});
        assert_eq!(from_json(bad.as_object().unwrap()).unwrap_err()[0].field, "consent");
    }

    #[test]
    fn csv_columns_name_the_key_and_empty_cells_say_nothing() {
        let row = [("name", "x"), ("consent.sms", "granted"), ("consent.email.service", ""), ("consent.push", "nope")];
        let err = from_columns(row).unwrap_err();
        assert_eq!(err.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["consent.push"]);
        let got = from_columns([("consent.sms", "granted"), ("consent.email.service", "")]).unwrap();
        assert_eq!(got, [(ChannelKind::Sms, Purpose::Marketing, true)]);
    }
}
