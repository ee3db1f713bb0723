//! Warnings before a template version is published: what compiles and renders but is probably a
//! mistake. Pure: the content, its compiled set and whether the key is sent as marketing in, the
//! list out. Compilation, strict rendering against the fixture and provider mappings are the
//! loader's errors, not repeated here; the segment count reuses
//! [`Templates::sms_segment_problems`].

use handlebars::template::{Parameter, Template, TemplateElement};
use serde::Serialize;
use serde_json::Value;

use super::content::Content;
use super::helpers::Lang;
use super::{Part, Templates};
use crate::channels::{ChannelKind, Rendered};

/// One warning, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `unknown_variable`, `sms_signature`, `sms_opt_out`, `email_unsubscribe`,
    /// `sms_segments`.
    pub code: &'static str,
    pub channel: ChannelKind,
    pub locale: String,
    /// The part (`sms`, `email.html`…), when one part is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<&'static str>,
    pub message: String,
}

/// Variables that are not in the fixture but that some sends carry: a member's free-form
/// attributes, and the other occasions a merged message mentions.
const OPEN_PATHS: &[&str] = &["member.attributes", "occurrence.also"];

/// Helpers that may stand alone, without parameters (`{{else}}` is not an expression).
const HELPERS: &[&str] = &[
    "if",
    "unless",
    "each",
    "with",
    "lookup",
    "log",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "and",
    "or",
    "not",
    "len",
    "date",
    "lunar_date",
    "zodiac",
    "number",
    "ordinal",
    "default",
];

/// The warnings of `key`'s content, compiled as `templates` (with the segment limit in force).
/// `marketing`: some rule or journey sends the key as marketing (or none sends it yet).
pub fn warnings(key: &str, content: &Content, templates: &Templates, marketing: bool) -> Vec<Warning> {
    let mut out = Vec::new();
    for (locale, variant) in &content.locales {
        let fixture = templates.fixture(key, locale);
        for (part, source) in variant.parts() {
            for path in unknown_variables(source, &fixture) {
                out.push(Warning {
                    code: "unknown_variable",
                    channel: part.channel(),
                    locale: locale.clone(),
                    part: Some(part.name()),
                    message: format!("{{{{{path}}}}} is not a variable the fixture member has"),
                });
            }
        }
        if !marketing {
            continue;
        }
        let mut ctx = fixture.clone();
        ctx["locale"] = Value::String(locale.clone());
        if variant.sms.is_some()
            && let Ok(Rendered::Sms { text, .. }) = templates.render(key, ChannelKind::Sms, &ctx)
        {
            let sms = |code, message: &str| Warning {
                code,
                channel: ChannelKind::Sms,
                locale: locale.clone(),
                part: Some(Part::Sms.name()),
                message: message.to_string(),
            };
            if Lang::of(Some(locale)) == Lang::Zh && !has_signature(&text) {
                out.push(sms(
                    "sms_signature",
                    "marketing SMS to Chinese numbers needs the programme's signature in 【】 (e.g. 【{{programme.name}}】)",
                ));
            }
            if !crate::track::keywords::has_opt_out_footer(&text) {
                out.push(sms(
                    "sms_opt_out",
                    "marketing SMS needs an opt-out footer a reply answers (回T退订, Reply STOP to opt out)",
                ));
            }
        }
        if variant.email.is_some()
            && let Ok(Rendered::Email { html, text, .. }) = templates.render(key, ChannelKind::Email, &ctx)
            && !mentions_unsubscribe(&html)
            && !mentions_unsubscribe(&text)
        {
            out.push(Warning {
                code: "email_unsubscribe",
                channel: ChannelKind::Email,
                locale: locale.clone(),
                part: None,
                message: "marketing email needs an unsubscribe link or instructions in its body".into(),
            });
        }
    }
    for problem in templates.sms_segment_problems() {
        // `<root>/<key>/<locale>/sms.hbs: sms is N segments …`
        let locale = problem.split('/').rev().nth(1).unwrap_or_default().to_string();
        let message = problem.split_once(": ").map_or(problem.as_str(), |(_, m)| m).to_string();
        out.push(Warning { code: "sms_segments", channel: ChannelKind::Sms, locale, part: Some("sms"), message });
    }
    out
}

/// 【…】 with something inside.
fn has_signature(text: &str) -> bool {
    text.find('【').is_some_and(|open| text[open..].find('】').is_some_and(|close| close > '【'.len_utf8()))
}

fn mentions_unsubscribe(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["unsubscribe", "退订", "取消订阅"].iter().any(|w| lower.contains(w))
}

/// The variable paths `source` reads that `fixture` does not have, in order, each once. A path
/// inside `{{#each}}` or `{{#with}}` is relative to the item and is not checked. A source that
/// does not compile has none (the loader reports it).
pub fn unknown_variables(source: &str, fixture: &Value) -> Vec<String> {
    let Ok(template) = Template::compile(source) else { return Vec::new() };
    let mut paths = Vec::new();
    collect(&template, false, &mut paths);
    let mut out: Vec<String> = Vec::new();
    for path in paths {
        if !known(&path, fixture) && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

fn collect(t: &Template, scoped: bool, out: &mut Vec<String>) {
    for element in &t.elements {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                expression(&h.name, &h.params, h.hash.values(), scoped, out);
            }
            TemplateElement::HelperBlock(h) => {
                expression(&h.name, &h.params, h.hash.values(), scoped, out);
                let name = match &h.name {
                    Parameter::Name(n) => n.as_str(),
                    _ => "",
                };
                if let Some(inner) = &h.template {
                    collect(inner, scoped || name == "each" || name == "with", out);
                }
                if let Some(inverse) = &h.inverse {
                    collect(inverse, scoped, out);
                }
            }
            _ => {}
        }
    }
}

