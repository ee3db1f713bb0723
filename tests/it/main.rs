//! The integration tests: one binary, sharing the protocol peers in `support`.

mod api;
mod cli;
mod email;
mod import;
mod support;
mod twilio;
