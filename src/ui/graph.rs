//! The jobfile's `after` graph as an SVG: a column per depth (a job sits
//! right of everything it waits for), each box coloured by its latest
//! run's state. Pure; names go through maud, which escapes them.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::job::JobState;

/// A definition and what it runs after.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub after: Vec<String>,
    /// Its latest run's state (None: never ran).
    pub state: Option<JobState>,
}

const W: usize = 170;
const H: usize = 34;
const GAP_X: usize = 60;
const GAP_Y: usize = 16;

/// Each node's depth: 0 without (known) dependencies, else one more than
/// its deepest dependency. A cycle (which validation refuses) stops at
/// the number of nodes.
pub fn depths(nodes: &[Node]) -> BTreeMap<String, usize> {
    let mut depth: BTreeMap<String, usize> = nodes.iter().map(|n| (n.name.clone(), 0)).collect();
    for _ in 0..nodes.len() {
        let mut changed = false;
        for n in nodes {
            let want = n
                .after
                .iter()
                .filter_map(|a| depth.get(a))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0)
                .min(nodes.len());
            if depth.get(&n.name) != Some(&want) {
                depth.insert(n.name.clone(), want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

fn fill(state: Option<JobState>) -> &'static str {
    match state {
        Some(JobState::Completed) => "#d6f5d6",
        Some(JobState::Dead | JobState::Failed) => "#f8d0d0",
        Some(JobState::Processing) => "#d0e4f8",
        Some(JobState::Pending) => "#f3f3f3",
        Some(JobState::Cancelled) => "#e0e0e0",
        None => "#ffffff",
    }
}

/// The graph.
pub fn svg(nodes: &[Node]) -> String {
    let depth = depths(nodes);
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for n in nodes {
        let d = depth.get(&n.name).copied().unwrap_or(0);
        let row = rows.entry(d).or_default();
        at.insert(&n.name, (d * (W + GAP_X) + 4, *row * (H + GAP_Y) + 4));
        *row += 1;
    }
    let width = at.values().map(|(x, _)| x + W + 4).max().unwrap_or(8);
    let height = at.values().map(|(_, y)| y + H + 4).max().unwrap_or(8);
    let markup: Markup = html! {
        svg #graph xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) viewBox={"0 0 " (width) " " (height)} {
            @for n in nodes {
                @for dep in &n.after {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (at.get(dep.as_str()), at.get(n.name.as_str())) {
                        line.edge data-from=(dep) data-to=(n.name) x1=(x1 + W) y1=(y1 + H / 2) x2=(x2) y2=(y2 + H / 2) stroke="#888" {}
                    }
                }
            }
            @for n in nodes {
                @if let Some((x, y)) = at.get(n.name.as_str()) {
                    g.node data-definition=(n.name) data-state=(n.state.map_or("never", JobState::as_str)) {
                        rect x=(x) y=(y) width=(W) height=(H) rx="4" fill=(fill(n.state)) stroke="#555" {}
                        text x=(x + 8) y=(y + 21) font-size="12" { (n.name) " · " (n.state.map_or("never ran", JobState::as_str)) }
                    }
                }
            }
        }
    };
    markup.into_string()
}

#[cfg(test)]
#[test]
fn depth_follows_the_longest_chain_and_names_are_escaped() {
    let node = |name: &str, after: &[&str]| Node {
        name: name.into(),
        after: after.iter().map(|a| a.to_string()).collect(),
        state: None,
    };
    let nodes = [
        node("deploy", &["test", "build"]),
        node("test", &["build"]),
        node("build", &[]),
        node("<x>", &["missing"]),
    ];
    let d = depths(&nodes);
    assert_eq!((d["build"], d["test"], d["deploy"], d["<x>"]), (0, 1, 2, 0));
    let svg = svg(&nodes);
    assert!(svg.contains("&lt;x&gt;") && !svg.contains("<x>"), "{svg}");
    assert_eq!(svg.matches("class=\"edge\"").count(), 3);
}
