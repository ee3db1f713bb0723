//! The live template set: read by every send, swapped whole on reload, so a send sees either the
//! old set or the new one, never a mix, and a broken reload keeps the old set.
//!
//! The configured source (`[templates] dir`, or the set built into the binary) is read at start
//! to check it and, on a database with no templates yet, to seed it. From then on the database's
//! published versions are what sends: the app builds a set from them with [`TemplateSet::build`]
//! and swaps it in with [`TemplateSet::swap`], remembering the store's publish counter so that
//! an unchanged database costs one small query to check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::content::Content;
use super::{DEFAULT_SMS_SEGMENT_LIMIT, LoadError, Templates};

/// Where the configured templates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The set shipped inside the binary.
    Builtin,
    Dir(PathBuf),
}

/// The current template set.
#[derive(Debug)]
pub struct TemplateSet {
    source: Source,
    default_locale: String,
    sms_segment_limit: Option<usize>,
    current: RwLock<Arc<Templates>>,
    /// The store's publish counter the current set was built at; `None` before the first
    /// build from the store.
    mark: Mutex<Option<i64>>,
}

impl TemplateSet {
    /// Loads and validates the set, with the default SMS segment limit; an error names each
    /// broken file.
    pub fn load(source: Source, default_locale: &str) -> Result<TemplateSet, LoadError> {
        Self::load_with(source, default_locale, Some(DEFAULT_SMS_SEGMENT_LIMIT))
    }

    /// Loads and validates the configured set with an SMS segment limit
    /// (`templates.sms_segment_limit`; `None`: no limit). An SMS variant over the limit for its
    /// fixture member is a load error; at send, an SMS over the limit fails to render.
    pub fn load_with(
        source: Source,
        default_locale: &str,
        sms_segment_limit: Option<usize>,
    ) -> Result<TemplateSet, LoadError> {
        let t = match &source {
            Source::Builtin => Templates::builtin(),
            Source::Dir(dir) => Templates::load_dir(dir)?,
        };
        let t = t.with_default_locale(default_locale).with_sms_segment_limit(sms_segment_limit);
        let problems = t.sms_segment_problems();
        if !problems.is_empty() {
            return Err(LoadError { problems });
        }
        Ok(TemplateSet {
            source,
            default_locale: default_locale.to_string(),
            sms_segment_limit,
            current: RwLock::new(Arc::new(t)),
            mark: Mutex::new(None),
        })
    }

    /// The configured source's contents, by key: what seeds an empty database.
    pub fn configured_contents(&self) -> Result<BTreeMap<String, Content>, LoadError> {
        match &self.source {
            Source::Builtin => Templates::contents_of(None),
            Source::Dir(dir) => Templates::contents_of(Some(dir)),
        }
    }

    /// Compiles and validates stored contents with this set's default locale and segment limit.
    /// An SMS over the limit for its fixture is not refused here: it was a warning at publish,
    /// and such a message still fails to render at send.
    pub fn build(&self, root: &Path, contents: &BTreeMap<String, Content>) -> Result<Templates, LoadError> {
        Ok(Templates::from_contents(root, contents)?
            .with_default_locale(&self.default_locale)
            .with_sms_segment_limit(self.sms_segment_limit))
    }

    pub fn current(&self) -> Arc<Templates> {
        self.current.read().expect("template lock poisoned").clone()
    }

    /// Replaces the set at once, remembering the store's publish counter it was built at.
    pub fn swap(&self, fresh: Templates, mark: i64) {
        *self.current.write().expect("template lock poisoned") = Arc::new(fresh);
        *self.mark.lock().expect("template mark poisoned") = Some(mark);
    }

    /// The store's publish counter the current set was built at.
    pub fn mark(&self) -> Option<i64> {
        *self.mark.lock().expect("template mark poisoned")
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn sms_segment_limit(&self) -> Option<usize> {
        self.sms_segment_limit
    }
}
