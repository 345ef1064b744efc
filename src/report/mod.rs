//! Results for people: heatmaps (SVG), the self-contained HTML report, circuit diagrams
//! (Graphviz DOT and SVG).

pub mod dot;
pub mod heatmap;
pub mod html;
pub mod safetensors;
pub mod svg;
pub mod template;
