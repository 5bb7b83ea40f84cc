//! `harness fidelity --run CMD`: how well replay predicts a real program's
//! loss, judged over repeats (root). The plan and the statistics are in
//! [`crate::experiment::fidelity`]; this file parses the options, prints the
//! runs and the tables, and writes `fidelity.json` and `fidelity.html`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use probes::abi::Layout;
use probes::units::{format_bytes, parse_bytes, parse_duration};
use probes::Transport;

use crate::experiment::fidelity::{
    self, CoRunnerSides, FidelityCell, FidelityPlan, FidelityResults, Side,
};
use crate::experiment::verdict::VerdictRule;
use crate::replay::Wakeup;

#[derive(Debug, clap::Args)]
pub struct FidelityArgs {
    /// The command whose traffic is traced (run with `sh -c`, in a cgroup of
    /// its own, once per run: it should do the same work every time).
    #[arg(long)]
    pub run: String,
    /// Who reads the rings, on every side: pipeline variants, or `recorder`
    /// (`harness record`'s reader and writer, to predict a recording).
    #[arg(long, value_delimiter = ',', default_value = "seed-baseline,compact")]
    pub variant: Vec<String>,
    /// Ring sizes (perf: per CPU).
    #[arg(long, value_delimiter = ',', default_value = "16KiB,256KiB,4MiB", value_parser = parse_bytes)]
    pub ring_bytes: Vec<u64>,
    /// Wakeup policies (a watermark in % is of each cell's ring).
    #[arg(long, value_delimiter = ',', default_value = "events:1,watermark:50%")]
    pub wakeup: Vec<String>,
    #[arg(long, default_value = "compact")]
    pub layout: Layout,
    #[arg(long, default_value = "perf")]
    pub transport: Transport,
    /// Runs per side and cell.
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// The reference recording's ring (perf: per CPU), large enough to lose nothing.
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    pub reference_ring_bytes: u64,
    /// Replay without the co-runner (off), with it (on), or both in turn (both).
    #[arg(long, default_value = "both")]
    pub co_runner: CoRunnerSides,
    /// A live run must last the warm-up and this window to be judged.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub window: Duration,
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// A run of the command longer than this is stopped and not judged.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub time_limit: Duration,
    /// Folder for fidelity.json and fidelity.html (default results/fidelity/<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl FidelityArgs {
    fn plan(&self, out: &std::path::Path) -> anyhow::Result<FidelityPlan> {
        let mut cells = Vec::new();
        for v in &self.variant {
            let reader = fidelity::Reader::parse(v.trim())?;
            for &bytes in &self.ring_bytes {
                for w in &self.wakeup {
                    let wakeup = Wakeup::parse(self.transport, bytes as usize, w.trim())
                        .map_err(|e| anyhow::anyhow!("--wakeup {w}: {e}"))?;
                    cells.push(FidelityCell {
                        reader,
                        ring_bytes: bytes,
                        wakeup,
                    });
                }
            }
        }
        Ok(FidelityPlan {
            command: self.run.clone(),
            layout: self.layout,
            transport: self.transport,
            cells,
            repeats: self.repeats,
            reference_ring_bytes: self.reference_ring_bytes,
            co_runner: self.co_runner,
            rule: VerdictRule {
                warmup_ns: self.warmup.as_nanos() as u64,
                window_ns: self.window.as_nanos() as u64,
                ..VerdictRule::default()
            },
            time_limit: self.time_limit,
            scratch: out.join("references"),
        })
    }
}

pub fn run(args: FidelityArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("results/fidelity/{t}"))
    });
    let plan = args.plan(&out)?;
    plan.check()?;
    println!(
        "fidelity  `{}`: {} cell(s) x {} repeat(s); each repeat records a reference ({} per ring), runs live, and replays it ({})",
        plan.command,
        plan.cells.len(),
        plan.repeats,
        format_bytes(plan.reference_ring_bytes),
        plan.replay_sides()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let results = fidelity::run(&plan, |line| println!("  {line}"))?;
    let _ = std::fs::remove_dir(&plan.scratch);
    let text = tables(&results);
    print!("{text}");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("fidelity.json");
    crate::results::write_atomically(&json, &serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let html = out.join("fidelity.html");
    crate::results::write_atomically(
        &html,
        crate::export::fidelity_page::render(&results).as_bytes(),
    )
    .with_context(|| format!("writing {}", html.display()))?;
    let txt = out.join("fidelity.txt");
    crate::results::write_atomically(&txt, text.as_bytes())
        .with_context(|| format!("writing {}", txt.display()))?;
    println!("results   {}\nreport    {}", json.display(), html.display());
    Ok(())
}

/// One table per replay side: each cell's live and replay distributions.
pub fn tables(r: &FidelityResults) -> String {
    let mut s = String::new();
    let sides: Vec<Side> = r
        .cells
        .first()
        .map(|c| c.sides.iter().skip(1).map(|x| x.side).collect())
        .unwrap_or_default();
    for side in sides {
        s += &format!(
            "\n{} against live, lost % over {} repeats (median [q1, q3]; zero-loss runs; Mann-Whitney p; holds = within {} points or inside live's IQR)\n",
            side.name(),
            r.repeats,
            r.tolerance_pp
        );
        s += &format!(
            "{:<34} {:>24} {:>6} {:>24} {:>6} {:>7} {:>6} {:>5}  reader\n",
            "cell",
            "live",
            "zero",
            side.name(),
            "zero",
            "gap pp",
            "p",
            "holds"
        );
        let mut held = 0;
        for c in &r.cells {
            let live = &c.sides[0];
            let Some(rep) = c.sides.iter().find(|x| x.side == side) else {
                continue;
            };
            let a = c.agreement.iter().find(|a| a.side == side);
            let dist = |x: &fidelity::SideResult| {
                x.lost_pct.map_or("(none judged)".into(), |d| {
                    format!("{:.2} [{:.2}, {:.2}]", d.median, d.q1, d.q3)
                })
            };
            held += usize::from(a.is_some_and(|a| a.holds));
            s += &format!(
                "{:<34} {:>24} {:>6} {:>24} {:>6} {:>7} {:>6} {:>5}  {} / {}\n",
                c.label,
                dist(live),
                format!("{}/{}", live.zero_loss_runs, live.judged_runs),
                dist(rep),
                format!("{}/{}", rep.zero_loss_runs, rep.judged_runs),
                a.map_or("-".into(), |a| format!("{:+.2}", a.median_gap_pp)),
                a.and_then(|a| a.rank_sum)
                    .map_or("-".into(), |t| format!("{:.3}", t.p)),
                a.map_or("-", |a| if a.holds { "yes" } else { "no" }),
                live.reader,
                rep.reader
            );
        }
        s += &format!("{held} of {} cells hold\n", r.cells.len());
    }
    s
}
