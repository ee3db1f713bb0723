//! Template helpers: `date`, `lunar_date`, `zodiac`, `number`, `ordinal` and `default`. Each formats for the language of
//! the root context's `locale` (`zh*` is Chinese, anything else English). They are pure: no files,
//! no scripts, no network. The formatting lives in plain functions so tests need no registry.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, PathAndJson, RenderContext, RenderError, RenderErrorReason, ScopedJson,
};
use jiff::civil::Date;
use serde_json::Value;

/// Registers every helper of this module on `reg`.
pub(super) fn register(reg: &mut Handlebars<'static>) {
    reg.register_helper("date", Box::new(DateHelper));
    reg.register_helper("lunar_date", Box::new(LunarDateHelper));
    reg.register_helper("zodiac", Box::new(ZodiacHelper));
    reg.register_helper("number", Box::new(NumberHelper));
    reg.register_helper("ordinal", Box::new(OrdinalHelper));
    reg.register_helper("default", Box::new(DefaultHelper));
}

/// The languages the helpers format for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `zh`, `zh-CN`, `zh-Hant-TW`… are Chinese; everything else, or nothing, is English.
    pub fn of(locale: Option<&str>) -> Lang {
        match locale {
            Some(l) if l.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("zh")) => Lang::Zh,
            _ => Lang::En,
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats an ISO civil date (`2026-11-23`) in one of the styles `long` (the default),
/// `month_day` and `short`.
pub fn format_date(iso: &str, style: Option<&str>, lang: Lang) -> Result<String, String> {
    let date: Date = iso.parse().map_err(|_| format!("{iso:?} is not a date (expected YYYY-MM-DD)"))?;
    let (y, m, d) = (date.year(), date.month(), date.day());
    let month = MONTHS[usize::try_from(m - 1).expect("months are 1 to 12")];
    let out = match (style.unwrap_or("long"), lang) {
        ("long", Lang::En) => format!("{month} {d}, {y}"),
        ("long", Lang::Zh) => format!("{y}年{m}月{d}日"),
        ("month_day", Lang::En) => format!("{month} {d}"),
        ("month_day", Lang::Zh) => format!("{m}月{d}日"),
        ("short", Lang::En) => format!("{} {d}", &month[..3]),
        ("short", Lang::Zh) => format!("{m}/{d}"),
        (other, _) => {
            return Err(format!("unknown date style {other:?} (long, month_day or short)"));
        }
    };
    Ok(out)
}

/// The Chinese-calendar date of an ISO civil date, in Chinese: `农历八月十五` (style `long`, the
/// default) or `八月十五` (`month_day`). Chinese whatever the message's language: it is a name.
pub fn format_lunar_date(iso: &str, style: Option<&str>) -> Result<String, String> {
    let date: Date = iso.parse().map_err(|_| format!("{iso:?} is not a date (expected YYYY-MM-DD)"))?;
    let lunar = crate::triggers::calendar::to_lunar(date).ok_or_else(|| format!("{iso} is outside the calendar"))?;
    match style.unwrap_or("long") {
        "long" => Ok(lunar.to_chinese()),
        "month_day" => Ok(lunar.month_day_chinese()),
        other => Err(format!("unknown lunar date style {other:?} (long or month_day)")),
    }
}

/// The zodiac animal of the Chinese year an ISO civil date falls in (the year turns at Spring
/// Festival, not on January 1): `马` or `Horse`.
pub fn format_zodiac(iso: &str, lang: Lang) -> Result<String, String> {
    let date: Date = iso.parse().map_err(|_| format!("{iso:?} is not a date (expected YYYY-MM-DD)"))?;
    let lunar = crate::triggers::calendar::to_lunar(date).ok_or_else(|| format!("{iso} is outside the calendar"))?;
    let animal = crate::triggers::calendar::zodiac(lunar.year);
    Ok(match lang {
        Lang::Zh => animal.zh(),
        Lang::En => animal.en(),
    }
    .to_string())
}

/// Formats a number with thousands separators: `12,345`, `1,234.5`, `-1,000`. Numeric strings
/// are accepted too, since imported data often carries numbers as text.
pub fn format_number(v: &Value) -> Result<String, String> {
    let plain = match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => float_text(f),
            _ => return Err(format!("{n} is not a number")),
        },
        Value::String(s) => match (s.trim().parse::<i64>(), s.trim().parse::<f64>()) {
            (Ok(i), _) => i.to_string(),
            (Err(_), Ok(f)) if f.is_finite() => float_text(f),
            _ => return Err(format!("{s:?} is not a number")),
        },
        other => return Err(format!("{other} is not a number")),
    };
    let (sign, unsigned) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain.as_str()),
    };
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    Ok(out)
}

