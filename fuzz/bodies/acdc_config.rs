//! ACDC configs: parse and validate any text; a config that loads must write itself back as
//! RON that loads to the same config, and its task's size is checked against the memory limit.

use circuitscope::acdc::Config;

/// Run one input; true when it loaded as a config.
pub fn run(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(c) = Config::from_ron(text, "fuzz.ron") else {
        return false;
    };
    let again =
        Config::from_ron(&c.to_ron(), "round trip").expect("a valid config writes RON that parses");
    assert!(c.diff(&again).is_empty(), "round trip changed the config");
    let _ = circuitscope::memory::check_task(&c.task_with_n(), "fuzz.ron");
    true
}
