//! SMS providers.

pub mod twilio;