/// A float as plain decimal text: never an exponent, and no `.0` on whole numbers.
fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{f:.0}") } else { format!("{f}") }
}

/// Formats a non-negative integer as an ordinal: `1st`, `12th`, `23rd` in English, `第3` in Chinese.
pub fn format_ordinal(v: &Value, lang: Lang) -> Result<String, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{v} is not a non-negative integer"))?;
    Ok(match lang {
        Lang::Zh => format!("第{n}"),
        Lang::En => {
            let suffix = match (n % 100, n % 10) {
                (11..=13, _) => "th",
                (_, 1) => "st",
                (_, 2) => "nd",
                (_, 3) => "rd",
                _ => "th",
            };
            format!("{n}{suffix}")
        }
    })
}

/// The language of the message being rendered, from the root context's `locale`.
fn lang(ctx: &Context) -> Lang {
    Lang::of(ctx.data().get("locale").and_then(Value::as_str))
}

fn fail(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

/// The helper's parameters, checked for count and presence (strict mode does not reach into a
/// helper's parameters the way it does for a plain `{{variable}}`).
fn params<'a, 'rc>(
    h: &'a Helper<'rc>,
    min: usize,
    max: usize,
    usage: &str,
) -> Result<&'a [PathAndJson<'rc>], RenderError> {
    let ps = h.params();
    if ps.len() < min || ps.len() > max {
        return Err(fail(format!("usage: {usage}")));
    }
    for p in ps {
        if p.is_value_missing() {
            let path = p.relative_path().map_or("", String::as_str);
            return Err(fail(format!("variable {path} not found")));
        }
    }
    Ok(ps)
}

/// A date helper's parameters: the ISO date and, where the helper has styles (`styled`), an
/// optional style name.
fn date_and_style<'a>(
    h: &'a Helper<'_>,
    name: &str,
    styled: bool,
    usage: &str,
) -> Result<(&'a str, Option<&'a str>), RenderError> {
    let ps = params(h, 1, if styled { 2 } else { 1 }, usage)?;
    let iso = ps[0].value().as_str().ok_or_else(|| fail(format!("{name}: {} is not a date string", ps[0].value())))?;
    let style = match ps.get(1) {
        Some(p) => Some(p.value().as_str().ok_or_else(|| fail(format!("{name}: the style must be a string")))?),
        None => None,
    };
    Ok((iso, style))
}

fn text<'rc>(s: String) -> ScopedJson<'rc> {
    ScopedJson::Derived(Value::String(s))
}

/// `{{date occurrence.date}}`, `{{date occurrence.date "month_day"}}`, `{{date x "short"}}`.
struct DateHelper;

impl HelperDef for DateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let (iso, style) = date_and_style(h, "date", true, "{{date x}} or {{date x \"month_day\"|\"short\"}}")?;
        format_date(iso, style, lang(ctx)).map(text).map_err(|e| fail(format!("date: {e}")))
    }
}

/// `{{lunar_date occurrence.date}}` (`农历八月十五`), `{{lunar_date x "month_day"}}` (`八月十五`).
struct LunarDateHelper;

impl HelperDef for LunarDateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let (iso, style) = date_and_style(h, "lunar_date", true, "{{lunar_date x}} or {{lunar_date x \"month_day\"}}")?;
        format_lunar_date(iso, style).map(text).map_err(|e| fail(format!("lunar_date: {e}")))
    }
}

/// `{{zodiac occurrence.date}}`: the animal of that date's Chinese year, in the message's language.
struct ZodiacHelper;

impl HelperDef for ZodiacHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let (iso, _) = date_and_style(h, "zodiac", false, "{{zodiac x}}")?;
        format_zodiac(iso, lang(ctx)).map(text).map_err(|e| fail(format!("zodiac: {e}")))
    }
}

/// `{{number member.points}}`.
struct NumberHelper;

