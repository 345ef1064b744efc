//! Token JSON files (`--tokens`, `--corrupted-tokens`, `--answers`): a JSON list of token-id
//! lists becomes a dataset, or is refused.

use circuitscope::analysis::setup::tokens_dataset;

/// Run one input; true when it made a dataset.
pub fn run(data: &[u8]) -> bool {
    let Ok(rows) = serde_json::from_slice::<Vec<Vec<u32>>>(data) else {
        return false;
    };
    let answers: Vec<(u32, u32)> = rows
        .iter()
        .map(|r| {
            (
                r.first().copied().unwrap_or(0),
                r.last().copied().unwrap_or(0),
            )
        })
        .collect();
    let corrupted: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| r.iter().rev().copied().collect())
        .collect();
    let ok = match tokens_dataset(&rows, Some(&corrupted), Some(&answers)) {
        Ok(ds) => {
            assert_eq!(ds.len(), rows.len());
            let _ = ds.padded_tokens(0);
            true
        }
        Err(_) => false,
    };
    let _ = tokens_dataset(&rows, None, None);
    ok
}
