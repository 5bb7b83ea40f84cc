//! `harness report`: the HTML report from results files alone.
//!
//! ```text
//! harness report results/latest                       # into results/latest/report/
//! harness report run/sweep.json --baseline old/ --out /tmp/cmp
//! ```
//! The report model and the files are `crate::export::report`'s; this is the
//! command's options and its console lines.

use std::path::PathBuf;

use crate::export::report::write;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The results: a run folder (e.g. results/latest) or its sweep.json.
    pub results: PathBuf,
    /// Another run's results to compare with (a comparison section per cell).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Where to write index.html and the charts. Default: `report/` beside the results file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Draw the loss chart on a log scale (rates with no loss are left out of it).
    #[arg(long)]
    pub log_loss: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let files = write(
        &args.results,
        args.baseline.as_deref(),
        args.out.as_deref(),
        args.log_loss,
    )?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
