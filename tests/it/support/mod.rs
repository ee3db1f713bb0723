//! Test peers: local servers that play the providers' part on loopback.

pub mod twilio;
