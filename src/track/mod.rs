//! Track: what comes back after a message went out. For now the signed one-click unsubscribe
//! links that marketing email carries ([`unsubscribe`]); delivery receipts, bounces and
//! conversions join here.

pub mod keywords;
pub mod unsubscribe;
