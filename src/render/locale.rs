//! Choosing a template's locale variant for a member: exact tag, then same language, then the
//! programme's fallback, then English, then anything. Pure, over the list of available variants.

/// Picks one of `available` (locale directory names, as spelled on disk) for a member who wants
/// `wanted`. Comparison ignores case and treats `_` as `-` (`zh_CN` is `zh-CN`).
pub(super) fn resolve<'a>(available: &[&'a str], wanted: Option<&str>, fallback: &str) -> Option<&'a str> {
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    wanted
        .and_then(|w| best(available, w))
        .or_else(|| best(available, fallback))
        .or_else(|| best(available, "en"))
        .or_else(|| available.iter().min().copied())
}

/// The variant matching `tag` exactly, else one with its primary language: the bare language
/// (`en` for `en-GB`) first, then the first in sorted order, so the choice is stable.
fn best<'a>(available: &[&'a str], tag: &str) -> Option<&'a str> {
    let tag = normalise(tag);
    if tag.is_empty() {
        return None;
    }
    if let Some(exact) = available.iter().find(|a| normalise(a) == tag) {
        return Some(exact);
    }
    let lang = primary(&tag);
    let mut same: Vec<&'a str> = available.iter().copied().filter(|a| primary(&normalise(a)) == lang).collect();
    same.sort_by_key(|a| (normalise(a) != lang, *a));
    same.first().copied()
}

fn normalise(tag: &str) -> String {
    tag.trim().replace('_', "-").to_ascii_lowercase()
}

fn primary(normalised: &str) -> &str {
    normalised.split('-').next().unwrap_or(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution() {
        fn check(input: (&[&str], Option<&str>, &str), expected: Option<&str>) {
            let (available, wanted, fallback) = input;
            assert_eq!(resolve(available, wanted, fallback), expected, "{input:?}");
        }
        let both: &[&str] = &["en", "zh-CN"];
        check((both, Some("zh-CN"), "en"), Some("zh-CN"));
        check((both, Some("ZH-cn"), "en"), Some("zh-CN"));
        check((both, Some("zh_CN"), "en"), Some("zh-CN"));
        check((both, Some("zh-TW"), "en"), Some("zh-CN"));
        check((both, Some("zh"), "en"), Some("zh-CN"));
        check((both, Some("en-GB"), "zh-CN"), Some("en"));
        check((both, Some("fr"), "zh-CN"), Some("zh-CN"));
        check((both, Some("fr"), "en"), Some("en"));
        check((both, None, "zh-CN"), Some("zh-CN"));
        check((both, Some(""), "zh-CN"), Some("zh-CN"));
        check((both, Some("  "), "en"), Some("en"));
        // The fallback itself falls back by language.
        check((both, Some("fr"), "zh-HK"), Some("zh-CN"));
        // Then English, then whatever there is.
        check((both, Some("fr"), "de"), Some("en"));
        check((&["en-US", "zh-CN"], Some("fr"), "de"), Some("en-US"));
        check((&["ja", "zh-CN"], Some("fr"), "de"), Some("ja"));
        check((&["zh-CN"], Some("en-GB"), "en"), Some("zh-CN"));
        check((&[], Some("en"), "en"), None);
        // Among several of one language, the bare language wins, then sorted order.
        check((&["en-US", "en", "en-AU"], Some("en-GB"), "en"), Some("en"));
        check((&["en-US", "en-AU"], Some("en-GB"), "en"), Some("en-AU"));
        check((&["en-US", "en-AU"], Some("en-US"), "en"), Some("en-US"));
    }
}
