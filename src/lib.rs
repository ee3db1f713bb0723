//! tidings: a daemon that sends loyalty-programme members the right message, at the right local
//! time, exactly once.
//!
//! The modules follow the pipeline a message travels:
//!
//! - [`members`]: members and their events come in (HTTP API, `tidings import`, the demo seed).
//! - [`evaluate`]: the tick: windows per rule, members in batches, idempotent enqueue.
//! - [`entry`]: event rules (the events a rule has not seen) and transactional sends.
//! - [`triggers`]: which members have an occurrence of a rule in a window (pure).
//! - [`plan`]: turn occurrences into message rows: dedupe key, member-local `run_at`, skips.
//! - [`journeys`]: multi-step flows: entry on any trigger, steps enqueued up front, exit on an
//!   event (a purchase), re-entry rules; [`coupons`]: pool and signed codes in messages.
//! - [`dispatch`]: claim due messages under a lease, render, send, finalize (fenced).
//! - [`channels`]: the providers (outbox, SMTP email, Twilio SMS).
//! - [`render`]: Handlebars templates per channel and locale.
//! - [`templates`]: template versions in the database: seeding, drafts, warnings, publish,
//!   rollback, import/export, previews and test sends.
//! - [`store`]: all SQL; one contract over two backends, SQLite (WAL) and PostgreSQL.
//! - [`track`]: what comes back: signed one-click unsubscribe links.
//! - [`http`]: health, readiness and the ingest API.
//! - [`definitions`]: rules and journeys defined through the API, merged with the file's and
//!   checked as the file is; every instance reloads them when their version moves.
//! - [`auth`]: API keys, roles and console session tokens (the access table is `http::auth`).
//! - [`rights`]: member rights: export everything held about a member, erase a member.
//! - [`status`]: `tidings status` from each instance's heartbeat (backlog, ticks, providers).
//! - [`app`], [`daemon`], [`cli`], [`config`], [`clock`]: wiring, the daemon's life, commands,
//!   configuration, injected time.

pub mod app;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod coupons;
pub mod daemon;
pub mod definitions;
pub mod dispatch;
pub mod entry;
pub mod evaluate;
pub mod http;
pub mod journeys;
pub mod members;
pub mod plan;
pub mod render;
pub mod rights;
pub mod status;
pub mod store;
pub mod templates;
pub mod track;
pub mod triggers;

/// Installs ring as rustls's process-wide crypto provider (both lettre and reqwest use rustls).
/// Idempotent: later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
