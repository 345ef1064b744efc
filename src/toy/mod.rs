//! Models constructed by hand, whose circuits are known exactly: `toy-induction`.

pub mod edges;
pub mod induction;
pub mod induction_card;
