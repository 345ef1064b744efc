//! Results for people: circuit diagrams as Graphviz DOT and SVG.

pub mod dot;
pub mod svg;
