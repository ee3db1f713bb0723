//! The integration tests: one binary, one module per area, shared peers in `support`.

mod support;
mod twilio;
