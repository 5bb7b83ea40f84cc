//! Writes the test fixture's report to a directory: `cargo run -p reports --example render_fixture -- DIR`.
#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> Result<(), reports::ReportError> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "report".to_string());
    for f in reports::write_report(std::path::Path::new(&dir), &common::fixture_three_modes())? {
        println!("{}", f.display());
    }
    Ok(())
}
