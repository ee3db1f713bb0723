//! The integration tests: one binary, sharing the protocol peers in `support`.

mod email;
mod pipeline;
mod support;
mod twilio;
