//! Track: what comes back after a message went out. For now the signed one-click unsubscribe
//! links that marketing email carries ([`unsubscribe`]), SMS opt-out keywords ([`keywords`]),
//! email complaints ([`complaint`]), and conversions after a rule's messages with the experiment
//! report ([`report`]), and the dashboard's numbers ([`stats`]).

pub mod complaint;
pub mod keywords;
pub mod report;
pub mod stats;
pub mod unsubscribe;
