//! `harness record`: attach the probes and capture what the kernel emits into
//! pcapng. The recording itself is [`crate::experiment::record`]; this file
//! holds the command's exit rules and its summary lines.

use anyhow::Context;

pub use crate::experiment::record::{
    record, record_with_failure, resolve_ring, RecordArgs, RecordSummary,
};
use crate::results::write_atomically;

pub fn run(args: RecordArgs) -> anyhow::Result<()> {
    let (summary, failure) = record_with_failure(&args)?;
    print_summary(&summary);
    if let Some(p) = &args.json {
        let written = write_atomically(p, &serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", p.display()));
        match (written, &failure) {
            (Err(e), None) => return Err(e),
            // The write error that stopped the capture is the one to report.
            (Err(e), Some(_)) => println!("  the summary was not written either: {e:#}"),
            (Ok(()), _) => {}
        }
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    if !summary.balanced {
        anyhow::bail!(
            "the kernel counters do not balance against what was read: see the summary above"
        );
    }
    if let Some(why) = summary.command.as_ref().and_then(|c| c.unjudged_reason(0)) {
        anyhow::bail!("{why}; the capture holds what it did until then");
    }
    Ok(())
}

fn print_summary(s: &RecordSummary) {
    let t = s.kernel.total();
    println!(
        "recorded {} ({} / {}, {} bytes per ring, wakeup {})",
        s.output.display(),
        s.layout,
        s.transport,
        s.ring_bytes,
        s.wakeup
    );
    println!(
        "  {:.2} s{}",
        s.seconds,
        if s.interrupted {
            ", interrupted by Ctrl-C (the file is complete up to the interrupt)"
        } else {
            ""
        }
    );
    if let Some(c) = &s.command {
        println!(
            "  command `{}`: exit {} after {:.2} s",
            c.command,
            c.exit_code.map_or("by a signal".into(), |x| x.to_string()),
            c.ran_ns as f64 / 1e9
        );
    }
    println!("  kernel: seen {} filtered {} emitted {} ok {} failed {} (nospc {} again {} noent {} other {})", t.seen, t.filtered, t.emitted, t.output_ok, t.failed(), t.fail_nospc, t.fail_again, t.fail_noent, t.fail_other);
    println!(
        "  reader: samples {} lost {} (+{} counted by the kernel after the last report)",
        s.samples, s.lost_reported, s.lost_unreported
    );
    let lost = s.lost_reported + s.lost_unreported;
    let pct = if t.emitted > 0 {
        100.0 * lost as f64 / t.emitted as f64
    } else {
        0.0
    };
    println!(
        "  lost {:.3}% of emitted; ledger {}",
        pct,
        if s.balanced {
            "balanced: emitted = read + lost"
        } else {
            "DOES NOT BALANCE"
        }
    );
    println!("  writer: {:.0} records/s, {:.0} MB/s while busy; reader waited on it {} times; file {} bytes", s.writer_records_per_s, s.writer_mb_per_s, s.reader_waits, s.file_bytes);
    if s.write_error.is_some() {
        println!(
            "  stopped early by a write error: the file holds the first {} of the {} samples read, and ends on a whole block",
            s.samples_stored, s.samples
        );
    }
}
