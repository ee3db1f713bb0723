//! Provider template mappings: Aliyun and Tencent Cloud send only templates approved in their
//! consoles, addressed by a code, with the variable parts passed as parameters. A variant's
//! `sms.providers.toml`, beside its `sms.hbs`, says which approved template its SMS is and how
//! each parameter is filled:
//!
//! ```toml
//! [aliyun]
//! template_code = "SMS_123456789"
//! params = { name = "{{member.first_name}}", points = "{{member.points}}" }
//!
//! [tencent]
//! template_id = "1234567"
//! params = ["{{member.first_name}}", "{{member.points}}"]
//! ```
//!
//! Parameters are Handlebars in the plain (non-escaping, strict) registry, rendered with the
//! SMS's own context. They are compiled at load and rendered against the fixture like every
//! template, each problem naming the file and the line of the parameter.

use std::collections::BTreeMap;

use handlebars::{Context, Handlebars, TemplateErrorReason};
use serde::Deserialize;
use toml::Spanned;

use crate::channels::{ProviderParams, ProviderTemplate};

/// The mapping file's name, in a `<key>/<locale>` directory.
pub const FILE_NAME: &str = "sms.providers.toml";

/// The providers that send only approved templates, as named in the mapping file.
pub const TEMPLATE_PROVIDERS: [&str; 2] = ["aliyun", "tencent"];

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    aliyun: Option<AliyunMapping>,
    tencent: Option<TencentMapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliyunMapping {
    template_code: Spanned<String>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TencentMapping {
    template_id: Spanned<String>,
    #[serde(default)]
    params: Vec<Spanned<String>>,
}

/// One variant's mappings, compiled, by provider name.
#[derive(Debug, Default)]
pub(super) struct Mappings {
    /// `templates/<key>/<locale>/sms.providers.toml`, for messages.
    file: String,
    by_provider: BTreeMap<String, Mapping>,
}

#[derive(Debug)]
struct Mapping {
    code: String,
    params: Vec<Param>,
    named: bool,
}

/// One parameter: its name (Aliyun) or position (Tencent), where it is registered, its line.
#[derive(Debug)]
struct Param {
    name: String,
    template: String,
    line: usize,
}

impl Mappings {
    pub(super) fn has(&self, provider: &str) -> bool {
        self.by_provider.contains_key(provider)
    }

    /// Renders every provider's parameters with `ctx`; an error is `(file:line, problem)`.
    pub(super) fn render(
        &self,
        registry: &Handlebars<'static>,
        ctx: &Context,
    ) -> Result<BTreeMap<String, ProviderTemplate>, (String, String)> {
        let mut out = BTreeMap::new();
        for (provider, mapping) in &self.by_provider {
            let mut values = Vec::with_capacity(mapping.params.len());
            for param in &mapping.params {
                let value = registry.render_with_context(&param.template, ctx).map_err(|e| {
                    let at = format!("{}:{}", self.file, param.line);
                    (at, format!("{provider} param {}: {}", param.name, super::describe(&e)))
                })?;
                values.push((param.name.clone(), value));
            }
            let params = if mapping.named {
                ProviderParams::Named(values.into_iter().collect())
            } else {
                ProviderParams::Ordered(values.into_iter().map(|(_, v)| v).collect())
            };
            let template = ProviderTemplate { code: mapping.code.clone(), params, source: self.file.clone() };
            out.insert(provider.clone(), template);
        }
        Ok(out)
    }
}

/// Parses `text` (the file `file` of variant `key`/`locale`) and compiles its parameters into
/// `registry`. Every problem is pushed, as `file:line: problem`; `None` when there was any.
pub(super) fn compile(
    file: &str,
    text: &str,
    key: &str,
    locale: &str,
    registry: &mut Handlebars<'static>,
    problems: &mut Vec<String>,
) -> Option<Mappings> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let parsed: MappingFile = match toml::from_str(text) {
        Ok(parsed) => parsed,
        Err(e) => {
            let at = e.span().map(|s| format!(":{}", line_of(s.start))).unwrap_or_default();
            problems.push(format!("{file}{at}: {}", e.message().trim_end()));
            return None;
        }
    };
    let before = problems.len();
    let mut mappings = Mappings { file: file.to_string(), by_provider: BTreeMap::new() };
    let code = |provider: &str, field: &str, value: &Spanned<String>, problems: &mut Vec<String>| {
        let v = value.get_ref();
        if v.trim().is_empty() || v.trim() != v || v.contains(char::is_whitespace) {
            let line = line_of(value.span().start);
            problems.push(format!("{file}:{line}: {provider}.{field}: {v:?} is not a template code"));
        }
        v.clone()
    };
    let mut register = |provider: &str, name: &str, value: &Spanned<String>, problems: &mut Vec<String>| {
        let line = line_of(value.span().start);
        let template = format!("{key}/{locale}/sms.providers/{provider}/{name}");
        if let Err(e) = registry.register_template_string(&template, value.get_ref()) {
            let problem = match (e.reason(), e.pos()) {
                (TemplateErrorReason::InvalidSyntax(_), Some((_, col))) => {
                    format!("invalid handlebars syntax at column {col}")
                }
                (reason, _) => reason.to_string(),
            };
            problems.push(format!("{file}:{line}: {provider} param {name}: {problem}"));
        }
        Param { name: name.to_string(), template, line }
    };
    if let Some(a) = &parsed.aliyun {
        let code = code("aliyun", "template_code", &a.template_code, problems);
        let params = a.params.iter().map(|(name, value)| register("aliyun", name, value, problems)).collect();
        mappings.by_provider.insert("aliyun".into(), Mapping { code, params, named: true });
    }
    if let Some(t) = &parsed.tencent {
        let code = code("tencent", "template_id", &t.template_id, problems);
        let params = t
            .params
            .iter()
            .enumerate()
            .map(|(i, value)| register("tencent", &i.to_string(), value, problems))
            .collect();
        mappings.by_provider.insert("tencent".into(), Mapping { code, params, named: false });
    }
    if mappings.by_provider.is_empty() {
        problems.push(format!("{file}: maps no provider (expected [aliyun] or [tencent])"));
    }
    (problems.len() == before).then_some(mappings)
}
