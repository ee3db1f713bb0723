//! Behaviour of template sets: loading (and everything that makes a load fail), escaping, locale
//! choice, and the shipped set rendered against the fixture (snapshotted).

use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::sms::{Encoding, segments};
use super::*;
use crate::channels::{ProviderParams, ProviderTemplate};

/// A template directory holding `files` (path, contents).
fn tree(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

/// The problems loading `files` reports, with the temporary root shown as `templates`.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tree(files);
    let err = Templates::load_dir(dir.path()).expect_err("the set should not load");
    let root = dir.path().display().to_string();
    err.problems.iter().map(|p| p.replace(&root, "templates")).collect()
}

fn load(files: &[(&str, &str)]) -> Templates {
    let dir = tree(files);
    Templates::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

const EMAIL_OK: [(&str, &str); 3] = [
    ("birthday/en/email.subject.hbs", "Hi {{member.first_name}}\n"),
    ("birthday/en/email.html.hbs", "<p>{{member.name}}</p>\n"),
    ("birthday/en/email.text.hbs", "{{member.name}}\n"),
];

#[test]
fn sms_is_plain_and_html_is_escaped() {
    // Through a plain expression and through a helper's output alike.
    let t = load(&[
        ("birthday/en/sms.hbs", "Happy birthday, {{member.name}}! {{default member.name \"x\"}}\n"),
        ("birthday/en/email.subject.hbs", "Hi {{member.name}}\n"),
        ("birthday/en/email.html.hbs", "<p>{{member.name}}</p>\n<p>{{default member.name \"x\"}}</p>\n"),
        ("birthday/en/email.text.hbs", "{{default member.name \"x\"}}\n"),
        ("birthday/en/push.title.hbs", "{{member.name}}\n"),
        ("birthday/en/push.body.hbs", "{{default member.name \"x\"}}\n"),
    ]);
    let mut ctx = fixture_context("en");
    let name = "Ann O'Neil <Jr> & co";
    ctx["member"]["name"] = json!(name);

    let sms = t.render("birthday", ChannelKind::Sms, &ctx).unwrap();
    assert_eq!(sms, Rendered::sms(format!("Happy birthday, {name}! {name}")));
    let push = t.render("birthday", ChannelKind::Push, &ctx).unwrap();
    assert_eq!(push, Rendered::Push { title: name.into(), body: name.into() });
    let email = t.render("birthday", ChannelKind::Email, &ctx).unwrap();
    let escaped = "Ann O&#x27;Neil &lt;Jr&gt; &amp; co";
    assert_eq!(
        email,
        Rendered::Email {
            subject: format!("Hi {name}"),
            html: format!("<p>{escaped}</p>\n<p>{escaped}</p>\n"),
            text: name.into(),
        }
    );
}

#[test]
fn missing_variable_names_file_and_line() {
    let got = problems(&[("birthday/en/sms.hbs", "Hello,\n{{member.nickname}}!\n")]);
    assert_eq!(got, ["templates/birthday/en/sms.hbs:2: variable member.nickname not found"]);
}

#[test]
fn missing_variable_in_a_helper_or_block_is_caught_too() {
    let got = problems(&[
        ("birthday/en/sms.hbs", "{{date occurrence.when}}\n"),
        ("winback/en/sms.hbs", "Hi\n{{#each member.pets}}{{this}}{{/each}}\n"),
        ("holiday/en/sms.hbs", "{{shout member.name}}\n"),
    ]);
    assert_eq!(
        got,
        [
            "templates/birthday/en/sms.hbs:1: variable occurrence.when not found",
            "templates/holiday/en/sms.hbs:1: helper shout not found",
            "templates/winback/en/sms.hbs:2: variable member.pets not found",
        ]
    );
}

#[test]
fn compile_error_names_file_and_line() {
    fn check(input: &str, expected: &str) {
        let got = problems(&[("birthday/en/sms.hbs", input)]);
        assert_eq!(got, [format!("templates/birthday/en/sms.hbs:{expected}")], "{input:?}");
    }
    check("Hello\n{{#if member.tier}}gold\n", "2: {{#if}} is never closed");
    check("{{!-- {{#if}} --}}\n{{#each x}}{{#if y}}\n{{/if}}\n", "2: {{#each}} is never closed");
    check("{{~#if a}}{{^b}}{{/b}}\n\n{{#unless c}}{{/unless}}\n", "1: {{#if}} is never closed");
    check("Hi\n{{/if}}\n", "2: {{/if}} closes no block");
    check("Hi\n{{#if a}}{{/each}}\n", "2: helper \"if\" was opened, but \"each\" is closing");
    check("Hi {{member.name\n", "1: {{ is never closed");
    check("Hi {{member.name\nand {{programme.name}}\n", "1: {{ is never closed");
    check("Hi {{member.name}\n", "1: {{ is never closed");
    check("Hi {{member.name)}}\n", "1: invalid handlebars syntax at column 17");
}

#[test]
fn incomplete_part_sets_are_rejected() {
    let got = problems(&[
        ("birthday/en/email.subject.hbs", "Hi\n"),
        ("birthday/en/email.html.hbs", "<p>Hi</p>\n"),
        ("birthday/zh-CN/push.body.hbs", "你好\n"),
    ]);
    assert_eq!(
        got,
        [
            "templates/birthday/en: email needs email.text.hbs too",
            "templates/birthday/zh-CN: push needs push.title.hbs too",
        ]
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let got = problems(&[
        ("birthday/en/sms.hbs", "{{member.nickname}}\n"),
        ("birthday/en/push.title.hbs", "Hi\n"),
        ("birthday/fr/sms.hbs", "{{#if x}}\n"),
        ("birthday/fixture.json", "[1, 2]"),
        ("birthday/zh-CN/sms.txt", "你好"),
        ("birthday/zh-CN/sms.hbs", "你好"),
        ("holiday/en/email.subject.hbs", "Happy\n{{occurrence.holiday}}\n"),
        ("holiday/en/email.html.hbs", "<p>Hi</p>\n"),
        ("holiday/en/email.text.hbs", "\n\n"),
        ("win back/en/sms.hbs", "Hi\n"),
        ("winback/notes.txt", "todo"),
        ("anniversary/README.md", "no locales here"),
    ]);
    assert_eq!(
        got,
        [
            "templates/anniversary/README.md: unexpected file (a key holds locale directories and an optional fixture.json)",
            "templates/anniversary: no locale directories",
            "templates/birthday/en/sms.hbs:1: variable member.nickname not found",
            "templates/birthday/en: push needs push.body.hbs too",
            "templates/birthday/fixture.json: must be a JSON object",
            "templates/birthday/fr/sms.hbs:1: {{#if}} is never closed",
            "templates/birthday/zh-CN/sms.txt: unknown template part (expected sms.hbs, email.subject.hbs, email.html.hbs, email.text.hbs, push.title.hbs, push.body.hbs or sms.providers.toml)",
            "templates/holiday/en/email.subject.hbs: the subject must be one line",
            "templates/holiday/en/email.text.hbs: rendered empty",
            "templates/win back: a template key is letters, digits, '-' and '_'",
            "templates/winback/notes.txt: unexpected file (a key holds locale directories and an optional fixture.json)",
            "templates/winback: no locale directories",
        ]
    );
}

#[test]
fn an_empty_or_absent_directory_does_not_load() {
    assert_eq!(problems(&[]), ["templates: no templates found"]);
    let err = Templates::load_dir(Path::new("/nonexistent/tidings-templates")).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].starts_with("/nonexistent/tidings-templates: "), "{err}");
}

