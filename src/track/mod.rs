//! Track: what comes back after a message went out. For now the signed one-click unsubscribe
//! links that marketing email carries ([`unsubscribe`]), SMS opt-out keywords ([`keywords`]),
//! email complaints ([`complaint`]); delivery receipts, bounces and
//! conversions join here.

pub mod complaint;
pub mod keywords;
pub mod unsubscribe;
