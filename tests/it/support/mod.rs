//! Protocol-checking peers and the test app harness.

pub mod smtp;
pub mod twilio;
