//! The integration tests: one binary, sharing the protocol peers in `support`.

mod email;
mod support;
mod twilio;
