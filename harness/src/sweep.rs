//! The sweep's public names, where callers have always found them. The
//! sweep itself lives in [`crate::experiment`]: the plan, the searches, the
//! scheduling and the results each in a file of their own; the gate's
//! judging is in [`crate::gate`].

pub use crate::experiment::plan::{parse_config_str, Plan, PlanError, PlannedSeries, SweepConfig};
pub use crate::experiment::relayout::relayout;
pub use crate::experiment::results::{
    CaptureDigest, Series, SeriesKey, SkippedSeries, SweepFileError, SweepResults, SWEEP_SCHEMA,
};
pub use crate::experiment::sweep::{plan_series, run_sweep, SweepError, SweepObserver, TrialError};
pub use crate::experiment::trial::replayed_result;
