//! Loading a template set: read the tree (a directory, or the copy embedded in the binary), check
//! its layout, compile every part once, then render each variant against the fixture so that a
//! variable the caller never provides is a load error, not a failed send. Problems are collected,
//! never returned one at a time.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use handlebars::{Handlebars, TemplateErrorReason};
use include_dir::{Dir, DirEntry, include_dir};
use serde_json::Value;

use super::content::{Content, Variant};
use super::{KeyTemplates, LoadError, Part, Templates, fixture, providers, template_name};
use crate::channels::ChannelKind;

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// One entry of a template tree, by its path components below the root.
#[derive(Debug)]
enum Entry {
    Dir(Vec<String>),
    /// The file's text, or why it could not be read.
    File(Vec<String>, Result<String, String>),
}

pub(super) fn load_dir(dir: &Path) -> Result<Templates, LoadError> {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    read_fs(dir, &mut Vec::new(), &mut entries, &mut problems);
    build(dir, entries, problems)
}

pub(super) fn builtin() -> Result<Templates, LoadError> {
    let mut entries = Vec::new();
    read_embedded(&BUILTIN, &mut entries);
    build(Path::new("templates"), entries, Vec::new())
}

/// A set from stored contents, by key. Problems name `root/<key>/<locale>/<part>.hbs`, as for
/// a directory.
pub(super) fn from_contents(root: &Path, contents: &BTreeMap<String, Content>) -> Result<Templates, LoadError> {
    let mut entries = Vec::new();
    for (key, content) in contents {
        entries.push(Entry::Dir(vec![key.clone()]));
        let files = content.files(key);
        let (fixture, parts): (Vec<_>, Vec<_>) = files.into_iter().partition(|(rel, _)| rel.len() == 2);
        entries.extend(fixture.into_iter().map(|(rel, text)| Entry::File(rel, Ok(text))));
        for locale in content.locales.keys() {
            entries.push(Entry::Dir(vec![key.clone(), locale.clone()]));
            let mine = parts.iter().filter(|(rel, _)| &rel[1] == locale);
            entries.extend(mine.map(|(rel, text)| Entry::File(rel.clone(), Ok(text.clone()))));
        }
    }
    if entries.is_empty() {
        return Err(LoadError { problems: vec![format!("{}: no templates found", root.display())] });
    }
    build(root, entries, Vec::new())
}

/// The contents of a template directory (or of the built-in set, `None`), by key, once the
/// whole set loads and validates; otherwise every problem, each naming its file.
pub(super) fn contents_of(dir: Option<&Path>) -> Result<BTreeMap<String, Content>, LoadError> {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    let root = match dir {
        Some(dir) => {
            read_fs(dir, &mut Vec::new(), &mut entries, &mut problems);
            dir
        }
        None => {
            read_embedded(&BUILTIN, &mut entries);
            Path::new("templates")
        }
    };
    let mut parts: BTreeMap<(String, String), BTreeMap<Part, String>> = BTreeMap::new();
    let mut mappings: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut out: BTreeMap<String, Content> = BTreeMap::new();
    for entry in &entries {
        let Entry::File(path, Ok(text)) = entry else { continue };
        if path.iter().any(|c| c.starts_with('.')) {
            continue;
        }
        match path.as_slice() {
            [key, file] if file == "fixture.json" => {
                if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
                    out.entry(key.clone()).or_default().fixture = map;
                }
            }
            [key, locale, file] if file == providers::FILE_NAME => {
                mappings.insert((key.clone(), locale.clone()), text.clone());
            }
            [key, locale, file] => {
                if let Some(part) = Part::from_file_name(file) {
                    parts.entry((key.clone(), locale.clone())).or_default().insert(part, text.clone());
                }
            }
            _ => {}
        }
    }
    build(root, entries, problems)?;
    for ((key, locale), found) in &parts {
        let providers = mappings.remove(&(key.clone(), locale.clone()));
        let variant = Variant::from_parts(found, providers);
        out.entry(key.clone()).or_default().locales.insert(locale.clone(), variant);
    }
    out.retain(|_, c| !c.locales.is_empty());
    Ok(out)
}

/// Depth of the layout: `<key>/<locale>/<part>.hbs`. Nothing below is read.
const DEPTH: usize = 3;

