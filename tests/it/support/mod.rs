//! Protocol-checking peers and the test app harness.

pub mod app;
pub mod smtp;
pub mod twilio;