#[test]
fn fixture_json_is_merged_over_the_occurrence() {
    let got = problems(&[
        ("anniversary/fixture.json", r#"{"years": 6}"#),
        ("anniversary/en/sms.hbs", "{{ordinal occurrence.years}} {{occurrence.gift}}\n"),
    ]);
    assert_eq!(got, ["templates/anniversary/en/sms.hbs:1: variable occurrence.gift not found"]);

    let t = load(&[
        ("anniversary/fixture.json", r#"{"years": 6, "gift": "tea"}"#),
        ("anniversary/en/sms.hbs", "{{ordinal occurrence.years}} {{occurrence.gift}}\n"),
    ]);
    assert_eq!(t.fixture("anniversary", "en")["occurrence"]["gift"], "tea");
    let got = t.render("anniversary", ChannelKind::Sms, &t.fixture("anniversary", "en")).unwrap();
    assert_eq!(got, Rendered::sms("6th tea"));
}

#[test]
fn hidden_files_and_top_level_files_are_ignored() {
    let t = load(&[
        ("README.md", "how to write templates"),
        (".git/HEAD", "ref"),
        ("birthday/.DS_Store", ""),
        ("birthday/en/.sms.hbs.swp", "\u{0}"),
        ("birthday/en/sms.hbs", "Hi\n"),
    ]);
    assert_eq!(t.keys(), ["birthday"]);
}

#[test]
fn plain_parts_lose_trailing_newlines() {
    let t = load(&[("birthday/en/sms.hbs", "Line one\nline two\n\n\n")]);
    let got = t.render("birthday", ChannelKind::Sms, &fixture_context("en")).unwrap();
    assert_eq!(got, Rendered::sms("Line one\nline two"));
}

#[test]
fn a_subject_that_renders_two_lines_fails() {
    let t = load(&EMAIL_OK);
    let mut ctx = fixture_context("en");
    ctx["member"]["first_name"] = json!("A\nB");
    let err = t.render("birthday", ChannelKind::Email, &ctx).unwrap_err();
    assert!(file_of(&err).ends_with("birthday/en/email.subject.hbs"), "{err}");
    assert!(err.to_string().ends_with(": the subject must be one line"), "{err}");
}

fn file_of(e: &RenderError) -> &str {
    match e {
        RenderError::Failed { file, .. } => file,
        RenderError::Missing { .. } => panic!("{e}"),
    }
}

#[test]
fn a_context_lacking_a_variable_fails_with_file_and_line() {
    let t = load(&[("birthday/en/sms.hbs", "Hi\n{{member.first_name}}\n")]);
    let err = t.render("birthday", ChannelKind::Sms, &json!({"locale": "en", "member": {}})).unwrap_err();
    assert!(file_of(&err).ends_with("birthday/en/sms.hbs:2"), "{err}");
    assert!(err.to_string().ends_with(": variable member.first_name not found"), "{err}");
}

#[test]
fn unknown_keys_and_channels_are_missing() {
    let t = load(&[("birthday/en/sms.hbs", "Hi\n")]);
    assert!(t.has("birthday", ChannelKind::Sms));
    assert!(!t.has("birthday", ChannelKind::Email));
    assert!(!t.has("holiday", ChannelKind::Sms));
    let err = t.render("birthday", ChannelKind::Push, &fixture_context("en")).unwrap_err();
    assert_eq!(err.to_string(), "no template \"birthday\" for channel push");
    let err = t.render("holiday", ChannelKind::Sms, &fixture_context("en")).unwrap_err();
    assert!(matches!(err, RenderError::Missing { .. }));
    assert_eq!(t.locales("holiday"), Vec::<String>::new());
}

#[test]
fn locale_resolution_on_the_builtin_set() {
    let t = Templates::builtin();
    let check = |wanted: Option<&str>, fallback: &str, expected: &str| {
        let got = t.resolve_locale("birthday", ChannelKind::Sms, wanted, fallback);
        assert_eq!(got.as_deref(), Some(expected), "{wanted:?} with fallback {fallback}");
    };
    check(Some("zh-CN"), "en", "zh-CN");
    check(Some("zh-cn"), "en", "zh-CN");
    check(Some("zh-TW"), "en", "zh-CN");
    check(Some("en-GB"), "zh-CN", "en");
    check(Some("fr"), "zh-CN", "zh-CN");
    check(Some("fr"), "en", "en");
    check(None, "zh-CN", "zh-CN");
    check(None, "en", "en");
    check(None, "de", "en");
    assert_eq!(t.resolve_locale("nope", ChannelKind::Sms, Some("en"), "en"), None);
}

#[test]
fn only_variants_with_the_channel_are_candidates() {
    let mut files = EMAIL_OK.to_vec();
    files.push(("birthday/zh-CN/sms.hbs", "【{{programme.name}}】生日快乐！回T退订\n"));
    let t = load(&files);
    assert_eq!(t.resolve_locale("birthday", ChannelKind::Email, Some("zh-CN"), "zh-CN").as_deref(), Some("en"));
    assert_eq!(t.resolve_locale("birthday", ChannelKind::Sms, Some("en"), "en").as_deref(), Some("zh-CN"));
    assert_eq!(t.channels("birthday", "en"), [ChannelKind::Email]);
}

#[test]
fn render_picks_the_variant_from_the_context_and_default_locale() {
    let t = Templates::builtin().with_default_locale("zh-CN");
    let sms = |locale: Value| {
        let mut ctx = fixture_context("en");
        ctx["locale"] = locale;
        match t.render("birthday", ChannelKind::Sms, &ctx).unwrap() {
            Rendered::Sms { text, .. } => text,
            other => panic!("{other:?}"),
        }
    };
    assert!(sms(json!("en-GB")).starts_with("Jade Club: Happy birthday"));
    assert!(sms(json!("zh-TW")).starts_with("【Jade Club】"));
    assert!(sms(json!("fr")).starts_with("【Jade Club】"));
    assert!(sms(json!(null)).starts_with("【Jade Club】"));
    assert!(sms(json!("")).starts_with("【Jade Club】"));
    assert!(Templates::builtin().render("birthday", ChannelKind::Sms, &json!({"locale": "fr"})).is_err());
}

#[test]
fn lunar_helpers_render_in_templates_and_name_a_missing_variable() {
    let t = load(&[(
        "birthday/en/sms.hbs",
        "{{lunar_date occurrence.date}} {{lunar_date occurrence.date \"month_day\"}} {{zodiac occurrence.date}}\n",
    )]);
    let mut ctx = fixture_context("en");
    ctx["occurrence"]["date"] = json!("2026-09-25");
    let got = t.render("birthday", ChannelKind::Sms, &ctx).unwrap();
    assert_eq!(got, Rendered::sms("农历八月十五 八月十五 Horse"));
    // A template asking for a date the context does not have is refused at load, by name.
    let refused = problems(&[("birthday/en/sms.hbs", "{{zodiac occurrence.nothing}}\n")]);
    assert!(refused.iter().any(|p| p.contains("occurrence.nothing")), "{refused:?}");
}

#[test]
fn helpers_format_for_the_variant_not_the_member_tag() {
    // A French member falling back to Chinese gets Chinese dates in the Chinese text.
    let t = load(&[("birthday/zh-CN/sms.hbs", "{{date occurrence.date}} {{ordinal occurrence.years}}\n")]);
    let mut ctx = fixture_context("fr");
    ctx["locale"] = json!("fr");
    let got = t.with_default_locale("zh-CN").render("birthday", ChannelKind::Sms, &ctx).unwrap();
    assert_eq!(got, Rendered::sms("2026年11月23日 第3"));
}

#[test]
fn builtin_set_is_complete_and_matches_the_directory() {
    let t = Templates::builtin();
    assert_eq!(
        t.keys(),
        ["anniversary", "birthday", "churn", "holiday", "lunar_birthday", "winback", "winback_journey"]
    );
    let on_disk = Templates::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap();
    assert_eq!(on_disk.keys(), t.keys());
    for key in t.keys() {
        assert_eq!(t.locales(&key), ["en", "zh-CN"], "{key}");
        for locale in t.locales(&key) {
            let templated = [ChannelKind::Sms, ChannelKind::Email, ChannelKind::Push];
            assert_eq!(t.channels(&key, &locale), templated, "{key}/{locale}");
            assert_eq!(on_disk.channels(&key, &locale), templated, "{key}/{locale}");
        }
    }
}

/// Every builtin template against the fixture, then the carrier and length rules on the result.
#[test]
fn builtin_renders_every_variant_within_the_rules() {
    let t = Templates::builtin();
    for key in t.keys() {
        for locale in t.locales(&key) {
            let ctx = t.fixture(&key, &locale);
            for channel in [ChannelKind::Sms, ChannelKind::Email, ChannelKind::Push] {
                let rendered = t.render(&key, channel, &ctx).unwrap_or_else(|e| panic!("{e}"));
                check_rules(&key, &locale, &rendered);
                insta::assert_snapshot!(format!("{key}__{locale}__{channel}"), show(&rendered));
            }
        }
    }
}

/// A member with only the required fields: optional ones are null.
#[test]
fn builtin_renders_for_a_sparse_member() {
    let t = Templates::builtin();
    for key in t.keys() {
        for locale in t.locales(&key) {
            let mut ctx = t.fixture(&key, &locale);
            for field in ["name", "first_name", "email", "tier", "points", "birth_date", "phone"] {
                ctx["member"][field] = Value::Null;
            }
            for channel in [ChannelKind::Sms, ChannelKind::Email, ChannelKind::Push] {
                let rendered = t.render(&key, channel, &ctx).unwrap_or_else(|e| panic!("{e}"));
                check_rules(&key, &locale, &rendered);
                let all = show(&rendered);
                assert!(!all.contains("12,345") && !all.contains("Gold"), "{key}/{locale}/{channel}: {all}");
                assert!(!all.contains(" ,") && !all.contains(" !") && !all.contains("，，"), "{all}");
            }
        }
    }
}

fn check_rules(key: &str, locale: &str, rendered: &Rendered) {
    let at = format!("{key}/{locale}/{}", rendered.channel());
    match rendered {
        Rendered::Sms { text, .. } => {
            if locale.starts_with("zh") {
                assert!(text.starts_with("【Jade Club】"), "{at}: {text}");
                assert!(text.ends_with("回T退订"), "{at}: {text}");
            } else {
                assert!(text.ends_with(" Reply STOP to opt out."), "{at}: {text}");
                assert_eq!(segments(text).encoding, Encoding::Gsm7, "{at}: {text}");
            }
            assert!(!text.contains('\n'), "{at}: {text}");
            assert!(segments(text).count <= 2, "{at}: {:?}", segments(text));
        }
        Rendered::Email { subject, html, text } => {
            assert!(!subject.contains('\n') && subject.chars().count() <= 80, "{at}: {subject}");
            assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\""), "{at}");
            assert!(html.trim_end().ends_with("</html>"), "{at}");
            assert!(!html.contains("{{") && !text.contains("{{"), "{at}");
            assert!(!text.contains("\n\n\n"), "{at}: blank lines pile up:\n{text}");
        }
        Rendered::Push { title, body } => {
            assert!(title.chars().count() <= 50, "{at}: {title}");
            assert!(body.chars().count() <= 120, "{at}: {body}");
        }
        Rendered::Webhook { payload } => assert!(payload.is_object(), "{at}"),
    }
}

