//! Line and scatter plots as SVG for sweep results: the size–faithfulness Pareto plot and ROC
//! curves. Plain SVG (no script), deterministic bytes for the same data.

use crate::report::heatmap::{esc, fmt_num};
use std::fmt::Write;

/// One series of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's label.
    pub label: String,
    /// Points `(x, y)`; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// Join the points with a line (in the given order).
    pub line: bool,
    /// Draw a marker at each point.
    pub markers: bool,
    /// Dashed line.
    pub dashed: bool,
    /// Tooltip per point (same length as `points`, or empty).
    pub tips: Vec<String>,
}

/// A plot.
#[derive(Debug, Clone)]
pub struct Plot {
    /// The title.
    pub title: String,
    /// The horizontal axis's label.
    pub x_label: String,
    /// The vertical axis's label.
    pub y_label: String,
    /// Fixed ranges (`None`: from the data, with a margin).
    pub x_range: Option<(f64, f64)>,
    /// Fixed vertical range.
    pub y_range: Option<(f64, f64)>,
    /// The series.
    pub series: Vec<Series>,
}

/// Colours of successive series (colour-blind friendly).
const PALETTE: [&str; 8] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#000000",
];

const W: f64 = 640.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

fn range_of(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let m = (hi - lo) * 0.05;
    (lo - m, hi + m)
}

/// About five round tick values across `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let (k0, k1) = ((lo / step).ceil() as i64, (hi / step + 1e-9).floor() as i64);
    (k0..=k1).map(|k| k as f64 * step).collect()
}

/// The plotting area and the data ranges it shows.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    pw: f64,
    ph: f64,
}

impl Frame {
    fn sx(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * self.pw
    }

    fn sy(&self, y: f64) -> f64 {
        TOP + self.ph - (y - self.y0) / (self.y1 - self.y0) * self.ph
    }
}

impl Plot {
    /// The SVG document.
    pub fn to_svg(&self) -> String {
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = self.x_range.unwrap_or_else(|| range_of(all().map(|p| p.0)));
        let (y0, y1) = self.y_range.unwrap_or_else(|| range_of(all().map(|p| p.1)));
        let f = Frame {
            x0,
            x1,
            y0,
            y1,
            pw: W - LEFT - RIGHT,
            ph: H - TOP - BOTTOM,
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">"
        );
        let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>");
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
            LEFT + f.pw / 2.0,
            esc(&self.title)
        );
        self.axes(&mut s, &f);
        for (k, se) in self.series.iter().enumerate() {
            series_svg(&mut s, &f, k, se);
        }
        s.push_str("</svg>\n");
        s
    }

    /// The grid lines with their tick labels, the frame and the axis labels.
    fn axes(&self, s: &mut String, f: &Frame) {
        let (pw, ph) = (f.pw, f.ph);
        for t in ticks(f.x0, f.x1) {
            let x = f.sx(t);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.2}\" y1=\"{TOP}\" x2=\"{x:.2}\" y2=\"{:.2}\" stroke=\"#eee\"/><text x=\"{x:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 16.0,
                fmt_num(t)
            );
        }
        for t in ticks(f.y0, f.y1) {
            let y = f.sy(t);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{y:.2}\" x2=\"{:.2}\" y2=\"{y:.2}\" stroke=\"#eee\"/><text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\">{}</text>",
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                fmt_num(t)
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            LEFT + pw / 2.0,
            H - 14.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            s,
            "<text transform=\"translate(18 {:.2}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
    }
}

/// Series `k`: its line, its markers (with their tips) and its legend entry.
fn series_svg(s: &mut String, f: &Frame, k: usize, se: &Series) {
    let c = PALETTE[k % PALETTE.len()];
    let pts: Vec<(usize, f64, f64)> = se
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.0.is_finite() && p.1.is_finite())
        .map(|(i, p)| (i, f.sx(p.0), f.sy(p.1)))
        .collect();
    if se.line && pts.len() > 1 {
        let d: Vec<String> = pts
            .iter()
            .map(|(_, x, y)| format!("{x:.2},{y:.2}"))
            .collect();
        let dash = if se.dashed {
            " stroke-dasharray=\"5 4\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.6\"{dash}/>",
            d.join(" ")
        );
    }
    if se.markers {
        for (i, x, y) in &pts {
            let tip = se
                .tips
                .get(*i)
                .map(|t| format!("<title>{}</title>", esc(t)))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"3.5\" fill=\"{c}\">{tip}</circle>"
            );
        }
    }
    let ly = TOP + 10.0 + 18.0 * k as f64;
    let lx = LEFT + f.pw + 14.0;
    let _ = writeln!(
        s,
        "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        lx + 18.0,
        lx + 24.0,
        ly + 4.0,
        esc(&se.label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        assert!(t
            .iter()
            .zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
            .all(|(a, b)| (a - b).abs() < 1e-12));
        let t = ticks(-3.0, 117.0);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 3 && t.len() <= 7, "{t:?}");
    }

    #[test]
    fn draws_every_series_with_its_legend() {
        let p = Plot {
            title: "t <1>".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
            series: vec![
                Series {
                    label: "a".into(),
                    points: vec![(0.0, 0.0), (0.5, f64::NAN), (1.0, 1.0)],
                    line: true,
                    markers: true,
                    dashed: false,
                    tips: vec!["p0".into(), "p1".into(), "p2".into()],
                },
                Series {
                    label: "b".into(),
                    points: vec![(0.2, 0.3)],
                    line: false,
                    markers: true,
                    dashed: true,
                    tips: vec![],
                },
            ],
        };
        let s = p.to_svg();
        assert!(s.contains("t &lt;1&gt;"));
        assert_eq!(s.matches("<circle").count(), 3, "the NaN point is skipped");
        assert_eq!(s.matches("<polyline").count(), 1);
        assert!(s.contains("<title>p2</title>") && !s.contains("<title>p1</title>"));
    }
}
