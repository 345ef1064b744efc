//! Faithfulness curves as one SVG: several methods' curves over circuit size (log-scaled
//! fraction of edges) and single circuits (e.g. ACDC's) as points, with CPR/CMD in the legend.

use super::faithfulness::{Curve, CurvePoint};
use crate::report::heatmap::esc;
use std::fmt::Write;

const COLOURS: [&str; 8] = [
    "#1f78b4", "#e31a1c", "#33a02c", "#ff7f00", "#6a3d9a", "#b15928", "#a6cee3", "#fb9a99",
];

/// The plotting area, in SVG units, and the ranges it shows: x is log10 of the fraction of
/// edges from `xmin` to 0, y the faithfulness from `ylo` to `yhi`.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    pw: f64,
    ph: f64,
    xmin: f64,
    ylo: f64,
    yhi: f64,
}

impl Frame {
    fn new(total_edges: usize, curves: &[Curve], points: &[(String, CurvePoint)]) -> Frame {
        let (w, h) = (760.0, 460.0);
        let (left, right, top, bottom) = (70.0, 230.0, 40.0, 60.0);
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
        Frame {
            w,
            h,
            left,
            top,
            pw: w - left - right,
            ph: h - top - bottom,
            xmin,
            ylo: (ylo * 10.0).floor() / 10.0,
            yhi: (yhi * 10.0).ceil() / 10.0 + 0.05,
        }
    }

    fn sx(&self, x: f64) -> f64 {
        self.left + self.pw * (x.max(10f64.powf(self.xmin)).log10() - self.xmin) / (0.0 - self.xmin)
    }

    fn sy(&self, y: f64) -> f64 {
        self.top + self.ph * (1.0 - (y - self.ylo) / (self.yhi - self.ylo))
    }

    /// Grid lines with their ticks (powers of ten of the fraction; faithfulness), the frame
    /// and the axis labels.
    fn axes(&self, s: &mut String, total_edges: usize) {
        let (left, top, pw, ph) = (self.left, self.top, self.pw, self.ph);
        let mut e = self.xmin as i64;
        while e <= 0 {
            let x = self.sx(10f64.powi(e as i32));
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
        let mut y = self.ylo;
        while y <= self.yhi + 1e-9 {
            let py = self.sy(y);
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
            y += if self.yhi - self.ylo > 2.0 { 0.5 } else { 0.2 };
        }
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">edges kept (fraction of {total_edges}, log scale)</text>\
             <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">faithfulness (m(C) − m(∅)) / (m(M) − m(∅))</text>",
            left + pw / 2.0,
            self.h - 18.0,
            top + ph / 2.0
        );
    }

    /// Curve `c` in colour `col`, with its legend entry at height `ly`.
    fn curve(&self, s: &mut String, c: &Curve, col: &str, ly: f64) {
        let pts: Vec<String> = c
            .points
            .iter()
            .filter(|p| p.fraction > 0.0 && p.faithfulness.is_finite())
            .map(|p| format!("{:.1},{:.1}", self.sx(p.fraction), self.sy(p.faithfulness)))
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
        let lx = self.left + self.pw;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{col}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} (CPR {:.3}, CMD {:.3})</text>",
            lx + 10.0,
            lx + 30.0,
            lx + 36.0,
            ly + 4.0,
            esc(&c.label),
            c.cpr,
            c.cmd
        );
    }

    /// One circuit as a diamond in colour `col`, with its legend entry at height `ly`.
    fn point(&self, s: &mut String, label: &str, p: &CurvePoint, col: &str, ly: f64) {
        let (x, y) = (self.sx(p.fraction), self.sy(p.faithfulness));
        let _ = writeln!(
            s,
            "<path d=\"M {x:.1} {:.1} L {:.1} {y:.1} L {x:.1} {:.1} L {:.1} {y:.1} Z\" fill=\"{col}\" stroke=\"#333\"/>",
            y - 7.0,
            x + 7.0,
            y + 7.0,
            x - 7.0
        );
        let lx = self.left + self.pw;
        let _ = writeln!(
            s,
            "<path d=\"M {:.1} {:.1} l 6 -6 l 6 6 l -6 6 Z\" fill=\"{col}\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} ({} edges, f = {:.3})</text>",
            lx + 14.0,
            ly,
            lx + 36.0,
            ly + 4.0,
            esc(label),
            p.edges,
            p.faithfulness
        );
    }
}

/// The plot: `curves` as lines, `points` (label, point) as diamonds.
pub fn svg(
    title: &str,
    total_edges: usize,
    curves: &[Curve],
    points: &[(String, CurvePoint)],
) -> String {
    let f = Frame::new(total_edges, curves, points);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
         font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
        f.w,
        f.h,
        f.left + f.pw / 2.0,
        esc(title)
    );
    f.axes(&mut s, total_edges);
    let mut ly = f.top + 10.0;
    for (i, c) in curves.iter().enumerate() {
        f.curve(&mut s, c, COLOURS[i % COLOURS.len()], ly);
        ly += 18.0;
    }
    for (j, (label, p)) in points.iter().enumerate() {
        f.point(
            &mut s,
            label,
            p,
            COLOURS[(curves.len() + j) % COLOURS.len()],
            ly,
        );
        ly += 18.0;
    }
    s.push_str("</svg>\n");
    s
}
