//! Token JSON files (`--tokens`, `--corrupted-tokens`, `--answers`): a JSON list of token-id
//! lists becomes a dataset, or is refused.
#![no_main]
use circuitscope::analysis::setup::tokens_dataset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rows) = serde_json::from_slice::<Vec<Vec<u32>>>(data) else {
        return;
    };
    let answers: Vec<(u32, u32)> = rows
        .iter()
        .map(|r| (r.first().copied().unwrap_or(0), r.last().copied().unwrap_or(0)))
        .collect();
    let corrupted: Vec<Vec<u32>> = rows.iter().map(|r| r.iter().rev().copied().collect()).collect();
    if let Ok(ds) = tokens_dataset(&rows, Some(&corrupted), Some(&answers)) {
        assert_eq!(ds.len(), rows.len());
        let _ = ds.padded_tokens(0);
    }
    let _ = tokens_dataset(&rows, None, None);
});
