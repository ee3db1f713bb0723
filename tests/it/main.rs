//! The integration tests: one binary, sharing the protocol peers and the `TestApp` harness in
//! `support`.

#[macro_use]
mod support;

mod aliyun;
mod api;
mod calendar;
mod caps;
mod cli;
mod consent;
mod daemon;
mod email;
mod email_auth;
mod entry;
mod experiments;
mod fault;
mod gateways;
mod http_sms;
mod import;
mod instances;
mod journeys;
mod pipeline;
mod push;
mod rights;
mod store;
mod templates;
mod tencent;
mod twilio;
mod value;
