//! One module per subcommand: its clap options and its `run`.

pub mod compare;
pub mod count;
pub mod export;
pub mod fidelity;
pub mod gate;
pub mod inspect;
pub mod live;
pub mod merge;
pub mod record;
pub mod replay;
pub mod report;
pub mod stages;
pub mod sweep;