fn read_fs(root: &Path, rel: &mut Vec<String>, out: &mut Vec<Entry>, problems: &mut Vec<String>) {
    let dir: PathBuf = rel.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    let listing = match fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) => return problems.push(format!("{}: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in listing {
        match entry {
            Ok(entry) => match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(name) => problems.push(format!("{}: file name is not UTF-8", dir.join(name).display())),
            },
            Err(e) => problems.push(format!("{}: {e}", dir.display())),
        }
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        rel.push(name);
        // Follows symbolic links, so a linked template or directory works like a real one.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                out.push(Entry::Dir(rel.clone()));
                if rel.len() < DEPTH {
                    read_fs(root, rel, out, problems);
                }
            }
            Ok(_) => {
                let text = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned()));
                out.push(Entry::File(rel.clone(), text));
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
        rel.pop();
    }
}

fn read_embedded(dir: &Dir<'static>, out: &mut Vec<Entry>) {
    let components = |p: &Path| p.iter().map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>();
    let mut entries: Vec<&DirEntry<'static>> = dir.entries().iter().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        match entry {
            DirEntry::Dir(d) => {
                out.push(Entry::Dir(components(d.path())));
                read_embedded(d, out);
            }
            DirEntry::File(f) => {
                let text = f.contents_utf8().map(str::to_owned).ok_or_else(|| "not UTF-8 text".to_owned());
                out.push(Entry::File(components(f.path()), text));
            }
        }
    }
}

/// The parts found in one `<key>/<locale>` directory.
type Sources = BTreeMap<(String, String), BTreeMap<Part, String>>;

/// The `sms.providers.toml` found in one `<key>/<locale>` directory.
type MappingSources = BTreeMap<(String, String), String>;

/// Layout, then compilation, then validation against the fixture; every problem is kept.
fn build(root: &Path, entries: Vec<Entry>, mut problems: Vec<String>) -> Result<Templates, LoadError> {
    let (mut keys, sources, mapping_sources) = layout(root, entries, &mut problems);
    let mut html = registry(handlebars::html_escape);
    let mut plain = registry(handlebars::no_escape);
    compile(root, &sources, &mut keys, &mut html, &mut plain, &mut problems);
    let providers = compile_mappings(root, &mapping_sources, &keys, &mut plain, &mut problems);
    let templates = Templates {
        html,
        plain,
        keys,
        providers,
        root: root.to_path_buf(),
        default_locale: "en".into(),
        sms_segment_limit: Some(super::DEFAULT_SMS_SEGMENT_LIMIT),
    };
    problems.extend(validate(&templates));
    if problems.is_empty() {
        Ok(templates)
    } else {
        problems.sort();
        problems.dedup();
        Err(LoadError { problems })
    }
}

/// A path below `root`, for messages.
fn at(root: &Path, parts: &[&str]) -> String {
    parts.iter().fold(root.to_path_buf(), |p, c| p.join(c)).display().to_string()
}

