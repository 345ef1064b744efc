//! One self-contained HTML report per run: headings, notes, heatmaps (inline SVG), tables and
//! attention patterns with a token view. No network, no CDN: the styles and the small script
//! are inline, so the file opens anywhere (and in headless Chromium for the screenshot check).

use super::heatmap::{esc, fmt_num, panels_svg, sweep_svg, Panel, Scale};
use crate::analysis::{Axis, LabelledArray};
use crate::error::{write_atomic, Result};
use std::fmt::Write;
use std::path::Path;

/// Attention patterns of one prompt for some heads, ready to draw.
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    /// A caption (the prompt or its row number).
    pub caption: String,
    /// The prompt's tokens (as strings).
    pub tokens: Vec<String>,
    /// One `(label, [query][key] pattern)` per head.
    pub heads: Vec<(String, Vec<Vec<f64>>)>,
    /// Whether the patterns are value-weighted (not probabilities).
    pub value_weighted: bool,
}

/// An HTML report under construction.
#[derive(Debug, Clone, Default)]
pub struct Report {
    title: String,
    body: String,
    n_attn: usize,
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
p,li{font-size:14px;line-height:1.45}.fig{overflow-x:auto;margin:8px 0 16px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
.tokens{font-family:'DejaVu Sans Mono',monospace;font-size:14px;line-height:2;margin:6px 0}
.tok{padding:2px 1px;margin:0 1px;border-radius:3px;border:1px solid #ddd;cursor:default;white-space:pre}
.tok.sel{outline:2px solid #d62728}.hint{color:#666;font-size:12px}
select{font-size:13px;margin-left:6px}";

const SCRIPT: &str = r#"function csAttn(id){var d=JSON.parse(document.getElementById(id+'-data').textContent);
var box=document.getElementById(id+'-tokens');var sel=document.getElementById(id+'-head');
var cur=d.tokens.length-1;function paint(){var h=d.heads[sel.value|0].pattern;var row=h[cur];
var mx=0;for(var k=0;k<row.length;k++){if(row[k]>mx)mx=row[k];}
for(var k=0;k<box.children.length;k++){var el=box.children[k];var a=(k<row.length&&mx>0)?row[k]/mx:0;
el.style.background='rgba(33,102,172,'+(0.85*a).toFixed(3)+')';el.style.color=a>0.6?'#fff':'#222';
el.className='tok'+(k==cur?' sel':'');el.title='attention '+(k<row.length?row[k].toFixed(3):'0');}}
for(var k=0;k<d.tokens.length;k++){var s=document.createElement('span');s.className='tok';
s.textContent=d.tokens[k];(function(k){s.onmouseenter=function(){cur=k;paint();};})(k);box.appendChild(s);}
sel.onchange=paint;paint();}"#;

impl Report {
    /// An empty report.
    pub fn new(title: &str) -> Self {
        Report {
            title: title.to_string(),
            ..Default::default()
        }
    }

    /// A section heading.
    pub fn heading(&mut self, text: &str) {
        let _ = writeln!(self.body, "<h2>{}</h2>", esc(text));
    }

    /// A paragraph of text.
    pub fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", esc(text));
    }

    /// A table.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        self.body.push_str("<table>");
        if headers.iter().any(|h| !h.is_empty()) {
            self.body.push_str("<tr>");
            for h in headers {
                let _ = write!(self.body, "<th>{}</th>", esc(h));
            }
            self.body.push_str("</tr>\n");
        }
        for r in rows {
            self.body.push_str("<tr>");
            for c in r {
                let _ = write!(self.body, "<td>{}</td>", esc(c));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
    }

    /// An SVG figure (inline).
    pub fn svg(&mut self, svg: &str) {
        let _ = writeln!(self.body, "<div class=\"fig\">{svg}</div>");
    }

    /// A sweep: its heatmap and its notes.
    pub fn sweep(&mut self, s: &LabelledArray) {
        self.heading(&s.title);
        let shape: Vec<String> = s
            .axes
            .iter()
            .map(|a| format!("{} ({})", a.name, a.len()))
            .collect();
        let _ = writeln!(
            self.body,
            "<p><code>{}</code> — axes: {}</p>",
            esc(&s.name),
            esc(&shape.join(" × "))
        );
        self.svg(&sweep_svg(s));
        let rows: Vec<Vec<String>> = s
            .notes
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(x) => x.clone(),
                    serde_json::Value::Number(n) => n
                        .as_f64()
                        .map(|f| format!("{f:.6}"))
                        .unwrap_or_else(|| n.to_string()),
                    other => other.to_string(),
                };
                vec![k.clone(), v]
            })
            .collect();
        if !rows.is_empty() {
            self.table(&["note", "value"], &rows);
        }
    }

