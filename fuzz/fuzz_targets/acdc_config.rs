//! ACDC configs: parse and validate any text; a config that loads must write itself back as
//! RON that loads to the same config.
#![no_main]
use circuitscope::acdc::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::from_ron(text, "fuzz.ron") {
        let again = Config::from_ron(&c.to_ron(), "round trip")
            .expect("a valid config writes RON that parses");
        assert!(c.diff(&again).is_empty(), "round trip changed the config");
        let _ = circuitscope::memory::check_task(&c.task_with_n(), "fuzz.ron");
    }
});
