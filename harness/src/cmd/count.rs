//! `harness count CAPTURE --variant V`: one deterministic pass of a variant
//! over the capture's first events, pre-written into emulated rings and read
//! into the null sink (`pipeline::count`). Run under callgrind it gives the
//! instructions per event of each stage; `harness compare` does that for
//! both builds (docs/gate.md, "Instruction counts").

use std::path::PathBuf;

use anyhow::Context;

use crate::capture::{Capture, Loading};
use crate::pipeline::count::count_pass;

#[derive(Debug, clap::Args)]
pub struct CountArgs {
    /// The capture (pcapng) whose events are counted over.
    pub capture: PathBuf,
    /// The pipeline variant.
    #[arg(long)]
    pub variant: String,
    /// Events in the pass (the capture is looped over if it holds fewer).
    #[arg(long, default_value_t = 2000)]
    pub events: u64,
    /// A knob away from the variant's default, NAME=VALUE (repeatable).
    #[arg(long = "knob")]
    pub knobs: Vec<String>,
    /// Write the pass's counts here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: CountArgs) -> anyhow::Result<()> {
    let variant = crate::pipeline::variant(&args.variant)?;
    let knobs = variant
        .knobs_with(&args.knobs)
        .map_err(anyhow::Error::msg)?;
    let capture = Capture::open(&args.capture, Loading::Preload)?;
    let report = count_pass(&capture, variant, knobs, args.events)?;
    println!(
        "count     {} over {} events of {}: read {}, decoded {}, produced {}",
        report.variant, report.events, capture.file, report.read, report.decoded, report.produced
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
