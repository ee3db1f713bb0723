//! What every list endpoint shares: its query string read strictly (an unknown or repeated
//! parameter is an error naming it), and keyset pagination. A list answers
//! `{"items": [...], "next": "<cursor>"|null}`; `limit` is 1 to 1000 (100 by default) and
//! `cursor` is the `next` of the previous page, opaque to callers (it carries the last row id).

use std::collections::BTreeMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::ApiError;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// A request's query parameters, taken one by one; what is left over is an error.
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses a raw query string. A parameter given twice is an error naming it; an empty
    /// value counts as absent.
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(ApiError::bad(Some(&k), "given more than once"));
            }
        }
        map.retain(|_, v| !v.trim().is_empty());
        Ok(Params(map))
    }

    /// Takes a parameter's value, trimmed.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name).map(|v| v.trim().to_string())
    }

    /// Takes and parses a parameter; a value `parse` refuses is an error naming it.
    pub fn take_with<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.take(name).map(|v| parse(&v).map_err(|problem| ApiError::bad(Some(name), problem))).transpose()
    }

    /// Takes an RFC 3339 instant (`2026-03-10T01:30:00Z`).
    pub fn take_instant(&mut self, name: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
        self.take_with(name, |v| {
            v.parse::<jiff::Timestamp>()
                .map_err(|_| format!("{v:?} is not an RFC 3339 instant such as 2026-03-10T01:30:00Z"))
        })
    }

    /// Takes `limit` and `cursor`.
    pub fn page(&mut self) -> Result<PageRequest, ApiError> {
        let limit = self
            .take_with("limit", |v| match v.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(format!("{v:?} is not a number from 1 to {MAX_LIMIT}")),
            })?
            .unwrap_or(DEFAULT_LIMIT);
        let cursor = self
            .take_with("cursor", |v| decode_cursor(v).ok_or_else(|| format!("{v:?} is not a cursor this API gave")))?;
        Ok(PageRequest { limit, cursor })
    }

    /// Fails on the first parameter nobody took (a misspelt filter must not silently match
    /// everything).
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.into_keys().next() {
            Some(name) => Err(ApiError::bad(Some(&name), "unknown parameter")),
            None => Ok(()),
        }
    }
}

/// The page asked for: how many items, after which row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    /// The row id the previous page ended at.
    pub cursor: Option<i64>,
}

impl PageRequest {
    /// How many rows to read: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> u32 {
        self.limit + 1
    }
}

/// One page of a list, as every list endpoint answers it.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// The page from rows read with [`PageRequest::fetch`], in keyset order; `key` is a row's id.
    pub fn of(mut rows: Vec<T>, request: PageRequest, key: impl Fn(&T) -> i64) -> Page<T> {
        let more = rows.len() > request.limit as usize;
        rows.truncate(request.limit as usize);
        let next = if more { rows.last().map(|r| encode_cursor(key(r))) } else { None };
        Page { items: rows, next }
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

const CURSOR_PREFIX: &str = "k1:";

pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

pub fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(CURSOR_PREFIX)?.parse().ok().filter(|id: &i64| *id >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str) -> Result<PageRequest, Option<String>> {
        let mut p = Params::parse(Some(query)).map_err(|e| e.field)?;
        let page = p.page().map_err(|e| e.field)?;
        p.finish().map_err(|e| e.field)?;
        Ok(page)
    }

    #[test]
    fn limits_and_cursors_are_checked_and_named() {
        assert_eq!(page(""), Ok(PageRequest { limit: 100, cursor: None }));
        assert_eq!(page("limit=1"), Ok(PageRequest { limit: 1, cursor: None }));
        assert_eq!(page("limit=1000"), Ok(PageRequest { limit: 1000, cursor: None }));
        let cursor = encode_cursor(42);
        assert_eq!(page(&format!("cursor={cursor}")), Ok(PageRequest { limit: 100, cursor: Some(42) }));
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten", "limit=1&limit=2"] {
            assert_eq!(page(bad), Err(Some("limit".into())), "{bad}");
        }
        for bad in ["cursor=42", "cursor=%21%21", "cursor=azE6eA"] {
            assert_eq!(page(bad), Err(Some("cursor".into())), "{bad}");
        }
        assert_eq!(page("limt=5"), Err(Some("limt".into())));
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let request = PageRequest { limit: 2, cursor: None };
        let full = Page::of(vec![1, 2, 3], request, |r| *r);
        assert_eq!((full.items.as_slice(), full.next.as_deref().and_then(decode_cursor)), ([1, 2].as_slice(), Some(2)));
        let last = Page::of(vec![5, 6], request, |r| *r);
        assert_eq!((last.items.as_slice(), last.next), ([5, 6].as_slice(), None));
    }
}
