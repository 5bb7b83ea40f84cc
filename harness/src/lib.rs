//! dropbench's harness: capture format, replay driver, pipelines, sinks, ledger, sweeps and gates.

pub mod capture;
pub mod classify;
pub mod cli;
pub mod cmd;
pub mod compare;
pub mod experiment;
pub mod export;
pub mod gate;
pub mod host;
pub mod ledger;
pub mod pipeline;
pub mod replay;
pub mod results;
pub mod sink;
