//! `tidings import`: members from CSV (a header row) or JSON Lines. Every bad row is reported
//! with its line number and field while the good rows go in; importing the same file twice
//! changes nothing the second time.

use super::consent::{self, Given, both};
use crate::store::consent::ACTOR_IMPORT;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use super::MemberInput;
use super::validate::{FieldError, member_from_json, member_from_strings};
use crate::store::{Store, StoreError, UpsertCounts};

/// The file formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// Guesses from the file name: `.csv` is CSV, `.jsonl`/`.ndjson`/`.json` JSON Lines.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub line: u64,
    pub field: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: {}: {}", self.line, field, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub counts: UpsertCounts,
    pub errors: Vec<RowError>,
}

const CHUNK: usize = 1000;

/// Parses rows; good ones are handed to `sink` in chunks, bad ones collected.
fn parse<R: Read>(
    reader: R,
    format: Format,
    mut sink: impl FnMut(Vec<(MemberInput, Given)>) -> Result<(), StoreError>,
) -> Result<Vec<RowError>, ImportError> {
    let mut errors = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut seen = std::collections::HashMap::new();
    let mut accept = |line: u64,
                      row: Result<(MemberInput, Given), Vec<FieldError>>,
                      chunk: &mut Vec<(MemberInput, Given)>,
                      errors: &mut Vec<RowError>| match row {
        // The first row for a member is the one imported; a repeat is a mistake in the file,
        // reported and left out, so importing the file again still changes nothing.
        Ok((m, given)) => match seen.get(&m.external_id) {
            Some(first) => errors.push(RowError {
                line,
                field: Some("external_id".into()),
                problem: format!("{:?} already appeared on line {first}; this row was not imported", m.external_id),
            }),
            None => {
                seen.insert(m.external_id.clone(), line);
                chunk.push((m, given));
            }
        },
        Err(fields) => {
            errors.extend(fields.into_iter().map(|e| RowError { line, field: Some(e.field), problem: e.problem }))
        }
    };
    match format {
        Format::Csv => {
            let mut csv = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(reader);
            let headers = csv.headers().map_err(|e| ImportError::Header(e.to_string()))?.clone();
            if !headers.iter().any(|h| h == "external_id") {
                return Err(ImportError::Header("the header row has no external_id column".into()));
            }
            for record in csv.records() {
                match record {
                    Ok(rec) => {
                        let line = rec.position().map_or(0, |p| p.line());
                        let row = both(
                            member_from_strings(headers.iter().zip(rec.iter())),
                            consent::from_columns(headers.iter().zip(rec.iter())),
                        );
                        accept(line, row, &mut chunk, &mut errors);
                    }
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        // Without the error's own position, note it against the last good line.
                        let problem = match e.kind() {
                            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                                format!("has {len} columns, the header has {expected_len}")
                            }
                            _ => e.to_string(),
                        };
                        errors.push(RowError { line, field: None, problem });
                    }
                }
                if chunk.len() >= CHUNK {
                    sink(std::mem::take(&mut chunk))?;
                }
            }
        }
        Format::Jsonl => {
            for (i, line) in BufReader::new(reader).lines().enumerate() {
                let line_no = i as u64 + 1;
                let line = line.map_err(ImportError::Io)?;
                // A byte-order mark some editors write at the start of the file is not content.
                let line = if i == 0 { line.trim_start_matches('\u{feff}').to_string() } else { line };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(obj)) => {
                        accept(line_no, both(member_from_json(&obj), consent::from_json(&obj)), &mut chunk, &mut errors)
                    }
                    Ok(_) => errors.push(RowError { line: line_no, field: None, problem: "not a JSON object".into() }),
                    Err(e) => errors.push(RowError { line: line_no, field: None, problem: format!("not JSON: {e}") }),
                }
                if chunk.len() >= CHUNK {
                    sink(std::mem::take(&mut chunk))?;
                }
            }
        }
    }
    if !chunk.is_empty() {
        sink(chunk)?;
    }
    Ok(errors)
}

/// Why an import stopped as a whole (row problems do not stop it).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("header: {0}")]
    Header(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Imports a file into the store.
pub async fn import_file(
    store: &Store,
    path: &Path,
    format: Format,
    now: Timestamp,
) -> Result<ImportReport, ImportError> {
    let file = std::fs::File::open(path)?;
    import_reader(store, file, format, now).await
}

/// Imports from any reader. Rows are parsed on a blocking thread and written chunk by chunk.
pub async fn import_reader<R: Read + Send + 'static>(
    store: &Store,
    reader: R,
    format: Format,
    now: Timestamp,
) -> Result<ImportReport, ImportError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(MemberInput, Given)>>(4);
    let parser = tokio::task::spawn_blocking(move || {
        parse(reader, format, |chunk| {
            // The receiver only goes away when writing failed; that error is reported below.
            let _ = tx.blocking_send(chunk);
            Ok(())
        })
    });
    let mut counts = UpsertCounts::default();
    let mut write_error = None;
    while let Some(chunk) = rx.recv().await {
        if write_error.is_some() {
            continue;
        }
        let changes: Vec<_> = chunk.iter().flat_map(|(m, given)| consent::changes(&m.external_id, given)).collect();
        let members: Vec<MemberInput> = chunk.into_iter().map(|(m, _)| m).collect();
        match store.upsert_members(&members, now).await {
            Ok(c) => {
                counts.inserted += c.inserted;
                counts.updated += c.updated;
                counts.unchanged += c.unchanged;
            }
            Err(e) => write_error = Some(e),
        }
        // Consent after its members exist; an import's grant never overrides a member's own
        // revocation (see `store::consent`).
        if write_error.is_none()
            && !changes.is_empty()
            && let Err(e) = store.change_consent(&changes, ACTOR_IMPORT, now).await
        {
            write_error = Some(e);
        }
    }
    let errors = parser.await.map_err(|e| ImportError::Io(std::io::Error::other(e)))??;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    Ok(ImportReport { counts, errors })
}
