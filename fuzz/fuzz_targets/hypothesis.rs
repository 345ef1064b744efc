//! Hypothesis files: parse any text, then validate it against toy-ioi's config and a small IOI
//! dataset (names, groups, positions, features, the path automaton), as `scrub --check` does.
#![no_main]
use circuitscope::data::{Dataset, TaskSpec};
use circuitscope::model::ModelConfig;
use circuitscope::scrub::hypothesis::{parse_str, Hypothesis};
use circuitscope::scrub::treeify::Plan;
use circuitscope::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
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
        let tok = Tokenizer::from_json_str(include_str!("../../models/toy-ioi/tokenizer.json"), "toy-ioi")
            .expect("the shipped tokenizer loads");
        let ds = TaskSpec::from_ron("Ioi(n: 6, seed: 1)", "task")
            .and_then(|t| t.build(&tok))
            .expect("a small IOI dataset builds");
        (cfg, ds)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz/h.ron");
    let Ok(file) = parse_str(text, path) else {
        return;
    };
    let _ = circuitscope::memory::check_task(&file.task, "h.ron");
    let (cfg, ds) = setup();
    if let Ok(h) = Hypothesis::resolve(file, text.to_string(), path, cfg, ds) {
        if let Ok(plan) = Plan::explore(&h, cfg, ds.len(), ds.max_len()) {
            let _ = plan.patched_cost(cfg.n_layers);
        }
    }
});
