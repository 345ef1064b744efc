//! The component graph: senders, receivers and the edges between them.

pub mod node;

pub use node::{Node, Qkv, Receiver};
