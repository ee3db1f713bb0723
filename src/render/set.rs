//! The live template set: read by every send, swapped whole on reload (SIGHUP), so a send sees
//! either the old set or the new one, never a mix, and a broken reload keeps the old set.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::{DEFAULT_SMS_SEGMENT_LIMIT, LoadError, Templates};

/// Where templates come from.
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
}

impl TemplateSet {
    /// Loads and validates the set, with the default SMS segment limit; an error names each
    /// broken file.
    pub fn load(source: Source, default_locale: &str) -> Result<TemplateSet, LoadError> {
        Self::load_with(source, default_locale, Some(DEFAULT_SMS_SEGMENT_LIMIT))
    }

    /// Loads and validates the set with an SMS segment limit (`render.sms_segment_limit`;
    /// `None`: no limit). An SMS variant over the limit for its fixture member is a load error;
    /// at send, an SMS over the limit fails to render.
    pub fn load_with(
        source: Source,
        default_locale: &str,
        sms_segment_limit: Option<usize>,
    ) -> Result<TemplateSet, LoadError> {
        let templates = Self::read(&source, default_locale, sms_segment_limit)?;
        Ok(TemplateSet {
            source,
            default_locale: default_locale.to_string(),
            sms_segment_limit,
            current: RwLock::new(Arc::new(templates)),
        })
    }

    fn read(source: &Source, default_locale: &str, limit: Option<usize>) -> Result<Templates, LoadError> {
        let t = match source {
            Source::Builtin => Templates::builtin(),
            Source::Dir(dir) => Templates::load_dir(dir)?,
        };
        let t = t.with_default_locale(default_locale).with_sms_segment_limit(limit);
        let problems = t.sms_segment_problems();
        if problems.is_empty() { Ok(t) } else { Err(LoadError { problems }) }
    }

    pub fn current(&self) -> Arc<Templates> {
        self.current.read().expect("template lock poisoned").clone()
    }

    /// Reads the source again and runs `check` on the fresh set (e.g. that every rule's template
    /// is still there); only when both succeed does the new set replace the old, at once. On any
    /// failure the old set stays and the error says why.
    pub fn reload(&self, check: impl FnOnce(&Templates) -> Result<(), String>) -> Result<(), String> {
        let fresh =
            Self::read(&self.source, &self.default_locale, self.sms_segment_limit).map_err(|e| e.to_string())?;
        check(&fresh)?;
        *self.current.write().expect("template lock poisoned") = Arc::new(fresh);
        Ok(())
    }

    pub fn source(&self) -> &Source {
        &self.source
    }
}
