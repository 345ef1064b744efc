//! Labelled heatmaps as SVG, like the notebooks' `imshow`: a diverging blue–white–red colour
//! map centred at zero (or a white–blue sequential one for attention), axis names, a label per
//! row and column (token strings on position axes), a colour bar and a title. A sweep with more
//! than two axes becomes a grid of panels.

use crate::analysis::{Axis, LabelledArray};
use std::fmt::Write;

/// How values map to colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Blue (negative) – white (zero) – red (positive), symmetric around zero; `None` uses the
    /// largest |value|.
    Diverging(Option<f64>),
    /// White (`lo`) to dark blue (`hi`), e.g. attention probabilities in `[0, 1]`.
    Sequential(f64, f64),
}

/// One 2-D panel: rows × columns of values with labelled axes.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The panel's title (empty for a single panel).
    pub title: String,
    /// The vertical axis.
    pub rows: Axis,
    /// The horizontal axis.
    pub cols: Axis,
    /// Row-major values (NaN: no value, drawn grey).
    pub values: Vec<f64>,
}

/// XML-escape text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn lerp(a: (f64, f64, f64), b: (f64, f64, f64), t: f64) -> (f64, f64, f64) {
    (
        a.0 + (b.0 - a.0) * t,
        a.1 + (b.1 - a.1) * t,
        a.2 + (b.2 - a.2) * t,
    )
}

fn hex(c: (f64, f64, f64)) -> String {
    let f = |x: f64| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", f(c.0), f(c.1), f(c.2))
}

const WHITE: (f64, f64, f64) = (0.97, 0.97, 0.97);
const BLUE: (f64, f64, f64) = (0.02, 0.19, 0.38);
const MID_BLUE: (f64, f64, f64) = (0.26, 0.58, 0.78);
const RED: (f64, f64, f64) = (0.40, 0.0, 0.05);
const MID_RED: (f64, f64, f64) = (0.84, 0.38, 0.30);

