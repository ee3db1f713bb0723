//! Rendering: Handlebars templates, compiled once, validated against a fixture member at load,
//! chosen by channel and the member's locale with fallback.

pub mod context;
pub mod set;

pub use set::{Source, TemplateSet};

use std::path::Path;

use serde_json::Value;

use crate::channels::{ChannelKind, Rendered};

/// A compiled, validated template set. Cheap to share; swapped whole on reload.
#[derive(Debug)]
pub struct Templates {}

/// Everything wrong with a template directory, each problem naming its file (and line).
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct LoadError {
    pub problems: Vec<String>,
}

/// Why one message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no template {key:?} for channel {channel}")]
    Missing { key: String, channel: ChannelKind },
    #[error("template {file}: {message}")]
    Failed { file: String, message: String },
}

impl Templates {
    pub fn load_dir(_dir: &Path) -> Result<Templates, LoadError> {
        Err(LoadError { problems: vec!["not built yet".into()] })
    }

    pub fn builtin() -> Templates {
        Templates {}
    }

    pub fn render(&self, key: &str, channel: ChannelKind, _ctx: &Value) -> Result<Rendered, RenderError> {
        Err(RenderError::Missing { key: key.into(), channel })
    }
}

impl Templates {
    pub fn with_default_locale(self, _locale: &str) -> Self {
        self
    }
}

impl Templates {
    pub fn has(&self, _key: &str, _channel: ChannelKind) -> bool {
        false
    }

    pub fn keys(&self) -> Vec<String> {
        Vec::new()
    }
}
