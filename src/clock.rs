//! The clock the daemon reads "now" from. Production uses the system clock; tests inject a
//! [`ManualClock`] and move it by hand, so no test ever sleeps on the wall clock.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// Where the daemon gets the current instant.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, to: Timestamp) {
        *self.0.lock().expect("clock poisoned") = to;
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.0.lock().expect("clock poisoned");
        *now = now.plus(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock poisoned")
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Saturating arithmetic on instants with exact durations (jiff's own may fail on calendar units,
/// which an exact duration never has).
pub trait InstantExt {
    fn plus(self, d: SignedDuration) -> Timestamp;
    fn minus(self, d: SignedDuration) -> Timestamp;
}

impl InstantExt for Timestamp {
    fn plus(self, d: SignedDuration) -> Timestamp {
        self.checked_add(d).unwrap_or(if d.is_negative() { Timestamp::MIN } else { Timestamp::MAX })
    }

    fn minus(self, d: SignedDuration) -> Timestamp {
        self.checked_sub(d).unwrap_or(if d.is_negative() { Timestamp::MAX } else { Timestamp::MIN })
    }
}
