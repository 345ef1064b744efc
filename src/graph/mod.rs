//! The component graph: senders, receivers and the edges between them.

pub mod edges;
pub mod node;

pub use edges::{Edge, EdgeGraph, GraphOptions};
pub use node::{Node, Qkv, Receiver};
