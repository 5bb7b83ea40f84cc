//! Fidelity: do replay and kernel-backed replay predict what the kernel does
//! live, cell by cell?
//!
//! For every cell of a grid (capture x variant x ring size), the same trial is
//! run in three modes, with the same verdict rule:
//! - **replay**: the capture paced into emulated rings (`experiment::trial`);
//! - **kernel**: the capture paced into the kernel's real rings by the
//!   injector (`experiment::kernel`), read by the same variant;
//! - **live**: the load generator issues the capture's op mix and paths at the
//!   same rate in events/s through the real probes and rings
//!   (`experiment::live`), read by the same variant into the same sink.
//!
//! First each mode's zero-loss rate is searched (NDR, steady-state verdict),
//! then all three run at 0.8x, 1x and 1.25x the replay NDR. The tables print
//! lost % and verdicts side by side with each mode's difference from live:
//! lost % agrees within 2 percentage points, an NDR within 10 % (`ok` in the
//! `agree` columns, `NO` otherwise).
//!
//! Then real-program cells: a real command (`FIDELITY_COMMAND`, default
//! `du -s /usr/share`) traced live, against replays of its recording with and
//! without the co-runner, over repeats (`experiment::fidelity`, the engine of
//! `harness fidelity`; docs/fidelity.md): each side's median and
//! interquartile range of lost %, its zero-loss runs, and a rank-sum test.
//!
//! `sudo cargo bench -p harness --bench fidelity` (root: it attaches the
//! probes). Env: `FIDELITY_CAPTURES` (comma-separated, default both bundled
//! fixed4k captures), `FIDELITY_VARIANTS` (default batched,compact,ringbuf),
//! `FIDELITY_RINGS` (default 1MiB,32MiB), `FIDELITY_WINDOW` (default 1s);
//! for the real-program cells `FIDELITY_COMMAND`, `FIDELITY_PROGRAM_VARIANTS`
//! (default seed-baseline,compact), `FIDELITY_PROGRAM_RINGS` (default
//! 16KiB,256KiB,4MiB per CPU), `FIDELITY_WAKEUPS` (default
//! events:1,watermark:50%) and `FIDELITY_REPEATS` (default 10).
//! Under `cargo test --benches` (no `--bench` argument) it runs one cell
//! briefly as a smoke test, and skips without root.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use harness::capture::Capture;
use harness::classify::Classifier;
use harness::experiment::kernel::{run_kernel_trial, KernelReader, KernelSetup};
use harness::experiment::live::{run_live_trial, LiveSetup, Traffic};
use harness::experiment::search::ZeroLossSearch;
use harness::experiment::trial::{mean_sample_len, run_trial, RateShape, TrialSetup};
use harness::experiment::verdict::{VerdictKind, VerdictRule};
use harness::replay::Wakeup;
use harness::sink::{NullSink, SinkSpec};
use probes::Transport;

/// Lost % of a mode agrees with live's within this many percentage points.
const LOST_PP: f64 = 2.0;
/// A mode's NDR agrees with live's within this fraction of live's.
const NDR_REL: f64 = 0.10;

/// One cell's zero-loss rates, per mode.
struct NdrRow {
    capture: String,
    variant: String,
    ring_total: u64,
    replay: Option<f64>,
    kernel: Option<f64>,
    live: Option<f64>,
}

fn env(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

/// One mode's trial at one rate: (lost %, verdict, clean).
#[derive(Debug, Clone)]
struct Outcome {
    lost_pct: f64,
    verdict: VerdictKind,
}

impl Outcome {
    fn clean(&self) -> bool {
        self.verdict == VerdictKind::Clean
    }
}

struct Cell<'a> {
    relaid: &'a Capture,
    traffic: &'a Traffic,
    variant: &'static harness::pipeline::Variant,
    ring_total: u64,
    rule: VerdictRule,
    classifier: Arc<Classifier>,
}

