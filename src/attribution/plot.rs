//! Faithfulness curves as one SVG: several methods' curves over circuit size (log-scaled
//! fraction of edges) and single circuits (e.g. ACDC's) as points, with CPR/CMD in the legend.

use super::faithfulness::{Curve, CurvePoint};
use crate::report::heatmap::esc;
use std::fmt::Write;

const COLOURS: [&str; 8] = [
    "#1f78b4", "#e31a1c", "#33a02c", "#ff7f00", "#6a3d9a", "#b15928", "#a6cee3", "#fb9a99",
];

/// The plot: `curves` as lines, `points` (label, point) as diamonds.
#[allow(clippy::too_many_lines)] // not split yet: its stages share many locals (left open in issue #10)
pub fn svg(
    title: &str,
    total_edges: usize,
    curves: &[Curve],
    points: &[(String, CurvePoint)],
) -> String {
    let (w, h) = (760.0, 460.0);
    let (left, right, top, bottom) = (70.0, 230.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let xmin = (1.0 / total_edges.max(1) as f64).log10().floor();
    let all_f = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.faithfulness))
        .chain(points.iter().map(|(_, p)| p.faithfulness));
    let (mut ylo, mut yhi) = (0.0f64, 1.0f64);
    for f in all_f.filter(|f| f.is_finite()) {
        ylo = ylo.min(f);
        yhi = yhi.max(f);
    }
    let ylo = (ylo * 10.0).floor() / 10.0;
    let yhi = (yhi * 10.0).ceil() / 10.0 + 0.05;
    let sx = |x: f64| left + pw * (x.max(10f64.powf(xmin)).log10() - xmin) / (0.0 - xmin);
    let sy = |y: f64| top + ph * (1.0 - (y - ylo) / (yhi - ylo));
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        esc(title)
    );
    // Axes, grid and ticks.
    let mut e = xmin as i64;
    while e <= 0 {
        let x = sx(10f64.powi(e as i32));
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            top + ph,
            top + ph + 16.0,
            if e == 0 {
                "100%".to_string()
            } else {
                format!("{}%", 100.0 * 10f64.powi(e as i32))
            }
        );
        e += 1;
    }
    let mut y = ylo;
    while y <= yhi + 1e-9 {
        let py = sy(y);
        let stroke = if (y - 1.0).abs() < 1e-9 || y.abs() < 1e-9 {
            "#999"
        } else {
            "#eee"
        };
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"{stroke}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{y:.1}</text>",
            left + pw,
            left - 6.0,
            py + 4.0
        );
        y += if yhi - ylo > 2.0 { 0.5 } else { 0.2 };
    }
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">edges kept (fraction of {total_edges}, log scale)</text>\
         <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">faithfulness (m(C) − m(∅)) / (m(M) − m(∅))</text>",
        left + pw / 2.0,
        h - 18.0,
        top + ph / 2.0
    );
    let mut ly = top + 10.0;
    for (i, c) in curves.iter().enumerate() {
        let col = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = c
            .points
            .iter()
            .filter(|p| p.fraction > 0.0 && p.faithfulness.is_finite())
            .map(|p| format!("{:.1},{:.1}", sx(p.fraction), sy(p.faithfulness)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"/>",
            pts.join(" ")
        );
        for p in pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{col}\"/>");
        }
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{col}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} (CPR {:.3}, CMD {:.3})</text>",
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 36.0,
            ly + 4.0,
            esc(&c.label),
            c.cpr,
            c.cmd
        );
        ly += 18.0;
    }
    for (j, (label, p)) in points.iter().enumerate() {
        let col = COLOURS[(curves.len() + j) % COLOURS.len()];
        let (x, y) = (sx(p.fraction), sy(p.faithfulness));
        let _ = writeln!(
            s,
            "<path d=\"M {x:.1} {:.1} L {:.1} {y:.1} L {x:.1} {:.1} L {:.1} {y:.1} Z\" fill=\"{col}\" stroke=\"#333\"/>",
            y - 7.0,
            x + 7.0,
            y + 7.0,
            x - 7.0
        );
        let _ = writeln!(
            s,
            "<path d=\"M {:.1} {:.1} l 6 -6 l 6 6 l -6 6 Z\" fill=\"{col}\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} ({} edges, f = {:.3})</text>",
            left + pw + 14.0,
            ly,
            left + pw + 36.0,
            ly + 4.0,
            esc(label),
            p.edges,
            p.faithfulness
        );
        ly += 18.0;
    }
    s.push_str("</svg>\n");
    s
}
