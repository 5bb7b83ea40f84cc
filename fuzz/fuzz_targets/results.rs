//! Any bytes through the two results readers: the sweep results (and gate
//! baseline) reader `SweepResults::from_json` and the run results reader
//! `RunResult::from_json`. They must return results or an error naming the
//! origin, never panic; what they accept must survive a JSON round trip, and
//! the gate and the report model must take it without panicking.
#![no_main]

use harness::results::{ResultsError, RunResult};
use harness::export::report::to_report;
use harness::gate::{judge, RulesFile};
use harness::experiment::results::{SweepFileError, SweepResults};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.json";

fuzz_target!(|data: &[u8]| {
    match SweepResults::from_json(data, ORIGIN) {
        Ok(r) => {
            let json = serde_json::to_vec(&r).expect("accepted sweep results serialize");
            let back = SweepResults::from_json(&json, ORIGIN)
                .unwrap_or_else(|e| panic!("re-reading accepted sweep results: {e}"));
            assert_eq!(back, r, "the JSON round trip changes the sweep results");
            // The gate against itself, and the report model.
            let rules = RulesFile::default_regression(0.10);
            if let Ok(outcomes) = judge(&rules, &r, ORIGIN, Some((&r, ORIGIN))) {
                assert!(outcomes.iter().all(|o| !o.status.fails() || o.numbers.contains("invalid")));
            }
            let report = to_report(&r, Some(600_000.0));
            assert_eq!(report.series.len(), r.series.len());
        }
        Err(SweepFileError::Parse { path, .. } | SweepFileError::Schema { path, .. }) => {
            assert_eq!(path, ORIGIN)
        }
        Err(e) => panic!("reading bytes returned an I/O error: {e}"),
    }
    match RunResult::from_json(data, ORIGIN) {
        Ok(r) => {
            let json = serde_json::to_vec(&r).expect("accepted run results serialize");
            let back = RunResult::from_json(&json, ORIGIN)
                .unwrap_or_else(|e| panic!("re-reading an accepted run result: {e}"));
            assert_eq!(back, r, "the JSON round trip changes the run result");
        }
        Err(ResultsError::Decode { path, .. } | ResultsError::Schema { path, .. }) => {
            assert_eq!(path, ORIGIN)
        }
        Err(e) => panic!("reading bytes returned an unexpected error: {e}"),
    }
});
