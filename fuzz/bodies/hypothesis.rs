//! Hypothesis files: parse any text, then validate it against toy-ioi's config and a small IOI
//! dataset (names, groups, positions, features, the path automaton), as `scrub --check` does.

use circuitscope::data::{Dataset, TaskSpec};
use circuitscope::model::ModelConfig;
use circuitscope::scrub::hypothesis::{parse_str, Hypothesis};
use circuitscope::scrub::treeify::Plan;
use circuitscope::tokenizer::Tokenizer;
use std::path::Path;
use std::sync::OnceLock;

fn setup() -> &'static (ModelConfig, Dataset) {
    static S: OnceLock<(ModelConfig, Dataset)> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = ModelConfig::from_json(
            include_str!("../../models/toy-ioi/config.json"),
            Path::new("toy-ioi/config.json"),
        )
        .expect("the shipped config loads");
        let tok = Tokenizer::from_json_str(
            include_str!("../../models/toy-ioi/tokenizer.json"),
            "toy-ioi",
        )
        .expect("the shipped tokenizer loads");
        let ds = TaskSpec::from_ron("Ioi(n: 6, seed: 1)", "task")
            .and_then(|t| t.build(&tok))
            .expect("a small IOI dataset builds");
        (cfg, ds)
    })
}

/// Run one input; true when it resolved against the model and dataset.
pub fn run(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let path = Path::new("fuzz/h.ron");
    let Ok(file) = parse_str(text, path) else {
        return false;
    };
    let _ = circuitscope::memory::check_task(&file.task, "h.ron");
    let (cfg, ds) = setup();
    let Ok(h) = Hypothesis::resolve(file, text.to_string(), path, cfg, ds) else {
        return false;
    };
    if let Ok(plan) = Plan::explore(&h, cfg, ds.len(), ds.max_len()) {
        let _ = plan.patched_cost(cfg.n_layers);
    }
    true
}
