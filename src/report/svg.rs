//! Circuit diagrams rendered to SVG in Rust (with `layout-rs`; no Graphviz needed).
//!
//! As in the reference's diagrams, the embedding is at the top and the logits at the bottom;
//! arrows point from a sender to the component that reads it. Node colours and edge widths follow [`super::dot::Diagram`].

use super::dot::Diagram;
use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::BTreeMap;

/// Render a diagram as an SVG document.
pub fn render(d: &Diagram) -> String {
    if d.nodes.is_empty() {
        return message_svg(&d.title, "(no edges)");
    }
    let d2 = d.clone();
    // The layout engine is third-party code: never let a layout failure end a long run.
    let res = std::panic::catch_unwind(move || layout_svg(&d2));
    match res {
        // Arrow heads of a fixed size, whatever the line width.
        Ok(svg) => add_title(
            &svg.replace("<marker ", "<marker markerUnits=\"userSpaceOnUse\" "),
            &d.title,
        ),
        Err(_) => message_svg(
            &d.title,
            "(the diagram could not be laid out; see circuit.dot)",
        ),
    }
}

fn layout_svg(d: &Diagram) -> String {
    let dir = Orientation::TopToBottom;
    let mut vg = VisualGraph::new(dir);
    let mut handles = BTreeMap::new();
    for n in &d.nodes {
        let shape = match n.kind.shape() {
            "ellipse" => ShapeKind::new_circle(&n.id),
            _ => ShapeKind::new_box(&n.id),
        };
        let font = 14;
        let size = get_shape_size(dir.flip(), &shape, font, false);
        let look = StyleAttr::new(
            Color::fast("black"),
            1,
            Some(Color::fast(n.kind.fill())),
            0,
            font,
        );
        let h = vg.add_node(Element::create(shape, look, dir.flip(), size));
        handles.insert(n.id.clone(), h);
    }
    for e in &d.edges {
        let (Some(&from), Some(&to)) = (handles.get(&e.from), handles.get(&e.to)) else {
            continue;
        };
        let colour = d.node(&e.to).map_or("black", |n| n.kind.edge_colour());
        let width = d.pen_width(e).round().max(1.0) as usize;
        let look = StyleAttr::new(Color::fast(colour), width, None, 0, 10);
        let style = if e.dashed {
            LineStyleKind::Dashed
        } else {
            LineStyleKind::Normal
        };
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            style,
            "",
            &look,
            &None,
            &None,
        );
        vg.add_edge(arrow, from, to);
    }
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    svg.finalize()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Insert a title line at the top of an SVG document.
fn add_title(svg: &str, title: &str) -> String {
    if title.is_empty() {
        return svg.to_string();
    }
    match svg
        .find("<svg")
        .and_then(|i| svg[i..].find('>').map(|j| i + j + 1))
    {
        Some(at) => format!(
            "{}\n<title>{}</title>\n<text x=\"10\" y=\"20\" font-family=\"Helvetica\" \
             font-size=\"14\">{}</text>{}",
            &svg[..at],
            xml_escape(title),
            xml_escape(title),
            &svg[at..]
        ),
        None => svg.to_string(),
    }
}

fn message_svg(title: &str, msg: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"80\">\n\
         <title>{t}</title>\n\
         <text x=\"10\" y=\"24\" font-family=\"Helvetica\" font-size=\"14\">{t}</text>\n\
         <text x=\"10\" y=\"52\" font-family=\"Helvetica\" font-size=\"14\">{m}</text>\n</svg>\n",
        t = xml_escape(title),
        m = xml_escape(msg)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::dot::{DiagramEdge, DiagramNode, NodeKind};

    #[test]
    fn renders_a_small_circuit() {
        let n = |id: &str, kind| DiagramNode {
            id: id.into(),
            kind,
        };
        let e = |a: &str, b: &str, x| DiagramEdge {
            from: a.into(),
            to: b.into(),
            effect: x,
            dashed: false,
        };
        let d = Diagram {
            title: "test <circuit>".into(),
            nodes: vec![
                n("embed", NodeKind::Embed),
                n("a0.h1.v", NodeKind::VInput),
                n("a0.h1", NodeKind::Head),
                n("logits", NodeKind::Logits),
            ],
            edges: vec![
                e("embed", "a0.h1.v", Some(0.5)),
                e("a0.h1.v", "a0.h1", Some(0.25)),
                e("a0.h1", "logits", Some(1.0)),
            ],
        };
        let svg = render(&d);
        assert!(svg.contains("<svg"));
        assert!(svg.contains("a0.h1.v"));
        assert!(svg.contains("test &lt;circuit&gt;"));
        let dot = d.to_dot();
        assert!(dot.contains("\"a0.h1\" -> \"logits\" [penwidth=6.00"));
        assert!(dot.contains("\"embed\" -> \"a0.h1.v\" [penwidth=3.50"));
    }
}
