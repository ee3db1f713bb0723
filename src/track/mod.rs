//! Track: what comes back after a message went out. For now the signed one-click unsubscribe
//! links that marketing email carries ([`unsubscribe`]), and conversions after a rule's messages
//! with the experiment report ([`report`]).

pub mod keywords;
pub mod report;
pub mod unsubscribe;