impl HelperDef for NumberHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let ps = params(h, 1, 1, "{{number x}}")?;
        format_number(ps[0].value()).map(text).map_err(|e| fail(format!("number: {e}")))
    }
}

/// `{{ordinal occurrence.years}}`.
struct OrdinalHelper;

impl HelperDef for OrdinalHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let ps = params(h, 1, 1, "{{ordinal n}}")?;
        format_ordinal(ps[0].value(), lang(ctx)).map(text).map_err(|e| fail(format!("ordinal: {e}")))
    }
}

/// `{{default member.first_name member.name "friend"}}`: the first parameter that is neither
/// null nor an empty string, so optional fields read well without an `{{#if}}` around each.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let ps = params(h, 2, usize::MAX, "{{default x y… \"fallback\"}}")?;
        let chosen = ps
            .iter()
            .map(PathAndJson::value)
            .find(|v| !matches!(v, Value::Null) && v.as_str() != Some(""))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(ScopedJson::Derived(chosen))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lunar_dates_and_zodiac_animals() {
        // Mid-Autumn 2026 (八月十五) fell on September 25; Spring Festival 2027 on February 6.
        assert_eq!(format_lunar_date("2026-09-25", None).as_deref(), Ok("农历八月十五"));
        assert_eq!(format_lunar_date("2026-09-25", Some("month_day")).as_deref(), Ok("八月十五"));
        assert_eq!(format_lunar_date("2027-02-06", None).as_deref(), Ok("农历正月初一"));
        assert!(format_lunar_date("2026-09-25", Some("short")).unwrap_err().contains("style"));
        assert!(format_lunar_date("25/09/2026", None).unwrap_err().contains("not a date"));
        // The year of the horse runs to the eve of Spring Festival 2027, then the goat.
        assert_eq!(format_zodiac("2027-02-05", Lang::Zh).as_deref(), Ok("马"));
        assert_eq!(format_zodiac("2027-02-06", Lang::Zh).as_deref(), Ok("羊"));
        assert_eq!(format_zodiac("2027-02-06", Lang::En).as_deref(), Ok("Goat"));
    }

    #[test]
    fn dates() {
        fn check(input: (&str, Option<&str>, Lang), expected: Result<&str, &str>) {
            let (iso, style, lang) = input;
            let got = format_date(iso, style, lang);
            assert_eq!(got.as_deref().map_err(String::as_str), expected, "{input:?}");
        }
        check(("2026-11-23", None, Lang::En), Ok("November 23, 2026"));
        check(("2026-11-23", None, Lang::Zh), Ok("2026年11月23日"));
        check(("2026-11-23", Some("long"), Lang::En), Ok("November 23, 2026"));
        check(("2026-11-23", Some("month_day"), Lang::En), Ok("November 23"));
        check(("2026-11-23", Some("month_day"), Lang::Zh), Ok("11月23日"));
        check(("2026-11-23", Some("short"), Lang::En), Ok("Nov 23"));
        check(("2026-11-23", Some("short"), Lang::Zh), Ok("11/23"));
        check(("2027-01-05", None, Lang::En), Ok("January 5, 2027"));
        check(("2027-01-05", None, Lang::Zh), Ok("2027年1月5日"));
        check(("2028-02-29", Some("short"), Lang::En), Ok("Feb 29"));
        check(("2026-02-30", None, Lang::En), Err("\"2026-02-30\" is not a date (expected YYYY-MM-DD)"));
        check(("yesterday", None, Lang::Zh), Err("\"yesterday\" is not a date (expected YYYY-MM-DD)"));
        check(("2026-11-23", Some("iso"), Lang::En), Err("unknown date style \"iso\" (long, month_day or short)"));
    }

    #[test]
    fn numbers() {
        fn check(input: Value, expected: Result<&str, &str>) {
            let got = format_number(&input);
            assert_eq!(got.as_deref().map_err(String::as_str), expected, "{input}");
        }
        check(json!(0), Ok("0"));
        check(json!(999), Ok("999"));
        check(json!(1000), Ok("1,000"));
        check(json!(12345), Ok("12,345"));
        check(json!(1234567), Ok("1,234,567"));
        check(json!(-1234567), Ok("-1,234,567"));
        check(json!(u64::MAX), Ok("18,446,744,073,709,551,615"));
        check(json!(1234.5), Ok("1,234.5"));
        check(json!(-0.25), Ok("-0.25"));
        check(json!(12345.0), Ok("12,345"));
        check(json!("12345"), Ok("12,345"));
        check(json!("1234.5"), Ok("1,234.5"));
        check(json!("lots"), Err("\"lots\" is not a number"));
        check(json!(null), Err("null is not a number"));
        check(json!(true), Err("true is not a number"));
    }

    #[test]
    fn ordinals() {
        fn check(input: (Value, Lang), expected: Result<&str, &str>) {
            let got = format_ordinal(&input.0, input.1);
            assert_eq!(got.as_deref().map_err(String::as_str), expected, "{input:?}");
        }
        let en = [
            (0, "0th"),
            (1, "1st"),
            (2, "2nd"),
            (3, "3rd"),
            (4, "4th"),
            (11, "11th"),
            (12, "12th"),
            (13, "13th"),
            (21, "21st"),
            (22, "22nd"),
            (101, "101st"),
            (111, "111th"),
            (112, "112th"),
            (1003, "1003rd"),
        ];
        for (n, want) in en {
            check((json!(n), Lang::En), Ok(want));
        }
        check((json!(3), Lang::Zh), Ok("第3"));
        check((json!("12"), Lang::En), Ok("12th"));
        check((json!(-1), Lang::En), Err("-1 is not a non-negative integer"));
        check((json!(1.5), Lang::Zh), Err("1.5 is not a non-negative integer"));
        check((json!(null), Lang::En), Err("null is not a non-negative integer"));
    }

    #[test]
    fn languages() {
        fn check(input: Option<&str>, expected: Lang) {
            assert_eq!(Lang::of(input), expected, "{input:?}");
        }
        check(Some("zh-CN"), Lang::Zh);
        check(Some("zh"), Lang::Zh);
        check(Some("ZH-tw"), Lang::Zh);
        check(Some("zh_Hant_HK"), Lang::Zh);
        check(Some("en"), Lang::En);
        check(Some("fr"), Lang::En);
        check(Some("z"), Lang::En);
        check(Some(""), Lang::En);
        check(None, Lang::En);
    }

    /// The helpers as templates see them: the language comes from the root context.
    #[test]
    fn in_templates() {
        fn check(input: (&str, Value), expected: Result<&str, &str>) {
            let mut reg = Handlebars::new();
            reg.set_strict_mode(true);
            reg.register_escape_fn(handlebars::no_escape);
            register(&mut reg);
            let got = reg.render_template(input.0, &input.1).map_err(|e| match e.reason() {
                RenderErrorReason::Other(m) => m.clone(),
                r => r.to_string(),
            });
            assert_eq!(got.as_deref().map_err(String::as_str), expected, "{input:?}");
        }
        let zh = json!({"locale": "zh-CN", "d": "2026-11-23", "n": 12345, "y": 3, "a": null, "b": "", "c": "小明"});
        let en = json!({"locale": "en-GB", "d": "2026-11-23", "n": 12345, "y": 3, "a": null, "b": "", "c": "Sam"});
        check(("{{date d}}", zh.clone()), Ok("2026年11月23日"));
        check(("{{date d \"short\"}}", en.clone()), Ok("Nov 23"));
        check(("{{number n}} {{ordinal y}}", zh.clone()), Ok("12,345 第3"));
        check(("{{number n}} {{ordinal y}}", en.clone()), Ok("12,345 3rd"));
        check(("{{date d}}, {{ordinal y}}", json!({"d": "2026-11-23", "y": 1})), Ok("November 23, 2026, 1st"));
        check(("{{default a b c \"friend\"}}", zh.clone()), Ok("小明"));
        check(("{{default a b \"friend\"}}", en.clone()), Ok("friend"));
        check(("{{date nope}}", en.clone()), Err("variable nope not found"));
        check(("{{date d \"iso\"}}", en.clone()), Err("date: unknown date style \"iso\" (long, month_day or short)"));
        check(("{{date n}}", en.clone()), Err("date: 12345 is not a date string"));
        check(("{{number}}", en.clone()), Err("usage: {{number x}}"));
        check(("{{default a nope \"x\"}}", en), Err("variable nope not found"));
    }
}
