//! SMS segment counting: how many parts a text costs. GSM-7 when every character is in the GSM
//! 03.38 alphabet (160 septets alone, 153 per part when concatenated, extension characters such as
//! `€` or `{` cost two), otherwise UCS-2 (70 UTF-16 units alone, 67 per part). Chinese carriers
//! bill the same way (70 characters a message, 67 for each part of a long one).

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The cost of one SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}
