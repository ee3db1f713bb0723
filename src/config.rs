//! Configuration: one TOML file plus `TIDINGS_…` environment overrides, checked in two stages
//! (parse, then meaning) with errors that name the key.

use std::fmt;

use serde::Deserialize;

/// A secret: never printed, never logged.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One thing wrong with the configuration, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key, e.g. `twilio.auth_token` or `rules[2].send_at`.
    pub key: String,
    pub problem: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigProblem { key: key.into(), problem: problem.into() }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Resolves a secret given inline (`key`) or as a file (`key_file`); the file's trailing newline
/// is dropped. `key` is the dotted name used in the error, e.g. `twilio.auth_token`.
pub fn resolve_secret(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
    key: &str,
) -> Result<Secret, ConfigProblem> {
    match (inline, file) {
        (Some(s), _) if !s.expose().is_empty() => Ok(s.clone()),
        (_, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                if text.is_empty() {
                    Err(ConfigProblem::new(format!("{key}_file"), format!("{} is empty", path.display())))
                } else {
                    Ok(Secret(text))
                }
            }
            Err(e) => Err(ConfigProblem::new(format!("{key}_file"), format!("cannot read {}: {e}", path.display()))),
        },
        _ => {
            let env = format!("TIDINGS_{}", key.replace('.', "_").to_uppercase());
            Err(ConfigProblem::new(key, format!("missing secret: set {key}, {key}_file or {env}")))
        }
    }
}
