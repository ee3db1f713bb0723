//! The store: every SQL statement of the daemon lives here (and in `migrations/`). One contract,
//! [`Store`], over a closed enum of two backends, each in its own module with its own SQL text:
//! SQLite (`sqlite/`: embedded, one daemon per file, WAL, one writer) and PostgreSQL
//! (`postgres/`: several daemons may share it; claims skip rows another one has locked).
//! The `database.url` scheme picks the backend.
//!
//! Instants are epoch milliseconds, civil dates `YYYY-MM-DD` text in both; conversion happens
//! here. No method does network I/O other than to the database, so no transaction is ever held
//! across a provider call.

mod postgres;
mod sqlite;
mod types;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::channels::{ChannelKind, Platform, PushDevice, Receipt};
use crate::members::{EventInput, Member, MemberInput};
use crate::plan::NewMessage;

pub use types::{
    Claimed, EventCounts, Finalize, HistoryEntry, HistoryRow, MessageFilter, MessageRow, ModelRecord, Previous, State,
    Suppression, UpsertCounts, ValueRow,
};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database schema is not up to date (pending: {0}); run `tidings migrate`")]
    NotMigrated(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// `privacy.hash_key`: erased members' suppressed addresses are kept under it.
    hash_key: Option<crate::rights::HashKey>,
    /// What built-in events the member writes record (tier order, purchase kinds).
    builtin: std::sync::Arc<crate::members::builtin::BuiltinEvents>,
}