    /// Attention patterns: a heatmap per head (query × key, token labels) and a token view
    /// (hover a token to see where it attends; pick the head).
    pub fn attention(&mut self, block: &AttentionBlock) {
        let _ = writeln!(self.body, "<h2>{}</h2>", esc(&block.caption));
        let n = block.tokens.len();
        let labels: Vec<String> = block
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{i} {t}"))
            .collect();
        let mut hi = 0.0f64;
        let panels: Vec<Panel> = block
            .heads
            .iter()
            .map(|(name, pat)| {
                let mut values = Vec::with_capacity(n * n);
                for row in pat.iter().take(n) {
                    for k in 0..n {
                        let v = row.get(k).copied().unwrap_or(f64::NAN);
                        if v.is_finite() {
                            hi = hi.max(v);
                        }
                        values.push(v);
                    }
                }
                Panel {
                    title: name.clone(),
                    rows: Axis::new("query", labels.clone()),
                    cols: Axis::new("key", labels.clone()),
                    values,
                }
            })
            .collect();
        let scale = if block.value_weighted {
            Scale::Sequential(0.0, if hi > 0.0 { hi } else { 1.0 })
        } else {
            Scale::Sequential(0.0, 1.0)
        };
        let what = if block.value_weighted {
            "value-weighted attention (each key column times ‖v‖)"
        } else {
            "attention probabilities"
        };
        self.svg(&panels_svg(what, &panels, scale));
        // the token view
        let id = format!("attn{}", self.n_attn);
        self.n_attn += 1;
        let data = serde_json::json!({
            "tokens": block.tokens,
            "heads": block.heads.iter().map(|(name, pat)| serde_json::json!({
                "name": name,
                "pattern": pat.iter().map(|r| r.iter().map(|&v| if v.is_finite() { v } else { 0.0 }).collect::<Vec<f64>>()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let json = data.to_string().replace("</", "<\\/");
        let _ = writeln!(
            self.body,
            "<p class=\"hint\">Hover a token to see where it attends (shading relative to its largest weight). Head:<select id=\"{id}-head\">{}</select></p>\n<div class=\"tokens\" id=\"{id}-tokens\"></div>\n<script type=\"application/json\" id=\"{id}-data\">{json}</script>\n<script>csAttn('{id}');</script>",
            block
                .heads
                .iter()
                .enumerate()
                .map(|(i, (name, _))| format!("<option value=\"{i}\">{}</option>", esc(name)))
                .collect::<String>()
        );
    }

    /// A list of key–value facts (metrics, settings).
    pub fn facts(&mut self, facts: &[(&str, String)]) {
        let rows: Vec<Vec<String>> = facts
            .iter()
            .map(|(k, v)| vec![k.to_string(), v.clone()])
            .collect();
        self.table(&["", ""], &rows);
    }

    /// The whole document.
    pub fn to_html(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head><body>\n<h1>{t}</h1>\n<p class=\"hint\">circuitscope {v}</p>\n{b}</body></html>\n",
            t = esc(&self.title),
            v = crate::version(),
            b = self.body
        )
    }

    /// Write the report atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_html().as_bytes())
    }
}

/// A number for tables.
pub fn num(v: f64) -> String {
    fmt_num(v)
}