fn expression<'a>(
    name: &'a Parameter,
    params: &'a [Parameter],
    hash: impl Iterator<Item = &'a Parameter>,
    scoped: bool,
    out: &mut Vec<String>,
) {
    let params: Vec<&Parameter> = params.iter().chain(hash).collect();
    match name {
        Parameter::Name(n) if params.is_empty() && !HELPERS.contains(&n.as_str()) => push(n, scoped, out),
        Parameter::Path(_) => parameter(name, scoped, out),
        _ => {}
    }
    for p in params {
        parameter(p, scoped, out);
    }
}

fn parameter(p: &Parameter, scoped: bool, out: &mut Vec<String>) {
    match p {
        Parameter::Path(handlebars::Path::Relative((_, raw))) => push(raw, scoped, out),
        Parameter::Name(n) => push(n, scoped, out),
        Parameter::Subexpression(s) => {
            for p in s.params().into_iter().flatten() {
                parameter(p, scoped, out);
            }
            for p in s.hash().into_iter().flat_map(|h| h.values()) {
                parameter(p, scoped, out);
            }
        }
        _ => {}
    }
}

fn push(raw: &str, scoped: bool, out: &mut Vec<String>) {
    let raw = raw.trim();
    let rooted = raw.strip_prefix("@root.");
    if (scoped && rooted.is_none()) || raw.is_empty() || raw.starts_with(['@', '.']) || raw.starts_with("this") {
        return;
    }
    out.push(rooted.unwrap_or(raw).to_string());
}

/// Whether `fixture` has `path` (`member.name`, `occurrence/date`), or it is below an open one.
fn known(path: &str, fixture: &Value) -> bool {
    if OPEN_PATHS.iter().any(|open| path == *open || path.starts_with(&format!("{open}."))) {
        return true;
    }
    let mut at = fixture;
    for seg in path.split(['.', '/']) {
        if seg.starts_with('[') || at.is_array() {
            return true;
        }
        match at.get(seg) {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, expected: &[&str]) {
        let fixture = super::super::fixture_context("en");
        assert_eq!(unknown_variables(source, &fixture), expected, "{source}");
    }

    #[test]
    fn variables_the_fixture_lacks_are_named_once() {
        check("Hi {{member.name}}, {{programme.name}}", &[]);
        check("Hi {{member.nickname}} {{member.nickname}}", &["member.nickname"]);
        check("{{#if member.vip}}VIP{{/if}}", &["member.vip"]);
        check("{{default member.first_name member.alias \"friend\"}}", &["member.alias"]);
        check("{{#each occurrence.also}}{{this.holiday}}{{holiday}}{{/each}}", &[]);
        check("{{member.attributes.colour}} {{occurrence.also}}", &[]);
        check("{{date (lookup occurrence \"date\") style=occurrence.style}}", &["occurrence.style"]);
        check("{{nickname}}", &["nickname"]);
        check("{{#if}}broken", &[]);
    }

    fn content(locale: &str, sms: &str, html: &str) -> Content {
        let email = Some(super::super::content::Email {
            subject: "Hello".into(),
            html: html.into(),
            text: "Hello {{member.name}}".into(),
        });
        let variant = super::super::content::Variant { sms: Some(sms.into()), email, ..Default::default() };
        Content { locales: [(locale.to_string(), variant)].into(), ..Default::default() }
    }

    fn codes(c: &Content, marketing: bool, limit: Option<usize>) -> Vec<(&'static str, String)> {
        let t = Templates::from_contents(std::path::Path::new(""), &[("k".to_string(), c.clone())].into())
            .unwrap()
            .with_sms_segment_limit(limit);
        warnings("k", c, &t, marketing).into_iter().map(|w| (w.code, w.locale)).collect()
    }

    #[test]
    fn marketing_needs_signature_opt_out_and_unsubscribe() {
        let bare = content("zh-CN", "{{member.name}}，生日快乐！", "<p>Hi</p>");
        let zh = || "zh-CN".to_string();
        assert_eq!(
            codes(&bare, true, Some(3)),
            [("sms_signature", zh()), ("sms_opt_out", zh()), ("email_unsubscribe", zh())]
        );
        // Service messages need none of it.
        assert_eq!(codes(&bare, false, Some(3)), []);
        let good = content(
            "zh-CN",
            "【{{programme.name}}】{{member.name}}，生日快乐！回T退订",
            "<p>Hi</p><a href=\"https://club.example.com/unsubscribe\">Unsubscribe</a>",
        );
        assert_eq!(codes(&good, true, Some(3)), []);
        // An English SMS needs no 【】 but does need "Reply STOP".
        let en = content("en", "Hi {{member.name}}! Reply STOP to opt out.", "<p>unsubscribe</p>");
        assert_eq!(codes(&en, true, Some(3)), []);
        let en = content("en", "Hi {{member.name}}!", "<p>unsubscribe</p>");
        assert_eq!(codes(&en, true, Some(3)), [("sms_opt_out", "en".to_string())]);
    }

    #[test]
    fn unknown_variables_and_long_sms_are_warnings() {
        let long = format!("{{{{#if member.vip}}}}VIP{{{{/if}}}} {} Reply STOP", "x".repeat(400));
        let c = content("en", &long, "<p>unsubscribe</p>");
        assert_eq!(
            codes(&c, true, Some(2)),
            [("unknown_variable", "en".to_string()), ("sms_segments", "en".to_string())]
        );
        assert_eq!(codes(&c, true, Some(3)), [("unknown_variable", "en".to_string())]);
    }

    #[test]
    fn signature_needs_something_inside() {
        assert!(has_signature("【玉石会员】生日快乐"));
        assert!(!has_signature("【】生日快乐"));
        assert!(!has_signature("生日快乐"));
    }
}