fn show(rendered: &Rendered) -> String {
    match rendered {
        Rendered::Sms { text, provider_templates } => {
            let s = segments(text);
            let mut out = format!("{text}\n\n[{:?}, {} units, {} segment(s)]", s.encoding, s.units, s.count);
            for (provider, t) in provider_templates {
                out.push_str(&format!("\n[{provider}: {} {}]", t.code, serde_json::to_string(&t.params).unwrap()));
            }
            out
        }
        Rendered::Email { subject, html, text } => {
            format!("Subject: {subject}\n\n----- text -----\n{text}\n----- html -----\n{html}")
        }
        Rendered::Push { title, body } => format!("{title}\n{body}"),
        Rendered::Webhook { payload } => format!("{payload:#}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Provider template mappings (sms.providers.toml) and the SMS segment limit.

const MAPPING: &str = r#"
[aliyun]
template_code = "SMS_123456789"
params = { name = "{{member.first_name}}", points = "{{number member.points}}" }

[tencent]
template_id = "1234567"
params = ["{{member.first_name}}", "{{number member.points}}"]
"#;

#[test]
fn mappings_render_with_the_sms_context() {
    let t = load(&[("birthday/en/sms.hbs", "Hi {{member.first_name}}\n"), ("birthday/en/sms.providers.toml", MAPPING)]);
    let mut ctx = fixture_context("en");
    ctx["member"]["name"] = json!("Ann O'Neil");
    ctx["member"]["first_name"] = json!("Ann \"A\" O'Neil");
    let Rendered::Sms { text, provider_templates } = t.render("birthday", ChannelKind::Sms, &ctx).unwrap() else {
        panic!("not an sms")
    };
    assert_eq!(text, "Hi Ann \"A\" O'Neil");
    let source = provider_templates["aliyun"].source.clone();
    assert!(source.ends_with("birthday/en/sms.providers.toml"), "{source}");
    let named = |pairs: &[(&str, &str)]| {
        ProviderParams::Named(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    };
    assert_eq!(
        provider_templates["aliyun"],
        ProviderTemplate {
            code: "SMS_123456789".into(),
            params: named(&[("name", "Ann \"A\" O'Neil"), ("points", "12,345")]),
            source: source.clone(),
        }
    );
    assert_eq!(
        provider_templates["tencent"],
        ProviderTemplate {
            code: "1234567".into(),
            params: ProviderParams::Ordered(vec!["Ann \"A\" O'Neil".into(), "12,345".into()]),
            source,
        }
    );

    // Without a mapping file the SMS carries none.
    let t = load(&[("birthday/en/sms.hbs", "Hi\n")]);
    assert_eq!(t.render("birthday", ChannelKind::Sms, &fixture_context("en")).unwrap(), Rendered::sms("Hi"));
}

#[test]
fn broken_mappings_name_file_and_line() {
    fn check(mapping: &str, expected: &[&str]) {
        let got = problems(&[("birthday/en/sms.hbs", "Hi\n"), ("birthday/en/sms.providers.toml", mapping)]);
        let expected: Vec<String> =
            expected.iter().map(|e| format!("templates/birthday/en/sms.providers.toml{e}")).collect();
        assert_eq!(got, expected, "{mapping}");
    }
    check(
        "[aliyun]\ntemplate_code = \"SMS_1\"\nparams = { name = \"{{member.nickname}}\" }\n",
        &[":3: aliyun param name: variable member.nickname not found"],
    );
    check(
        "[tencent]\ntemplate_id = \"1\"\nparams = [\n  \"{{member.name}}\",\n  \"{{#if x}}\",\n]\n",
        &[":5: tencent param 1: invalid handlebars syntax at column 10"],
    );
    check(
        "[aliyun]\ntemplate_code = \"SMS_1\"\nparams = { name = 'x' \n",
        &[":3: unclosed inline table, expected `}`"],
    );
    check("[aliyun]\ntemplate_code = \"SMS 1\"\n", &[":2: aliyun.template_code: \"SMS 1\" is not a template code"]);
    check("[tencent]\nparams = []\n", &[":1: missing field `template_id`"]);
    check("[twilio]\ncontent_sid = \"HX1\"\n", &[":1: unknown field `twilio`, expected `aliyun` or `tencent`"]);
    check("# nothing yet\n", &[": maps no provider (expected [aliyun] or [tencent])"]);
    check(
        "[aliyun]\ntemplate_code = \"SMS_1\"\nparams = [\"{{member.name}}\"]\n",
        &[":3: invalid type: sequence, expected a map"],
    );

    // A mapping needs an sms to map.
    let got = problems(&[
        ("birthday/en/push.title.hbs", "Hi\n"),
        ("birthday/en/push.body.hbs", "Hi\n"),
        ("birthday/en/sms.providers.toml", MAPPING),
    ]);
    assert_eq!(got, ["templates/birthday/en/sms.providers.toml: there is no sms.hbs to map"]);
}

#[test]
fn missing_provider_templates_names_each_unmapped_sms_variant() {
    let dir = tree(&[
        ("birthday/en/sms.hbs", "Hi\n"),
        ("birthday/zh-CN/sms.hbs", "你好\n"),
        ("birthday/zh-CN/sms.providers.toml", "[aliyun]\ntemplate_code = \"SMS_1\"\n"),
        ("holiday/en/push.title.hbs", "Hi\n"),
        ("holiday/en/push.body.hbs", "Hi\n"),
    ]);
    let t = Templates::load_dir(dir.path()).unwrap();
    let root = dir.path().display().to_string();
    let missing = |provider: &str| -> Vec<String> {
        t.missing_provider_templates(provider).iter().map(|p| p.replace(&root, "templates")).collect()
    };
    assert_eq!(
        missing("aliyun"),
        [
            "templates/birthday/en/sms.providers.toml: no [aliyun] mapping for templates/birthday/en/sms.hbs (aliyun sends only approved templates)"
        ]
    );
    assert_eq!(missing("tencent").len(), 2);
}

#[test]
fn builtin_sms_is_mapped_for_both_template_providers() {
    let t = Templates::builtin();
    for provider in providers::TEMPLATE_PROVIDERS {
        let missing = t.missing_provider_templates(provider);
        assert_eq!(missing, Vec::<String>::new());
    }
    let ctx = t.fixture("anniversary", "zh-CN");
    let Rendered::Sms { provider_templates, .. } = t.render("anniversary", ChannelKind::Sms, &ctx).unwrap() else {
        panic!("not an sms")
    };
    assert_eq!(provider_templates["tencent"].params, ProviderParams::Ordered(vec!["小明".into(), "6".into()]));
}

#[test]
fn an_sms_over_the_segment_limit_is_refused_with_its_count() {
    let t =
        load(&[("birthday/en/sms.hbs", "{{#if member.attributes.note}}{{member.attributes.note}}{{else}}Hi{{/if}}\n")]);
    let mut ctx = fixture_context("en");
    ctx["member"]["attributes"]["note"] = json!("生".repeat(268));
    let err = t.render("birthday", ChannelKind::Sms, &ctx).unwrap_err().to_string();
    assert!(err.ends_with("birthday/en/sms.hbs: sms is 4 segments (UCS-2, 268 units); the limit is 3"), "{err}");

    // Three parts are allowed by default; a stricter limit, or none, is the programme's choice.
    ctx["member"]["attributes"]["note"] = json!("生".repeat(201));
    assert!(t.render("birthday", ChannelKind::Sms, &ctx).is_ok());
    let t = t.with_sms_segment_limit(Some(2));
    let err = t.render("birthday", ChannelKind::Sms, &ctx).unwrap_err().to_string();
    assert!(err.ends_with("sms is 3 segments (UCS-2, 201 units); the limit is 2"), "{err}");
    ctx["member"]["attributes"]["note"] = json!("€".repeat(1000));
    assert!(t.with_sms_segment_limit(None).render("birthday", ChannelKind::Sms, &ctx).is_ok());
}

#[test]
fn a_template_over_the_limit_for_its_fixture_does_not_load() {
    let dir = tree(&[("birthday/en/sms.hbs", &format!("{} {{{{member.name}}}}\n", "a".repeat(300)))]);
    let root = dir.path().display().to_string();
    let load = |limit| TemplateSet::load_with(Source::Dir(dir.path().to_path_buf()), "en", limit);
    let err = load(Some(1)).unwrap_err();
    let got: Vec<String> = err.problems.iter().map(|p| p.replace(&root, "templates")).collect();
    assert_eq!(got, ["templates/birthday/en/sms.hbs: sms is 3 segments (GSM-7, 313 units); the limit is 1"]);
    assert!(load(Some(3)).is_ok());
    assert!(TemplateSet::load(Source::Builtin, "en").is_ok());
}

fn one_key(sms: &str) -> Result<Templates, super::LoadError> {
    let variant = super::content::Variant { sms: Some(sms.into()), ..Default::default() };
    let content = super::content::Content { locales: [("en".to_string(), variant)].into(), ..Default::default() };
    Templates::from_contents(Path::new(""), &[("k".to_string(), content)].into())
}

#[test]
fn templates_cannot_read_files_run_code_or_call_unknown_helpers() {
    for (source, expected) in [
        ("{{> /etc/passwd}}", "k/en/sms.hbs"),
        ("{{> /etc/passwd}}", "partials are not supported"),
        ("{{> (lookup this \"x\")}}", "k/en/sms.hbs"),
        ("{{exec \"rm -rf /\"}}", "helper exec not found"),
        ("{{#each (readFile \"/etc/passwd\")}}{{this}}{{/each}}", "helper readFile not found"),
        ("{{member.nickname}}", "variable member.nickname not found"),
        ("{{#if member.name}}unclosed", "k/en/sms.hbs:1"),
    ] {
        let err = one_key(source).expect_err(source).to_string();
        assert!(err.contains(expected), "{source}: {err}");
    }
    assert!(one_key("Hi {{member.name}}").is_ok());
}

#[test]
fn the_builtin_set_round_trips_through_contents() {
    let contents = Templates::contents_of(None).unwrap();
    assert!(contents.contains_key("birthday"), "{:?}", contents.keys());
    let rebuilt = Templates::from_contents(Path::new("templates"), &contents).unwrap();
    assert_eq!(rebuilt.keys(), Templates::builtin().keys());
    let ctx = fixture_context("zh-CN");
    assert_eq!(
        rebuilt.render("birthday", ChannelKind::Sms, &ctx).unwrap(),
        Templates::builtin().render("birthday", ChannelKind::Sms, &ctx).unwrap()
    );
    // Files written from the contents read back as the same contents.
    let dir = tempfile::tempdir().unwrap();
    for (key, c) in &contents {
        c.write_dir(dir.path(), key).unwrap();
    }
    assert_eq!(Templates::contents_of(Some(dir.path())).unwrap(), contents);
}
