//! The integration tests: one binary, sharing the protocol peers in `support`.

mod daemon;
mod email;
mod pipeline;
mod support;
mod twilio;