/// The colour of `v` on a scale (`vmax` resolved).
pub fn colour(v: f64, scale: Scale, vmax: f64) -> String {
    if !v.is_finite() {
        return "#c8c8c8".into();
    }
    match scale {
        Scale::Diverging(_) => {
            let t = if vmax > 0.0 {
                (v / vmax).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            let (mid, end) = if t < 0.0 {
                (MID_BLUE, BLUE)
            } else {
                (MID_RED, RED)
            };
            let a = t.abs();
            hex(if a < 0.5 {
                lerp(WHITE, mid, a * 2.0)
            } else {
                lerp(mid, end, (a - 0.5) * 2.0)
            })
        }
        Scale::Sequential(lo, hi) => {
            let t = if hi > lo {
                ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            hex(if t < 0.5 {
                lerp(WHITE, MID_BLUE, t * 2.0)
            } else {
                lerp(MID_BLUE, BLUE, (t - 0.5) * 2.0)
            })
        }
    }
}

/// Format a number compactly for cells, ticks and tooltips.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e4).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Split a sweep into 2-D panels: 1-D → one row; 2-D → itself; 3-D → one panel per head when
/// there is a `head` axis beside a `layer` axis (so each panel is layer × position), else one
/// per index of the first axis; 4-D → one per index of the first two axes.
pub fn panels(s: &LabelledArray) -> Vec<Panel> {
    let shape = s.shape();
    match shape.len() {
        0 => vec![],
        1 => vec![Panel {
            title: String::new(),
            rows: Axis::new("", vec![String::new()]),
            cols: s.axes[0].clone(),
            values: s.values.clone(),
        }],
        2 => vec![Panel {
            title: String::new(),
            rows: s.axes[0].clone(),
            cols: s.axes[1].clone(),
            values: s.values.clone(),
        }],
        3 => {
            let names: Vec<&str> = s.axes.iter().map(|a| a.name.as_str()).collect();
            let head = names.iter().position(|&n| n == "head");
            let facet = match head {
                Some(h) if names[0] == "layer" => h,
                _ => 0,
            };
            let rest: Vec<usize> = (0..3).filter(|&i| i != facet).collect();
            (0..shape[facet])
                .map(|f| {
                    let mut values = Vec::with_capacity(shape[rest[0]] * shape[rest[1]]);
                    for i in 0..shape[rest[0]] {
                        for j in 0..shape[rest[1]] {
                            let mut idx = [0usize; 3];
                            idx[facet] = f;
                            idx[rest[0]] = i;
                            idx[rest[1]] = j;
                            values.push(s.get(&idx));
                        }
                    }
                    Panel {
                        title: facet_title(&s.axes[facet], f),
                        rows: s.axes[rest[0]].clone(),
                        cols: s.axes[rest[1]].clone(),
                        values,
                    }
                })
                .collect()
        }
        _ => {
            let inner: usize = shape[2..].iter().product();
            let mut out = Vec::new();
            for a in 0..shape[0] {
                for b in 0..shape[1] {
                    let sub = LabelledArray {
                        name: s.name.clone(),
                        title: String::new(),
                        axes: s.axes[2..].to_vec(),
                        values: s.values
                            [(a * shape[1] + b) * inner..(a * shape[1] + b + 1) * inner]
                            .to_vec(),
                        notes: Default::default(),
                    };
                    for mut p in panels(&sub) {
                        let t = format!(
                            "{} {}",
                            facet_title(&s.axes[0], a),
                            facet_title(&s.axes[1], b)
                        );
                        p.title = if p.title.is_empty() {
                            t
                        } else {
                            format!("{t} {}", p.title)
                        };
                        out.push(p);
                    }
                }
            }
            out
        }
    }
}

fn facet_title(axis: &Axis, i: usize) -> String {
    let l = &axis.labels[i];
    match axis.name.as_str() {
        "layer" | "head" => l.clone(),
        _ => format!("{}={l}", axis.name),
    }
}

/// Approximate width in pixels of text at `size` px.
fn text_w(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// Layout of one panel.
struct Geom {
    cell_w: f64,
    cell_h: f64,
    left: f64,
    top: f64,
    bottom: f64,
    width: f64,
    height: f64,
}

fn geom(p: &Panel) -> Geom {
    let nr = p.rows.len().max(1) as f64;
    let nc = p.cols.len().max(1) as f64;
    let cell_w = (640.0 / nc).clamp(12.0, 56.0);
    let cell_h = (480.0 / nr).clamp(12.0, 36.0);
    let font = 11.0;
    let row_label_w = p
        .rows
        .labels
        .iter()
        .map(|l| text_w(l, font))
        .fold(0.0, f64::max)
        .min(160.0);
    let col_label_w = p
        .cols
        .labels
        .iter()
        .map(|l| text_w(l, font))
        .fold(0.0, f64::max)
        .min(160.0);
    let left = 28.0 + row_label_w + 8.0;
    let top = if p.title.is_empty() { 8.0 } else { 26.0 };
    let bottom = col_label_w * 0.75 + 36.0;
    let width = left + nc * cell_w + 12.0;
    let height = top + nr * cell_h + bottom;
    Geom {
        cell_w,
        cell_h,
        left,
        top,
        bottom,
        width,
        height,
    }
}

fn draw_panel(
    out: &mut String,
    p: &Panel,
    x0: f64,
    y0: f64,
    scale: Scale,
    vmax: f64,
) -> (f64, f64) {
    let g = geom(p);
    let nc = p.cols.len();
    let _ = writeln!(out, r#"<g transform="translate({x0:.1},{y0:.1})">"#);
    if !p.title.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="17" font-size="13" font-weight="bold" text-anchor="middle">{}</text>"#,
            g.left + nc as f64 * g.cell_w / 2.0,
            esc(&p.title)
        );
    }
    draw_cells(out, p, &g, scale, vmax);
    draw_labels(out, p, &g);
    out.push_str("</g>\n");
    (g.width, g.height)
}

/// A panel's cells: a coloured rectangle each, with a tooltip, and the value when it fits.
fn draw_cells(out: &mut String, p: &Panel, g: &Geom, scale: Scale, vmax: f64) {
    let nr = p.rows.len();
    let nc = p.cols.len();
    let show_values = g.cell_w >= 34.0 && g.cell_h >= 16.0 && nr * nc <= 900;
    for i in 0..nr {
        for j in 0..nc {
            let v = p.values[i * nc + j];
            let x = g.left + j as f64 * g.cell_w;
            let y = g.top + i as f64 * g.cell_h;
            let _ = write!(
                out,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}" stroke="#ffffff" stroke-width="0.5"><title>{} {} · {} {}: {}</title></rect>"##,
                g.cell_w,
                g.cell_h,
                colour(v, scale, vmax),
                esc(&p.rows.name),
                esc(&p.rows.labels[i]),
                esc(&p.cols.name),
                esc(&p.cols.labels[j]),
                fmt_num(v)
            );
            if show_values {
                let dark = match scale {
                    Scale::Diverging(_) => vmax > 0.0 && v.abs() / vmax > 0.6,
                    Scale::Sequential(lo, hi) => hi > lo && (v - lo) / (hi - lo) > 0.6,
                };
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="{}">{}</text>"#,
                    x + g.cell_w / 2.0,
                    y + g.cell_h / 2.0 + 3.0,
                    if dark { "#ffffff" } else { "#222222" },
                    fmt_num(v)
                );
            }
            out.push('\n');
        }
    }
}

