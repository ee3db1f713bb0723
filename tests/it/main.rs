//! The integration tests: one binary, sharing the protocol peers and the `TestApp` harness in
//! `support`.

#[macro_use]
mod support;

mod aliyun;
mod api;
mod auth;
mod calendar;
mod caps;
mod cli;
mod consent;
mod console;
mod daemon;
mod definitions;
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
mod members_api;
mod messages_api;
mod narrow;
mod observability;
mod pipeline;
mod push;
mod rights;
mod stats;
mod store;
mod templates;
mod tencent;
mod twilio;
mod value;