/// The backends: a closed set, chosen by the URL's scheme.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Calls the same method on whichever backend this store is.
macro_rules! on_backend {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(s) => s.$method($($arg),*).await,
            Backend::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

mod rights;
pub use rights::{
    ErasureReport, ExportDevice, ExportEvent, ExportMessage, ExportOptOut, ExportSuppression, MEMBER_TABLES,
    MemberExport,
};
mod caps;
pub use caps::{Defer, Recent};
mod entry;
pub use entry::{EventQuery, SentMessage};
mod experiments;

pub use experiments::ReportQuery;
mod journeys;
pub use journeys::{CouponPool, ExitCounts, JourneyExit, JourneyRun, NewRun};
pub mod auth;
pub mod consent;
pub mod definitions;
pub mod instances;
mod stats;
pub use definitions::{DefinitionKind, DefinitionWrite, DefinitionWritten, StoredDefinition};
pub use stats::{Backlog, DayCount};
pub mod search;
pub use search::{Device, MemberSearch, MessageSearch, OneMove};
pub mod templates;

impl Store {
    /// Opens the database at `url`, creating it if missing: `sqlite://tidings.db` (a file) or
    /// `postgres://user@host/db` (the database, if the user may create it).
    pub async fn open(url: &str) -> Result<Store> {
        Self::connect(url, true).await
    }

    /// Opens an existing database whose schema is up to date, creating and migrating nothing:
    /// for commands that only read (`preview`, `forecast`) beside a running daemon.
    pub async fn open_existing(url: &str) -> Result<Store> {
        let store = Self::connect(url, false).await?;
        let pending: Vec<String> = store
            .migration_status()
            .await?
            .into_iter()
            .filter(|(_, _, applied)| !applied)
            .map(|(v, d, _)| format!("{v} {d}"))
            .collect();
        if !pending.is_empty() {
            return Err(StoreError::NotMigrated(pending.join(", ")));
        }
        Ok(store)
    }

    async fn connect(url: &str, create: bool) -> Result<Store> {
        let backend = if is_postgres_url(url) {
            Backend::Postgres(postgres::PgStore::connect(url, create).await?)
        } else {
            Backend::Sqlite(sqlite::SqliteStore::connect(url, create).await?)
        };
        Ok(Store { backend, hash_key: None, builtin: Default::default() })
    }

    /// Which backend this is: `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Brings the schema up to date; safe to run at every start (on PostgreSQL the migrator
    /// holds an advisory lock, so instances starting together migrate once).
    pub async fn migrate(&self) -> Result<()> {
        on_backend!(self.migrate())
    }

    /// The migrations this build knows and whether each is applied.
    pub async fn migration_status(&self) -> Result<Vec<(i64, String, bool)>> {
        on_backend!(self.migration_status())
    }

    /// Refreshes the planner's statistics on the members table, after a bulk import: without them
    /// (a table just filled) the evaluator's candidate reads can take a plan twice as slow.
    pub async fn analyze_members(&self) -> Result<()> {
        on_backend!(self.analyze_members())
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        on_backend!(self.ping())
    }

    pub async fn close(&self) {
        on_backend!(self.close())
    }

    /// Where evaluation of a rule stopped (`evaluated_until`) and the member change counter it
    /// had seen.
    pub async fn watermark(&self, rule_id: &str) -> Result<Option<(Timestamp, i64)>> {
        on_backend!(self.watermark(rule_id))
    }

    pub async fn set_watermark(
        &self,
        rule_id: &str,
        until: Timestamp,
        seen_changes: i64,
        now: Timestamp,
    ) -> Result<()> {
        on_backend!(self.set_watermark(rule_id, until, seen_changes, now))
    }

    /// The member change counter as committed now.
    pub async fn member_changes(&self) -> Result<i64> {
        on_backend!(self.member_changes())
    }

    /// Inserts or updates members by external id, in one transaction. A row identical to the
    /// stored one is left alone (its `updated_at` does not move), so re-importing changes nothing.
    /// Set-based: two statements per run of rows, where a run ends before an id repeats (so a
    /// later row for the same member sees, and updates, the earlier one). Records the built-in
    /// events (`member.joined`, tier changes) in the same transaction.
    pub async fn upsert_members(&self, rows: &[MemberInput], now: Timestamp) -> Result<UpsertCounts> {
        on_backend!(self.upsert_members(rows, now, &self.builtin))
    }

    /// Records events and moves each member's `last_activity_at` forward (never back). Each event
    /// is stamped with the member change counter of its transaction (event rules read by it).
    pub async fn record_events(&self, events: &[EventInput], now: Timestamp) -> Result<EventCounts> {
        on_backend!(self.record_events(events, now, &self.builtin))
    }

    pub async fn member_by_external_id(&self, external_id: &str) -> Result<Option<Member>> {
        on_backend!(self.member_by_external_id(external_id))
    }

    /// Members with id greater than `after`, in id order: the evaluator's keyset pagination.
    /// With `value`, each with its `member_value` (a join the scan skips when no rule needs it).
    pub async fn members_after(&self, after: i64, limit: u32, value: bool) -> Result<Vec<Member>> {
        on_backend!(self.members_after(after, limit, value))
    }

    /// Members one narrowing source selects (see `triggers::narrow`), after the cursor
    /// `(key, id)`, in the source's key order then id; the evaluator's candidate reads.
    pub async fn members_where(
        &self,
        source: &crate::triggers::narrow::Source,
        after: (i64, i64),
        limit: u32,
        value: bool,
    ) -> Result<Vec<Member>> {
        on_backend!(self.members_where(source, after, limit, value))
    }

    /// Members by row id (for rendering a claimed batch).
    pub async fn members_by_ids(&self, ids: &[i64]) -> Result<Vec<Member>> {
        on_backend!(self.members_by_ids(ids))
    }

    pub async fn member_count(&self) -> Result<i64> {
        on_backend!(self.member_count())
    }

    /// A batch of members after `after` (keyset, in id order) with their purchase history: events
    /// of the `kinds` counted as purchases (days with one, first and last, total amount). Days
    /// are counted at `day_offset_ms` from UTC (the programme's zone).
    pub async fn purchase_histories(
        &self,
        kinds: &[String],
        after: i64,
        limit: u32,
        day_offset_ms: i64,
    ) -> Result<Vec<HistoryRow>> {
        on_backend!(self.purchase_histories(kinds, after, limit, day_offset_ms))
    }

    /// Writes members' value rows in one transaction; the `changed` members count as changed for
    /// the evaluator (their P(alive) crossed a churn rule's threshold).
    pub async fn write_member_values(&self, rows: &[ValueRow], changed: &[i64]) -> Result<()> {
        on_backend!(self.write_member_values(rows, changed))
    }

    /// Records a model fit (accepted or not); returns its id.
    pub async fn record_model(&self, m: &ModelRecord) -> Result<i64> {
        on_backend!(self.record_model(m))
    }

    /// The latest fits of `kind`, newest first; with `accepted_only`, the first is the current model.
    pub async fn models(&self, kind: &str, accepted_only: bool, limit: u32) -> Result<Vec<ModelRecord>> {
        on_backend!(self.models(kind, accepted_only, limit))
    }

    /// How many members the last refresh put in each segment.
    pub async fn segment_counts(&self) -> Result<Vec<(String, i64)>> {
        on_backend!(self.segment_counts())
    }

    /// How many members have a P(alive) below `below`.
    pub async fn count_below(&self, below: f64) -> Result<i64> {
        on_backend!(self.count_below(below))
    }

    /// Inserts planned messages; one whose dedupe key exists is ignored. Returns how many were new.
    /// One statement for the rows and one for their history, whatever the batch's size.
    pub async fn enqueue(&self, msgs: &[NewMessage], now: Timestamp) -> Result<u64> {
        on_backend!(self.enqueue(msgs, now))
    }

    /// Registers a push device for the member with this external id: `None` when there is no
    /// such member, else whether the device is new to them. A token registered again moves to
    /// the member who registered it last, with its new keys.
    pub async fn add_push_device(&self, external_id: &str, d: &PushDevice, now: Timestamp) -> Result<Option<bool>> {
        on_backend!(self.add_push_device(external_id, d, now))
    }

    /// Forgets a device (of the given member only, when one is named). Returns how many went.
    pub async fn remove_push_device(&self, external_id: Option<&str>, platform: Platform, token: &str) -> Result<u64> {
        on_backend!(self.remove_push_device(external_id, platform, token))
    }

    /// The devices of these members, oldest registration first.
    pub async fn push_devices(&self, member_ids: &[i64]) -> Result<Vec<(i64, PushDevice)>> {
        on_backend!(self.push_devices(member_ids))
    }

    /// Suppresses addresses (a push address is a device token: the device is forgotten).
    /// An address already suppressed keeps its first reason. Returns how many are new.
    pub async fn suppress(&self, entries: &[Suppression], now: Timestamp) -> Result<u64> {
        on_backend!(self.suppress(entries, now))
    }

    /// Lifts a suppression (an operator's decision), and the address's hashed entry an erasure
    /// left, if any. Returns how many went.
    pub async fn unsuppress(&self, channel: ChannelKind, address: &str) -> Result<u64> {
        let mut lifted = on_backend!(self.unsuppress(channel, address))?;
        if let Some(key) = &self.hash_key {
            let hashed = key.address(channel, address);
            lifted += on_backend!(self.unsuppress(channel, &hashed))?;
        }
        Ok(lifted)
    }

    /// Which of these addresses are suppressed, as they are or (with a hash key) as an erased
    /// member's hashed address.
    pub async fn suppressed(
        &self,
        addresses: &[(ChannelKind, String)],
    ) -> Result<std::collections::HashSet<(ChannelKind, String)>> {
        self.suppressed_plain_or_hashed(addresses).await
    }

    /// The most recent suppressions with when they were made.
    pub async fn suppressions(&self, limit: u32) -> Result<Vec<(Suppression, Timestamp)>> {
        on_backend!(self.suppressions(limit))
    }

    /// Applies delivery receipts to the messages they name (by provider and provider id):
    /// `delivered` or `undelivered` with the provider's code. A receipt for a message the store
    /// does not know (or not yet sent) is ignored. Returns how many messages moved.
    pub async fn record_receipts(&self, receipts: &[Receipt], now: Timestamp) -> Result<u64> {
        on_backend!(self.record_receipts(receipts, now))
    }

    /// Settles what expired leases and deadlines left behind, then claims up to `limit` due
    /// messages for `owner` until `lease_until`, in `run_at` order.
    ///
    /// - claimed but never handed to a provider, lease expired: back to scheduled (safe to send);
    /// - sending when the lease expired: ambiguous (it may have gone out; never resent blindly);
    /// - scheduled past its deadline: skipped as late.
    pub async fn claim(&self, owner: &str, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Claimed>> {
        on_backend!(self.claim(owner, now, lease_until, limit))
    }

    /// Marks claimed messages as handed to their provider, storing what was rendered. Fenced:
    /// only messages this owner still holds at this attempt move; their ids are returned, and
    /// only those may be sent.
    /// The channel is the one the message goes out on (a fallback rule may pick another than the
    /// first). A message whose member has revoked consent on that channel for its purpose is
    /// not moved (see [`Store::mark_sending_consented`] for the whole policy).
    pub async fn mark_sending(
        &self,
        owner: &str,
        batch: &[(i64, u32, ChannelKind, String)],
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        let policy = crate::plan::consent::ConsentPolicy::UNLESS_REVOKED;
        on_backend!(self.mark_sending(owner, batch, policy, now))
    }

    /// Records how attempts ended. Fenced on lease owner and attempt: a worker whose lease was
    /// taken over cannot overwrite the newer result. Returns how many were applied.
    pub async fn finalize(&self, owner: &str, results: &[(i64, u32, Finalize)], now: Timestamp) -> Result<u64> {
        on_backend!(self.finalize(owner, results, now))
    }

    /// An operator's decision to send again: matching `dead`, `failed` or `ambiguous` messages are
    /// scheduled now, with a fresh set of attempts and no deadline. Returns how many.
    pub async fn retry_messages(&self, f: &MessageFilter, now: Timestamp, why: &str) -> Result<u64> {
        on_backend!(self.retry_messages(f, now, why))
    }

    /// An operator's decision not to send: matching `scheduled` messages are skipped.
    pub async fn cancel_messages(&self, f: &MessageFilter, now: Timestamp) -> Result<u64> {
        on_backend!(self.cancel_messages(f, now))
    }

    /// Hands claimed messages back unsent (a worker stopping mid-batch): they are scheduled again
    /// at once rather than waiting for the lease to expire.
    pub async fn release(&self, owner: &str, ids: &[i64], now: Timestamp) -> Result<u64> {
        on_backend!(self.release(owner, ids, now))
    }

    /// Extends this owner's lease on messages it still holds.
    pub async fn renew_lease(&self, owner: &str, ids: &[i64], until: Timestamp) -> Result<u64> {
        on_backend!(self.renew_lease(owner, ids, until))
    }

    /// Settles expired leases and deadlines without claiming (housekeeping).
    pub async fn settle(&self, now: Timestamp) -> Result<()> {
        on_backend!(self.settle(now))
    }

    /// The earliest `run_at` of a scheduled message, for an idle worker to wait until.
    pub async fn next_due(&self) -> Result<Option<Timestamp>> {
        on_backend!(self.next_due())
    }

    /// How many messages are in each state.
    pub async fn count_by_state(&self) -> Result<BTreeMap<String, i64>> {
        on_backend!(self.count_by_state())
    }

    /// Messages matching the filter, newest first.
    pub async fn messages(&self, f: &MessageFilter) -> Result<Vec<MessageRow>> {
        on_backend!(self.messages(f))
    }

    /// Every state change of one message, oldest first.
    pub async fn history(&self, message_id: i64) -> Result<Vec<HistoryEntry>> {
        on_backend!(self.history(message_id))
    }
}

/// The right to evaluate: on PostgreSQL a session advisory lock held by one instance at a time
/// (a second instance's tick finds it taken and skips that window's evaluation); on SQLite, with
/// one daemon per file, always granted.
#[derive(Debug)]
pub struct EvaluatorLock(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>);

impl Store {
    /// Takes the evaluator lock, or `None` when another instance is evaluating.
    pub async fn try_evaluator_lock(&self) -> Result<Option<EvaluatorLock>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(Some(EvaluatorLock(None))),
            Backend::Postgres(p) => Ok(p.try_evaluator_lock().await?.map(|c| EvaluatorLock(Some(c)))),
        }
    }

    /// Gives the evaluator lock back. Dropped instead (an error path), its session closes, which
    /// releases it too.
    pub async fn release_evaluator_lock(&self, lock: EvaluatorLock) {
        if let (Backend::Postgres(p), Some(conn)) = (&self.backend, lock.0) {
            p.release_evaluator_lock(conn).await;
        }
    }

    /// On PostgreSQL, wakes `wake` whenever any instance schedules messages (LISTEN/NOTIFY), until
    /// `stop`; `None` on SQLite, where the one daemon wakes its own worker.
    pub fn listen_due(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(p.listen_due(wake, stop)),
        }
    }
}

/// Held by a running daemon for its whole life: SQLite serves one daemon per database file.
#[derive(Debug)]
pub struct DaemonLock {
    _file: std::fs::File,
}

/// Takes the database's daemon lock (`<file>.lock`, an OS file lock released when the process
/// dies, however it dies), or says which process holds it. SQLite only: PostgreSQL serves
/// several instances, so there is nothing to take.
pub fn lock_for_daemon(url: &str) -> Result<Option<DaemonLock>, String> {
    if is_postgres_url(url) {
        return Ok(None);
    }
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') {
        return Ok(None); // in memory: nothing to share
    }
    let lock_path = format!("{path}.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {lock_path}: {e}"))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            let _ = file.set_len(0);
            let _ = file.seek(std::io::SeekFrom::Start(0));
            let _ = writeln!(file, "{}", std::process::id());
            Ok(Some(DaemonLock { _file: file }))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            Err(format!(
                "another tidings daemon (pid {}) is running on {path}: SQLite serves one daemon per database \
                 file; run several instances on PostgreSQL instead",
                holder.trim()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {lock_path}: {e}")),
    }
}
