//! The live template set: read by every send, swapped whole on reload (SIGHUP), so a send sees
//! either the old set or the new one, never a mix, and a broken reload keeps the old set.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::{LoadError, Templates};

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
    current: RwLock<Arc<Templates>>,
}

impl TemplateSet {
    /// Loads and validates the set; an error names each broken file.
    pub fn load(source: Source, default_locale: &str) -> Result<TemplateSet, LoadError> {
        let templates = Self::read(&source, default_locale)?;
        Ok(TemplateSet {
            source,
            default_locale: default_locale.to_string(),
            current: RwLock::new(Arc::new(templates)),
        })
    }

    fn read(source: &Source, default_locale: &str) -> Result<Templates, LoadError> {
        let t = match source {
            Source::Builtin => Templates::builtin(),
            Source::Dir(dir) => Templates::load_dir(dir)?,
        };
        Ok(t.with_default_locale(default_locale))
    }

    pub fn current(&self) -> Arc<Templates> {
        self.current.read().expect("template lock poisoned").clone()
    }

    /// Reads the source again and runs `check` on the fresh set (e.g. that every rule's template
    /// is still there); only when both succeed does the new set replace the old, at once. On any
    /// failure the old set stays and the error says why.
    pub fn reload(&self, check: impl FnOnce(&Templates) -> Result<(), String>) -> Result<(), String> {
        let fresh = Self::read(&self.source, &self.default_locale).map_err(|e| e.to_string())?;
        check(&fresh)?;
        *self.current.write().expect("template lock poisoned") = Arc::new(fresh);
        Ok(())
    }

    pub fn source(&self) -> &Source {
        &self.source
    }
}
