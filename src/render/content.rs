//! A template key's content as the database stores it (one JSON document per version) and as a
//! directory holds it: every locale's parts, its `sms.providers.toml` and the key's
//! `fixture.json`. Converting between the two is exact, so exporting what was imported gives the
//! same files back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Part, providers};

/// One key's content: its locales' variants and the occurrence fields its fixture overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// Merged over the fixture member's `occurrence` when validating and previewing
    /// (`fixture.json` in a directory).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fixture: Map<String, Value>,
    /// By locale tag (`en`, `zh-CN`).
    pub locales: BTreeMap<String, Variant>,
}

/// One locale's channels; a channel left out is not sent in this locale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// The provider template mappings (`sms.providers.toml`, as written): Aliyun's template code,
    /// Tencent's template id and their parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_providers: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    pub title: String,
    pub body: String,
}

impl Variant {
    /// The variant's parts as (part, source), in [`Part::ALL`] order.
    pub fn parts(&self) -> Vec<(Part, &str)> {
        let mut out = Vec::new();
        if let Some(sms) = &self.sms {
            out.push((Part::Sms, sms.as_str()));
        }
        if let Some(e) = &self.email {
            out.extend([
                (Part::EmailSubject, e.subject.as_str()),
                (Part::EmailHtml, &e.html),
                (Part::EmailText, &e.text),
            ]);
        }
        if let Some(p) = &self.push {
            out.extend([(Part::PushTitle, p.title.as_str()), (Part::PushBody, &p.body)]);
        }
        out
    }

    /// A variant from the files of one locale directory, by part; `None` for a channel whose
    /// parts are not all there (the loader reports those).
    pub(super) fn from_parts(parts: &BTreeMap<Part, String>, providers: Option<String>) -> Variant {
        let get = |p: Part| parts.get(&p).cloned();
        Variant {
            sms: get(Part::Sms),
            email: match (get(Part::EmailSubject), get(Part::EmailHtml), get(Part::EmailText)) {
                (Some(subject), Some(html), Some(text)) => Some(Email { subject, html, text }),
                _ => None,
            },
            push: match (get(Part::PushTitle), get(Part::PushBody)) {
                (Some(title), Some(body)) => Some(Push { title, body }),
                _ => None,
            },
            sms_providers: providers,
        }
    }
}

impl Content {
    /// The content as stored: compact JSON, keys in order, so equal contents are equal text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("content serializes")
    }

    /// Reads stored or posted JSON; the error names the field serde stopped at.
    pub fn from_json(value: &Value) -> Result<Content, String> {
        serde_json::from_value(value.clone()).map_err(|e| e.to_string())
    }

    /// The files of this content below `dir/<key>`, as (relative path components, text): the
    /// layout the directory loader reads.
    pub fn files(&self, key: &str) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        if !self.fixture.is_empty() {
            let text = serde_json::to_string_pretty(&self.fixture).expect("fixture serializes") + "\n";
            out.push((vec![key.to_string(), "fixture.json".to_string()], text));
        }
        for (locale, variant) in &self.locales {
            for (part, text) in variant.parts() {
                out.push((vec![key.to_string(), locale.clone(), part.file_name()], text.to_string()));
            }
            if let Some(toml) = &variant.sms_providers {
                out.push((vec![key.to_string(), locale.clone(), providers::FILE_NAME.to_string()], toml.clone()));
            }
        }
        out
    }

    /// Writes the key's files below `dir` (`dir/<key>/<locale>/<part>.hbs`, …).
    pub fn write_dir(&self, dir: &Path, key: &str) -> std::io::Result<()> {
        for (rel, text) in self.files(key) {
            let path = rel.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)?;
        }
        Ok(())
    }
}
