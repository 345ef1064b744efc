//! ACDC checkpoints: any bytes either load as a consistent checkpoint or are refused.
#![no_main]
use circuitscope::acdc::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Checkpoint::from_json(text, Path::new("checkpoint.json")) {
        assert_eq!(c.state.present.len(), c.units);
        assert!(c.state.next_step <= c.steps);
        let _ = c.check_identity(Path::new("."), &c.identity, c.units);
    }
});
