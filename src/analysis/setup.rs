//! The inputs every sweep shares: the one experiment setup ([`crate::experiment::Setup`]) and
//! positions.

pub use crate::experiment::{Position, Setup};
