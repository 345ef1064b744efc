//! Circuit diagrams: a small graph description, written as Graphviz DOT.
//!
//! Nodes are coloured by kind (embedding, head, a head's q/k/v input, MLP, logits); an edge's
//! width grows with the size of its measured effect. The same [`Diagram`] is rendered to SVG
//! in Rust by [`super::svg`], so no Graphviz installation is needed.

use std::fmt::Write;

/// What a node of a circuit diagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    /// The token and position embedding.
    Embed,
    /// An attention head.
    Head,
    /// A head's query input.
    QInput,
    /// A head's key input.
    KInput,
    /// A head's value input.
    VInput,
    /// An MLP.
    Mlp,
    /// The logits.
    Logits,
}

impl NodeKind {
    /// Fill colour.
    pub fn fill(self) -> &'static str {
        match self {
            NodeKind::Embed => "#d9d9d9",
            NodeKind::Head => "#a6cee3",
            NodeKind::QInput => "#b2df8a",
            NodeKind::KInput => "#fdbf6f",
            NodeKind::VInput => "#fb9a99",
            NodeKind::Mlp => "#cab2d6",
            NodeKind::Logits => "#ffff99",
        }
    }

    /// Edge colour for edges into a node of this kind.
    pub fn edge_colour(self) -> &'static str {
        match self {
            NodeKind::QInput => "#33a02c",
            NodeKind::KInput => "#ff7f00",
            NodeKind::VInput => "#e31a1c",
            NodeKind::Mlp => "#6a3d9a",
            NodeKind::Logits => "#1f1f1f",
            NodeKind::Head | NodeKind::Embed => "#1f78b4",
        }
    }

    /// Graphviz shape.
    pub fn shape(self) -> &'static str {
        match self {
            NodeKind::QInput | NodeKind::KInput | NodeKind::VInput => "ellipse",
            _ => "box",
        }
    }
}

/// A node of a diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagramNode {
    /// Unique id (also the label).
    pub id: String,
    /// Kind, for colour and shape.
    pub kind: NodeKind,
}

/// An edge of a diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagramEdge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// Measured effect (width grows with its size); `None`: drawn thin.
    pub effect: Option<f64>,
    /// Drawn dashed (structural edges that are not part of the pruned graph).
    pub dashed: bool,
}

/// A circuit diagram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagram {
    /// Title (drawn as the graph label).
    pub title: String,
    /// Nodes, in drawing order.
    pub nodes: Vec<DiagramNode>,
    /// Edges, in drawing order.
    pub edges: Vec<DiagramEdge>,
}

impl Diagram {
    /// The largest |effect| over the edges (1 when there is none).
    pub fn max_effect(&self) -> f64 {
        let m = self
            .edges
            .iter()
            .filter_map(|e| e.effect)
            .map(f64::abs)
            .fold(0.0, f64::max);
        if m > 0.0 {
            m
        } else {
            1.0
        }
    }

    /// Pen width of an edge: 1 to 6, growing with |effect|.
    pub fn pen_width(&self, e: &DiagramEdge) -> f64 {
        match e.effect {
            Some(x) => 1.0 + 5.0 * (x.abs() / self.max_effect()).min(1.0),
            None => 1.0,
        }
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&DiagramNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The diagram as Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "digraph circuit {{");
        let _ = writeln!(s, "  graph [label=\"{}\", labelloc=t];", esc(&self.title));
        let _ = writeln!(s, "  node [style=filled, fontname=\"Helvetica\"];");
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "  \"{}\" [shape={}, fillcolor=\"{}\"];",
                esc(&n.id),
                n.kind.shape(),
                n.kind.fill()
            );
        }
        for e in &self.edges {
            let colour = self.node(&e.to).map_or("#1f1f1f", |n| n.kind.edge_colour());
            let mut attrs = format!("penwidth={:.2}, color=\"{colour}\"", self.pen_width(e));
            if let Some(x) = e.effect {
                let _ = write!(attrs, ", tooltip=\"effect {x:.6}\"");
            }
            if e.dashed {
                attrs.push_str(", style=dashed");
            }
            let _ = writeln!(s, "  \"{}\" -> \"{}\" [{attrs}];", esc(&e.from), esc(&e.to));
        }
        let _ = writeln!(s, "}}");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