impl Cell<'_> {
    fn rings(&self) -> (u64, u32) {
        let cpus = probes::loader::online_cpus().map_or(1, |c| c.len() as u64);
        match self.variant.transport {
            Transport::Perf => {
                let per = (self.ring_total / cpus).max(4096);
                (1u64 << (63 - per.leading_zeros()), cpus as u32)
            }
            Transport::Ringbuf => (1u64 << (63 - self.ring_total.leading_zeros()), 1),
        }
    }
    fn wakeup(&self) -> Wakeup {
        match self.variant.transport {
            Transport::Perf => Wakeup::Events(64),
            Transport::Ringbuf => Wakeup::NoWakeupPoll(Duration::from_millis(1)),
        }
    }

    fn replay(&self, rate: f64) -> Outcome {
        let (ring_bytes, rings) = self.rings();
        let setup = TrialSetup {
            variant: self.variant,
            knobs: (self.variant.knobs)(),
            capture: self.relaid,
            transport: self.variant.transport,
            ring_bytes,
            rings: (self.variant.transport == Transport::Perf).then_some(rings),
            wakeup: self.wakeup(),
            sink: &SinkSpec::Null,
            classifier: self.classifier.clone(),
            rule: self.rule,
            // The load generator paces evenly: so does replay, for a like comparison.
            shape: RateShape::Uniform,
            stop_at_loss: None,
        };
        let t = run_trial(&setup, rate, Arc::new(NullSink::new())).expect("replay trial");
        Outcome {
            lost_pct: 100.0 * t.run.replay.lost as f64 / t.run.replay.offered.max(1) as f64,
            verdict: t.verdict.kind,
        }
    }

    fn kernel(&self, rate: f64) -> Outcome {
        let (ring_bytes, _) = self.rings();
        let setup = KernelSetup {
            reader: KernelReader::Variant {
                variant: self.variant,
                knobs: (self.variant.knobs)(),
                sink: &SinkSpec::Null,
                classifier: self.classifier.clone(),
            },
            capture: self.relaid,
            transport: self.variant.transport,
            ring_bytes,
            wakeup: self.wakeup(),
            rule: self.rule,
            shape: RateShape::Uniform,
            stop_at_loss: None,
        };
        let t = run_kernel_trial(&setup, rate, Arc::new(NullSink::new())).expect("kernel trial");
        Outcome {
            lost_pct: t.lost_pct(),
            verdict: t.verdict.kind,
        }
    }

    fn live(&self, rate: f64) -> Outcome {
        let (ring_bytes, _) = self.rings();
        let setup = LiveSetup {
            variant: self.variant,
            knobs: (self.variant.knobs)(),
            traffic: harness::experiment::live::LiveTraffic::Generated(self.traffic),
            mean_sample_len: mean_sample_len(self.relaid),
            layout: self.variant.layout,
            transport: self.variant.transport,
            ring_bytes,
            wakeup: self.wakeup(),
            sink: &SinkSpec::Null,
            classifier: self.classifier.clone(),
            rule: self.rule,
            load_cpu: None,
            load_threads: 1,
            run_time_stats: false,
        };
        let t = run_live_trial(&setup, rate, Arc::new(NullSink::new())).expect("live trial");
        let k = t.kernel.total();
        Outcome {
            lost_pct: 100.0 * k.failed() as f64 / k.emitted.max(1) as f64,
            verdict: t.verdict.kind,
        }
    }
}

