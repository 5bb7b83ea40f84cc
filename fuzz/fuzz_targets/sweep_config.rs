//! Any bytes through the sweep config parser: `harness sweep --config FILE`.
//! It must return a config or an error naming the origin, never panic; a
//! config it accepts must pass its own checks again after a TOML round trip.
#![no_main]

use harness::experiment::plan::{parse_config_str, PlanError, SweepConfig};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_config_str(text, ORIGIN) {
        Ok(cfg) => {
            let again = toml::to_string(&cfg).expect("an accepted config serializes");
            let back: SweepConfig = parse_config_str(&again, ORIGIN)
                .unwrap_or_else(|e| panic!("re-parsing an accepted config: {e}\n{again}"));
            assert_eq!(back, cfg, "the TOML round trip changes the config");
        }
        // The parser's only error is a config error (PlanError): it names the origin.
        Err(PlanError { path, .. }) => assert_eq!(path, ORIGIN),
    }
});