/// A panel's row and column labels and its axis names.
fn draw_labels(out: &mut String, p: &Panel, g: &Geom) {
    let nr = p.rows.len();
    let nc = p.cols.len();
    // row labels
    for (i, l) in p.rows.labels.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            g.left - 4.0,
            g.top + (i as f64 + 0.5) * g.cell_h + 4.0,
            esc(l)
        );
    }
    // column labels, rotated
    let grid_bottom = g.top + nr as f64 * g.cell_h;
    for (j, l) in p.cols.labels.iter().enumerate() {
        let x = g.left + (j as f64 + 0.5) * g.cell_w;
        let y = grid_bottom + 6.0;
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="end" transform="rotate(-45 {x:.1} {y:.1})" dy="0.7em">{}</text>"#,
            esc(l)
        );
    }
    // axis names
    if !p.cols.name.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" font-style="italic" text-anchor="middle">{}</text>"#,
            g.left + nc as f64 * g.cell_w / 2.0,
            grid_bottom + g.bottom - 6.0,
            esc(&p.cols.name)
        );
    }
    if !p.rows.name.is_empty() {
        let cy = g.top + nr as f64 * g.cell_h / 2.0;
        let _ = writeln!(
            out,
            r#"<text x="12" y="{cy:.1}" font-size="12" font-style="italic" text-anchor="middle" transform="rotate(-90 12 {cy:.1})">{}</text>"#,
            esc(&p.rows.name)
        );
    }
}

fn draw_colour_bar(out: &mut String, x: f64, y: f64, h: f64, scale: Scale, vmax: f64) {
    let (lo, hi) = match scale {
        Scale::Diverging(_) => (-vmax, vmax),
        Scale::Sequential(lo, hi) => (lo, hi),
    };
    let n = 64;
    let step = h / n as f64;
    for k in 0..n {
        let v = hi - (hi - lo) * (k as f64 + 0.5) / n as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.2}" width="16" height="{:.2}" fill="{}"/>"#,
            y + k as f64 * step,
            step + 0.3,
            colour(v, scale, vmax)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{x:.1}" y="{y:.1}" width="16" height="{h:.1}" fill="none" stroke="#888888" stroke-width="0.5"/>"##
    );
    for (frac, v) in [(0.0, hi), (0.5, (hi + lo) / 2.0), (1.0, lo)] {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            x + 20.0,
            y + frac * h + 4.0,
            fmt_num(v)
        );
    }
}

/// Render panels sharing one colour scale into one SVG document.
pub fn panels_svg(title: &str, panels: &[Panel], scale: Scale) -> String {
    let vmax = match scale {
        Scale::Diverging(Some(v)) => v,
        Scale::Diverging(None) => panels
            .iter()
            .flat_map(|p| p.values.iter())
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(v.abs())),
        Scale::Sequential(_, hi) => hi,
    };
    let geoms: Vec<Geom> = panels.iter().map(geom).collect();
    let pw = geoms.iter().map(|g| g.width).fold(0.0, f64::max);
    let ph = geoms.iter().map(|g| g.height).fold(0.0, f64::max);
    let per_row = ((1400.0 / pw.max(1.0)).floor() as usize).clamp(1, panels.len().max(1));
    let n_rows = panels.len().div_ceil(per_row).max(1);
    let title_h = 34.0;
    let bar_w = 90.0;
    let width = (per_row as f64 * pw + bar_w).max(text_w(title, 16.0) * 1.1 + 40.0);
    let height = title_h + n_rows as f64 * ph + 8.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="22" font-size="16" font-weight="bold" text-anchor="middle">{}</text>"#,
        (width - bar_w) / 2.0,
        esc(title)
    );
    for (k, p) in panels.iter().enumerate() {
        let x = (k % per_row) as f64 * pw;
        let y = title_h + (k / per_row) as f64 * ph;
        draw_panel(&mut out, p, x, y, scale, vmax);
    }
    let bar_h = (ph - 60.0).clamp(60.0, 320.0);
    draw_colour_bar(
        &mut out,
        per_row as f64 * pw + 14.0,
        title_h + 10.0,
        bar_h,
        scale,
        vmax,
    );
    out.push_str("</svg>\n");
    out
}

/// A sweep as a labelled heatmap (diverging colour map centred at zero).
pub fn sweep_svg(s: &LabelledArray) -> String {
    panels_svg(&s.title, &panels(s), Scale::Diverging(None))
}