/// The highest clean rate by `trial` (a busy machine's producer-short trial is retried twice).
fn ndr(search: &ZeroLossSearch, mut trial: impl FnMut(f64) -> Outcome) -> Option<f64> {
    search
        .run(|rate| {
            let mut o = trial(rate);
            for _ in 0..2 {
                if !matches!(
                    o.verdict,
                    VerdictKind::ProducerShort | VerdictKind::Unmeasured
                ) {
                    break;
                }
                o = trial(rate);
            }
            Ok::<u64, std::convert::Infallible>(u64::from(!o.clean()))
        })
        .ok()
        .and_then(|o| o.zero_loss_rate)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no
    // args: a quick smoke pass of one cell there.
    let smoke = !std::env::args().any(|a| a == "--bench");
    if let Err(e) = probes::loader::check_privileges() {
        eprintln!("fidelity: skipped: {e}");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures");
    let captures: Vec<PathBuf> = if smoke {
        vec![root.join("fixed4k-perf.pcapng")]
    } else {
        env(
            "FIDELITY_CAPTURES",
            &format!(
                "{},{}",
                root.join("fixed4k-perf.pcapng").display(),
                root.join("real-programs-perf.pcapng").display()
            ),
        )
        .split(',')
        .map(PathBuf::from)
        .collect()
    };
    let variants: Vec<String> = if smoke {
        vec!["compact".into()]
    } else {
        env("FIDELITY_VARIANTS", "batched,compact,ringbuf")
            .split(',')
            .map(String::from)
            .collect()
    };
    let rings: Vec<u64> = if smoke {
        vec![1 << 20]
    } else {
        env("FIDELITY_RINGS", "1MiB,32MiB")
            .split(',')
            .map(|r| probes::units::parse_bytes(r).expect("FIDELITY_RINGS"))
            .collect()
    };
    let window =
        probes::units::parse_duration(&env("FIDELITY_WINDOW", if smoke { "300ms" } else { "1s" }))
            .expect("FIDELITY_WINDOW");
    let rule = VerdictRule {
        warmup_ns: 250_000_000,
        window_ns: window.as_nanos() as u64,
        ..VerdictRule::default()
    };
    let search = ZeroLossSearch {
        lo: if smoke { 5_000.0 } else { 20_000.0 },
        hi: if smoke { 10_000.0 } else { 1_500_000.0 },
        resolution: 0.10,
        max_trials: if smoke { 2 } else { 12 },
    };
    let classifier = Arc::new(Classifier::default_rules());
    let tmp = tempfile::tempdir().expect("temp dir");
    println!(
        "fidelity: replay (emulated rings) and kernel (injected into the real rings) vs live (real probes and rings), same variant, null sink, {}",
        rule.describe()
    );
    println!(
        "agreement with live: lost % within {LOST_PP} pp, NDR within {:.0} %",
        NDR_REL * 100.0
    );
    println!(
        "{:<26} {:<9} {:>6} {:>9} | {:>8} {:<15} | {:>8} {:<15} | {:>8} {:<15} | {:>8} {:>5} | {:>8} {:>5}",
        "capture",
        "variant",
        "ring",
        "rate/s",
        "replay %",
        "verdict",
        "kernel %",
        "verdict",
        "live %",
        "verdict",
        "rep-live",
        "agree",
        "ker-live",
        "agree"
    );
    let mut ndr_rows = Vec::new();
    for path in &captures {
        let capture = Capture::load(path).expect("capture");
        let traffic = Traffic::of(&capture).expect("traffic");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for v in &variants {
            let variant = harness::pipeline::variant(v).expect("variant");
            let relaid = if variant.layout == capture.meta.layout {
                Capture::load(path).expect("capture")
            } else {
                harness::experiment::relayout::relayout(&capture, variant.layout, tmp.path())
                    .expect("relayout")
            };
            for &ring_total in &rings {
                let cell = Cell {
                    relaid: &relaid,
                    traffic: &traffic,
                    variant,
                    ring_total,
                    rule,
                    classifier: classifier.clone(),
                };
                let replay_ndr = ndr(&search, |r| cell.replay(r));
                let kernel_ndr = ndr(&search, |r| cell.kernel(r));
                let live_ndr = ndr(&search, |r| cell.live(r));
                let knee = replay_ndr.unwrap_or(search.lo);
                for f in [0.8, 1.0, 1.25] {
                    let rate = knee * f;
                    let (r, k, l) = (cell.replay(rate), cell.kernel(rate), cell.live(rate));
                    let agree = |d: f64| if d.abs() <= LOST_PP { "ok" } else { "NO" };
                    let (dr, dk) = (r.lost_pct - l.lost_pct, k.lost_pct - l.lost_pct);
                    println!(
                        "{:<26} {:<9} {:>5}M {:>9.0} | {:>8.3} {:<15} | {:>8.3} {:<15} | {:>8.3} {:<15} | {:>+8.3} {:>5} | {:>+8.3} {:>5}",
                        name,
                        v,
                        ring_total >> 20,
                        rate,
                        r.lost_pct,
                        r.verdict.name(),
                        k.lost_pct,
                        k.verdict.name(),
                        l.lost_pct,
                        l.verdict.name(),
                        dr,
                        agree(dr),
                        dk,
                        agree(dk)
                    );
                }
                ndr_rows.push(NdrRow {
                    capture: name.clone(),
                    variant: v.clone(),
                    ring_total,
                    replay: replay_ndr,
                    kernel: kernel_ndr,
                    live: live_ndr,
                });
            }
        }
    }
    real_program_cells(smoke, tmp.path());
    println!("\nzero-loss rate (steady-state verdict), each mode against live:");
    println!(
        "{:<26} {:<9} {:>6} {:>10} {:>10} {:>10} | {:>8} {:>5} | {:>8} {:>5}",
        "capture",
        "variant",
        "ring",
        "replay",
        "kernel",
        "live",
        "rep/live",
        "agree",
        "ker/live",
        "agree"
    );
    for row in ndr_rows {
        let f = |x: Option<f64>| x.map_or("none".to_string(), |x| format!("{x:.0}"));
        // The relative difference from live, and whether it is within NDR_REL.
        let rel = |x: Option<f64>| match (x, row.live) {
            (Some(x), Some(l)) if l > 0.0 => {
                let d = x / l - 1.0;
                let ok = if d.abs() <= NDR_REL { "ok" } else { "NO" };
                (format!("{:+.1}%", d * 100.0), ok)
            }
            _ => ("-".to_string(), "-"),
        };
        let (rd, ra) = rel(row.replay);
        let (kd, ka) = rel(row.kernel);
        println!(
            "{:<26} {:<9} {:>5}M {:>10} {:>10} {:>10} | {:>8} {:>5} | {:>8} {:>5}",
            row.capture,
            row.variant,
            row.ring_total >> 20,
            f(row.replay),
            f(row.kernel),
            f(row.live),
            rd,
            ra,
            kd,
            ka
        );
    }
}

/// The real-program cells: `harness fidelity`'s engine over the env's grid.
fn real_program_cells(smoke: bool, tmp: &std::path::Path) {
    use harness::experiment::fidelity::{self, CoRunnerSides, FidelityCell, FidelityPlan};
    let list = |k: &str, d: &str| -> Vec<String> {
        env(k, d).split(',').map(|s| s.trim().to_string()).collect()
    };
    let (variants, rings, wakeups) = if smoke {
        (
            vec!["compact".into()],
            vec!["256KiB".into()],
            vec!["watermark:50%".into()],
        )
    } else {
        (
            list("FIDELITY_PROGRAM_VARIANTS", "seed-baseline,compact"),
            list("FIDELITY_PROGRAM_RINGS", "16KiB,256KiB,4MiB"),
            list("FIDELITY_WAKEUPS", "events:1,watermark:50%"),
        )
    };
    let mut cells = Vec::new();
    for v in &variants {
        let reader = fidelity::Reader::parse(v).expect("FIDELITY_PROGRAM_VARIANTS");
        for r in &rings {
            let ring_bytes = probes::units::parse_bytes(r).expect("FIDELITY_PROGRAM_RINGS");
            for w in &wakeups {
                let wakeup = Wakeup::parse(Transport::Perf, ring_bytes as usize, w)
                    .expect("FIDELITY_WAKEUPS");
                cells.push(FidelityCell {
                    reader,
                    ring_bytes,
                    wakeup,
                });
            }
        }
    }
    let plan = FidelityPlan {
        command: env("FIDELITY_COMMAND", "du -s /usr/share"),
        layout: probes::abi::Layout::Compact,
        transport: Transport::Perf,
        cells,
        repeats: if smoke {
            3
        } else {
            env("FIDELITY_REPEATS", "10")
                .parse()
                .expect("FIDELITY_REPEATS")
        },
        reference_ring_bytes: 64 << 20,
        co_runner: CoRunnerSides::Both,
        rule: VerdictRule {
            warmup_ns: 0,
            window_ns: 10_000_000,
            ..VerdictRule::default()
        },
        time_limit: Duration::from_secs(120),
        scratch: tmp.join("references"),
    };
    println!(
        "\nreal-program cells: `{}`, {} repeats per side (live, replay, replay + co-runner)",
        plan.command, plan.repeats
    );
    let r = fidelity::run(&plan, |_| {}).expect("fidelity");
    print!("{}", harness::cmd::fidelity::tables(&r));
}