/// Sorts the tree into keys, locales and parts, reporting whatever does not fit the layout.
fn layout(
    root: &Path,
    entries: Vec<Entry>,
    problems: &mut Vec<String>,
) -> (BTreeMap<String, KeyTemplates>, Sources, MappingSources) {
    let at = |parts: &[&str]| at(root, parts);
    let mut keys: BTreeMap<String, KeyTemplates> = BTreeMap::new();
    let mut sources: Sources = BTreeMap::new();
    let mut mapping_sources: MappingSources = BTreeMap::new();

    for entry in entries {
        let (path, text) = match entry {
            Entry::Dir(path) => (path, None),
            Entry::File(path, text) => (path, Some(text)),
        };
        // Hidden files (editor swap files, .DS_Store, .gitkeep) are not templates.
        if path.iter().any(|c| c.starts_with('.')) {
            continue;
        }
        let parts: Vec<&str> = path.iter().map(String::as_str).collect();
        // Entries come parents first, so a key exists before its locales and fixture.
        match (parts.as_slice(), text) {
            // Files beside the keys (a README) are not part of any template.
            ([_], Some(_)) => {}
            ([key], None) => {
                if valid_key(key) {
                    keys.entry((*key).to_owned()).or_default();
                } else {
                    problems.push(format!("{}: a template key is letters, digits, '-' and '_'", at(&parts)));
                }
            }
            ([key, "fixture.json"], Some(text)) => {
                let Some(k) = keys.get_mut(*key) else {
                    continue;
                };
                match text.map(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string())) {
                    Ok(Ok(Value::Object(map))) => k.fixture = map,
                    Ok(Ok(_)) => problems.push(format!("{}: must be a JSON object", at(&parts))),
                    Ok(Err(e)) | Err(e) => problems.push(format!("{}: {e}", at(&parts))),
                }
            }
            ([_, _], Some(_)) => problems.push(format!(
                "{}: unexpected file (a key holds locale directories and an optional fixture.json)",
                at(&parts)
            )),
            ([key, locale], None) => {
                let Some(k) = keys.get_mut(*key) else {
                    continue;
                };
                if !valid_locale(locale) {
                    problems.push(format!("{}: not a locale tag like en or zh-CN", at(&parts)));
                } else if let Some(other) = k.locales.keys().find(|l| l.eq_ignore_ascii_case(locale)) {
                    problems.push(format!("{}: same locale as {other}", at(&parts)));
                } else {
                    k.locales.insert((*locale).to_owned(), Default::default());
                    sources.entry(((*key).to_owned(), (*locale).to_owned())).or_default();
                }
            }
            ([key, locale, providers::FILE_NAME], Some(text)) => {
                let variant = ((*key).to_owned(), (*locale).to_owned());
                if !sources.contains_key(&variant) {
                    continue;
                }
                match text {
                    Ok(text) => {
                        mapping_sources.insert(variant, text);
                    }
                    Err(e) => problems.push(format!("{}: {e}", at(&parts))),
                }
            }
            ([key, locale, file], Some(text)) => {
                let Some(found) = sources.get_mut(&((*key).to_owned(), (*locale).to_owned())) else {
                    continue;
                };
                match (Part::from_file_name(file), text) {
                    (Some(part), Ok(text)) => {
                        found.insert(part, text);
                    }
                    (Some(_), Err(e)) => problems.push(format!("{}: {e}", at(&parts))),
                    (None, _) => problems.push(format!(
                        "{}: unknown template part (expected {} or {})",
                        at(&parts),
                        Part::ALL.map(Part::file_name).join(", "),
                        providers::FILE_NAME
                    )),
                }
            }
            _ => problems.push(format!("{}: unexpected directory", at(&parts))),
        }
    }

    for (key, k) in &keys {
        if k.locales.is_empty() {
            problems.push(format!("{}: no locale directories", at(&[key])));
        }
    }
    if keys.is_empty() && problems.is_empty() {
        problems.push(format!("{}: no templates found", root.display()));
    }
    (keys, sources, mapping_sources)
}

/// Compiles each complete channel of each variant into its registry, recording which channels
/// each variant has; an incomplete part set or a syntax error is a problem.
fn compile(
    root: &Path,
    sources: &Sources,
    keys: &mut BTreeMap<String, KeyTemplates>,
    html: &mut Handlebars<'static>,
    plain: &mut Handlebars<'static>,
    problems: &mut Vec<String>,
) {
    for ((key, locale), parts) in sources {
        let dir = at(root, &[key, locale]);
        if parts.is_empty() {
            problems.push(format!("{dir}: no templates"));
            continue;
        }
        let channels = keys.get_mut(key).map(|k| k.locales.entry(locale.clone()).or_default());
        let Some(channels) = channels else { continue };
        for channel in ChannelKind::ALL {
            let needed = Part::of(channel);
            let missing: Vec<String> =
                needed.iter().filter(|p| !parts.contains_key(p)).map(|p| p.file_name()).collect();
            if missing.len() == needed.len() {
                continue;
            }
            if !missing.is_empty() {
                problems.push(format!("{dir}: {channel} needs {} too", missing.join(" and ")));
                continue;
            }
            let mut compiled = true;
            for part in needed {
                let registry = if *part == Part::EmailHtml { &mut *html } else { &mut *plain };
                let source = &parts[part];
                if let Err(e) = registry.register_template_string(&template_name(key, locale, *part), source) {
                    let file = at(root, &[key, locale, &part.file_name()]);
                    problems.push(compile_problem(&file, source, &e));
                    compiled = false;
                }
            }
            if compiled {
                channels.insert(channel);
            }
        }
    }
}

/// Parses and compiles each variant's provider mappings into the plain registry. A mapping
/// beside a variant without a (compiled) SMS has nothing to map.
fn compile_mappings(
    root: &Path,
    mapping_sources: &MappingSources,
    keys: &BTreeMap<String, KeyTemplates>,
    plain: &mut Handlebars<'static>,
    problems: &mut Vec<String>,
) -> BTreeMap<(String, String), providers::Mappings> {
    let mut out = BTreeMap::new();
    for ((key, locale), text) in mapping_sources {
        let file = at(root, &[key, locale, providers::FILE_NAME]);
        let has_sms = keys.get(key).and_then(|k| k.locales.get(locale)).is_some_and(|c| c.contains(&ChannelKind::Sms));
        let sms_written = !problems.iter().any(|p| p.starts_with(&at(root, &[key, locale, "sms.hbs"])));
        if !has_sms {
            if sms_written {
                problems.push(format!("{file}: there is no {} to map", Part::Sms.file_name()));
            }
            continue;
        }
        if let Some(mappings) = providers::compile(&file, text, key, locale, plain, problems) {
            out.insert((key.clone(), locale.clone()), mappings);
        }
    }
    out
}

