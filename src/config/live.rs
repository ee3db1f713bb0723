//! The settings in force, swappable while the daemon runs: rules and journeys defined through
//! the API replace the snapshot, and every reader takes the current one (`Live::get`). A reader
//! keeps the `Arc` it took for the whole of its batch or request, so one batch never sees two
//! versions of a rule.

use std::sync::{Arc, RwLock};

use super::Settings;

/// A shared, replaceable `Settings`.
#[derive(Clone)]
pub struct Live(Arc<RwLock<Arc<Settings>>>);

impl Live {
    pub fn new(settings: Settings) -> Live {
        Live(Arc::new(RwLock::new(Arc::new(settings))))
    }

    /// The settings in force now.
    pub fn get(&self) -> Arc<Settings> {
        // A writer only swaps an `Arc`; a poisoned lock still holds a whole value.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `settings` in force for every reader that comes after.
    pub fn set(&self, settings: Settings) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }
}
