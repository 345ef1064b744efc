//! Results for people: heatmaps (SVG), the self-contained HTML report, diagrams.

pub mod heatmap;
pub mod html;
