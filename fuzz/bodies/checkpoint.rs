//! ACDC checkpoints: any bytes either load as a consistent checkpoint or are refused.

use circuitscope::acdc::checkpoint::Checkpoint;
use std::path::Path;

/// Run one input; true when it loaded as a checkpoint.
pub fn run(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(c) = Checkpoint::from_json(text, Path::new("checkpoint.json")) else {
        return false;
    };
    assert_eq!(c.state.present.len(), c.units);
    assert!(c.state.next_step <= c.steps);
    let _ = c.check_identity(Path::new("."), &c.identity, c.units);
    true
}
