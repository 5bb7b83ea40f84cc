//! `harness record`.

#[derive(Debug, clap::Args)]
pub struct RecordArgs {}

pub fn run(_args: RecordArgs) -> anyhow::Result<()> {
    anyhow::bail!("`harness record` is not implemented yet")
}
