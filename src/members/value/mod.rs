//! Customer value: the BG/NBD model of repeat buying (fit, P(alive), expected purchases) and RFM
//! scores and segments built on it. Pure computation: data and `now` come in as arguments.

pub mod bgnbd;
pub mod rfm;

mod bfgs;
mod special;

pub use bgnbd::{Fit, FitError, FitOptions, Params, Summary};
pub use rfm::{History, Score, Segment, SegmentRules};