/// A strict registry with our helpers; `escape` is the only difference between the two.
fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut reg = Handlebars::new();
    reg.set_strict_mode(true);
    reg.register_escape_fn(escape);
    super::helpers::register(&mut reg);
    reg
}

/// Renders every compiled variant against its fixture: strict mode then catches any variable the
/// caller does not provide (outside `{{#if}}`, which strict mode does not reach).
fn validate(t: &Templates) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, k) in &t.keys {
        for (locale, channels) in &k.locales {
            let ctx = handlebars::Context::from(fixture::fixture_with(locale, &k.fixture));
            if let Some(mappings) = t.providers.get(&(key.clone(), locale.clone()))
                && let Err((file, problem)) = mappings.render(&t.plain, &ctx)
            {
                problems.push(format!("{file}: {problem}"));
            }
            for part in channels.iter().flat_map(|c| Part::of(*c)) {
                if let Err(e) = t.render_part(key, locale, *part, &ctx) {
                    problems.push(match e {
                        super::RenderError::Failed { file, message } => {
                            format!("{file}: {message}")
                        }
                        other => other.to_string(),
                    });
                }
            }
        }
    }
    problems
}

/// A compile error as `file:line: reason`. Pest reports an unclosed block at the end of the file,
/// listing every grammar rule it could have taken there; the line that opened the block says
/// more, and for other syntax errors the column says more than the rule names.
fn compile_problem(file: &str, source: &str, e: &handlebars::TemplateError) -> String {
    if let Some((line, problem)) = block_problem(source) {
        return format!("{file}:{line}: {problem}");
    }
    match (e.reason(), e.pos()) {
        (TemplateErrorReason::InvalidSyntax(_), Some((line, col))) => {
            format!("{file}:{line}: invalid handlebars syntax at column {col}")
        }
        (reason, Some((line, _))) => format!("{file}:{line}: {reason}"),
        (reason, None) => format!("{file}: {reason}"),
    }
}

/// A block closed before it was opened, or else the first block (`{{#name}}`, `{{^name}}`) left
/// open at the end of `source`: its line and what is wrong. A rough scan, only to place an error
/// Handlebars has already found; comments are skipped.
fn block_problem(source: &str) -> Option<(usize, String)> {
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut rest = source;
    let mut line = 1;
    while let Some(start) = rest.find("{{") {
        line += rest[..start].matches('\n').count();
        let tag = &rest[start + 2..];
        let tag = tag.strip_prefix('~').unwrap_or(tag);
        if tag.starts_with('!') {
            let end = if tag.starts_with("!--") { tag.find("--}}") } else { tag.find("}}") };
            let skipped = end.map_or(tag.len(), |e| e + 2);
            line += tag[..skipped].matches('\n').count();
            rest = &tag[skipped..];
            continue;
        }
        if tag.starts_with("{{") {
            return None; // a raw block: beyond this scan
        }
        match (tag.find("}}"), tag.find("{{")) {
            (None, _) => return Some((line, "{{ is never closed".into())),
            (Some(close), Some(next)) if next < close => {
                return Some((line, "{{ is never closed".into()));
            }
            _ => {}
        }
        let name = |t: &str| {
            let t = t.trim_start_matches(['>', '*']).trim_start();
            t.split(|c: char| c.is_whitespace() || c == '}' || c == '~').next().unwrap_or_default().to_owned()
        };
        if let Some(t) = tag.strip_prefix('#').or_else(|| tag.strip_prefix('^')) {
            let n = name(t);
            if !n.is_empty() {
                open.push((line, n));
            }
        } else if let Some(t) = tag.strip_prefix('/') {
            let n = name(t);
            match open.last() {
                None => return Some((line, format!("{{{{/{n}}}}} closes no block"))),
                Some((_, o)) if *o == n => {
                    open.pop();
                }
                // Mismatched: Handlebars says so itself, at the right place.
                Some(_) => return None,
            }
        }
        rest = tag;
    }
    open.into_iter().next().map(|(line, n)| (line, format!("{{{{#{n}}}}} is never closed")))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A BCP 47 shape, loosely: a 2–8 letter language, then 1–8 character subtags (`zh-Hant-TW`).
fn valid_locale(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let lang = subtags.next().unwrap_or_default();
    (2..=8).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && subtags.all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()))
}
