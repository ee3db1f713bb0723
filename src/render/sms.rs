//! SMS segment counting: how many parts a text costs. GSM-7 when every character is in the GSM
//! 03.38 alphabet (160 septets alone, 153 per part when concatenated, extension characters such as
//! `€` or `{` cost two), otherwise UCS-2 (70 UTF-16 units alone, 67 per part). Chinese carriers
//! bill the same way (70 characters a message, 67 for each part of a long one).
//!
//! Parts are filled the way carriers fill them: an extension character's escape pair, or a
//! UTF-16 surrogate pair, is never split across two parts, so a part may hold one unit fewer.

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// The cost of one SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Segments {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Parts the message is sent as; an empty text still costs one.
    pub count: usize,
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Counts the parts `text` is sent as.
pub fn segments(text: &str) -> Segments {
    let gsm: Option<Vec<usize>> = text
        .chars()
        .map(|c| {
            if GSM_BASIC.contains(c) {
                Some(1)
            } else if GSM_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .collect();
    let (encoding, costs, single, part) = match gsm {
        Some(costs) => (Encoding::Gsm7, costs, 160, 153),
        None => (Encoding::Ucs2, text.chars().map(char::len_utf16).collect(), 70, 67),
    };
    let units = costs.iter().sum();
    if units <= single {
        return Segments { encoding, units, count: 1 };
    }
    // Parts are filled greedily; an escape pair or a surrogate pair is never split.
    let (mut count, mut used) = (1, 0);
    for cost in costs {
        if used + cost > part {
            count += 1;
            used = 0;
        }
        used += cost;
    }
    Segments { encoding, units, count }
}

impl std::fmt::Display for Segments {
    /// `2 segments (UCS-2, 98 units)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let noun = if self.count == 1 { "segment" } else { "segments" };
        write!(f, "{} {noun} ({}, {} units)", self.count, self.encoding.as_str(), self.units)
    }
}

/// Why a text over `limit` segments is refused: `sms is 4 segments (UCS-2, 268 units); the
/// limit is 3`.
pub fn over_limit(s: &Segments, limit: usize) -> String {
    format!("sms is {s}; the limit is {limit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting() {
        fn check(input: &str, expected: (Encoding, usize, usize)) {
            let s = segments(input);
            assert_eq!((s.encoding, s.units, s.count), expected, "{input:?}");
        }
        check("", (Encoding::Gsm7, 0, 1));
        check("Happy birthday, Emma O'Neill!", (Encoding::Gsm7, 29, 1));
        check(&"a".repeat(160), (Encoding::Gsm7, 160, 1));
        check(&"a".repeat(161), (Encoding::Gsm7, 161, 2));
        check(&"a".repeat(306), (Encoding::Gsm7, 306, 2));
        check(&"a".repeat(307), (Encoding::Gsm7, 307, 3));
        check("€5", (Encoding::Gsm7, 3, 1));
        // 152 septets then an escape pair: the pair does not fit in the first part.
        check(&format!("{}€{}", "a".repeat(152), "a".repeat(10)), (Encoding::Gsm7, 164, 2));
        check("生日快乐", (Encoding::Ucs2, 4, 1));
        check(&"生".repeat(70), (Encoding::Ucs2, 70, 1));
        check(&"生".repeat(71), (Encoding::Ucs2, 71, 2));
        check(&"生".repeat(134), (Encoding::Ucs2, 134, 2));
        check(&"生".repeat(135), (Encoding::Ucs2, 135, 3));
        // A curly apostrophe or an emoji turns the whole text into UCS-2.
        check("It’s your day", (Encoding::Ucs2, 13, 1));
        check("🎂", (Encoding::Ucs2, 2, 1));
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        fn check(input: &str, expected: (Encoding, usize, usize)) {
            let s = segments(input);
            assert_eq!((s.encoding, s.units, s.count), expected, "{input:?}");
        }
        for c in ["€", "[", "]", "{", "}", "\\", "^", "~", "|", "\u{c}"] {
            check(c, (Encoding::Gsm7, 2, 1));
        }
        // 80 escape pairs are 160 septets: one part, exactly full.
        check(&"€".repeat(80), (Encoding::Gsm7, 160, 1));
        check(&format!("{}a", "€".repeat(80)), (Encoding::Gsm7, 161, 2));
        // Two parts of 153 septets hold 76 pairs each (152), never 76½.
        check(&"[".repeat(152), (Encoding::Gsm7, 304, 2));
        check(&"[".repeat(153), (Encoding::Gsm7, 306, 3));
        // 306 septets would be two parts if a pair could straddle; it cannot, so three.
        check(&format!("{}€{}", "a".repeat(152), "a".repeat(152)), (Encoding::Gsm7, 306, 3));
        check(&format!("{}€{}", "a".repeat(151), "a".repeat(153)), (Encoding::Gsm7, 306, 2));
        // A surrogate pair is not split either: 66 units, then an emoji that would straddle.
        check(&format!("{}🎂{}", "生".repeat(66), "生".repeat(67)), (Encoding::Ucs2, 135, 3));
    }

    #[test]
    fn over_limit_names_count_encoding_and_units() {
        let s = segments(&"生".repeat(268));
        assert_eq!(over_limit(&s, 3), "sms is 4 segments (UCS-2, 268 units); the limit is 3");
        assert_eq!(segments("hi").to_string(), "1 segment (GSM-7, 2 units)");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Characters from the basic table, the extension table, and beyond GSM (CJK, emoji).
        fn text(with_ucs2: bool) -> impl Strategy<Value = String> {
            let basic: Vec<char> = GSM_BASIC.chars().collect();
            let ext: Vec<char> = GSM_EXTENSION.chars().collect();
            let mut choices = vec![proptest::sample::select(basic).boxed(), proptest::sample::select(ext).boxed()];
            if with_ucs2 {
                choices.push(proptest::sample::select(vec!['生', '日', '🎂', '’']).boxed());
            }
            proptest::collection::vec(proptest::strategy::Union::new(choices), 0..700)
                .prop_map(|chars| chars.into_iter().collect())
        }

        proptest! {
            /// Units are what the carrier counts; parts never split a pair, so each part holds
            /// the part size or one less.
            #[test]
            fn gsm_parts_are_bounded(t in text(false)) {
                let s = segments(&t);
                prop_assert_eq!(s.encoding, Encoding::Gsm7);
                let expected_units: usize = t.chars().map(|c| if GSM_EXTENSION.contains(c) { 2 } else { 1 }).sum();
                prop_assert_eq!(s.units, expected_units);
                if s.units <= 160 {
                    prop_assert_eq!(s.count, 1);
                } else {
                    prop_assert!(s.count >= s.units.div_ceil(153));
                    prop_assert!(s.count <= s.units.div_ceil(152));
                }
            }

            #[test]
            fn ucs2_parts_are_bounded(t in text(true)) {
                let s = segments(&t);
                let units = t.encode_utf16().count();
                if s.encoding == Encoding::Ucs2 {
                    prop_assert_eq!(s.units, units);
                    if units <= 70 {
                        prop_assert_eq!(s.count, 1);
                    } else {
                        prop_assert!(s.count >= units.div_ceil(67));
                        prop_assert!(s.count <= units.div_ceil(66));
                    }
                } else {
                    prop_assert!(t.chars().all(|c| GSM_BASIC.contains(c) || GSM_EXTENSION.contains(c)));
                }
            }
        }
    }
}
