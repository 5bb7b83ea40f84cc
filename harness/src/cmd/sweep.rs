//! `harness sweep`.

#[derive(Debug, clap::Args)]
pub struct SweepArgs {}

pub fn run(_args: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("`harness sweep` is not implemented yet")
}
