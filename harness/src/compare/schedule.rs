//! The order a comparison measures in, and the measuring.
//!
//! Pairs are the unit: in each pair every cell runs once on each side, back
//! to back, the side that goes first drawn at random (seeded; the seed is
//! printed and stored so a run can be repeated). Randomizing the order
//! within a pair (Abedi and Brecht's randomized multiple interleaved trials)
//! keeps a host that speeds up or slows down over seconds from favouring the
//! side that always runs second; ABBA would cancel a linear drift too, but a
//! drift with the period of a pair would then hit one side every time. Cells
//! are interleaved within a pair, so a slow minute of the host spreads over
//! every cell instead of sinking one.
//!
//! Saturated trials come first, for every pair; the loss trials follow at
//! each cell's loss rate, which is taken from the baseline's median
//! saturated throughput of this same job.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::callgrind::{self, PerEvent};
use super::judge::{judge_cell, loss_rate, CompareRules};
use super::trial::{run_trial, TrialFigures, TrialKind};
use super::{
    CellComparison, CompareCell, CompareInputError, CompareResults, Instructions, Pair, Side,
    SCHEMA,
};

/// Everything a comparison needs, parsed and checked.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub baseline: Side,
    pub candidate: Side,
    /// Knobs given to the candidate only (calibration: a known slowdown).
    pub candidate_knobs: Vec<String>,
    pub cells: Vec<CompareCell>,
    pub pairs: usize,
    pub trial: Duration,
    /// The loss rate as a fraction of the baseline's saturated throughput.
    pub loss_fraction: f64,
    /// Events of the smaller counted pass (the larger has twice as many).
    pub count_events: u64,
    pub rules: CompareRules,
    pub seed: u64,
    pub scratch: PathBuf,
}

/// A small seeded generator (xorshift64*): the order of each pair.
#[derive(Debug, Clone)]
pub struct Coin(u64);

impl Coin {
    pub fn new(seed: u64) -> Self {
        Coin(seed.max(1))
    }
    pub fn flip(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 63) == 1
    }
}

/// A seed from the clock, for runs not given one.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

fn trial(
    o: &CompareOptions,
    side: &Side,
    cell: &CompareCell,
    kind: TrialKind,
    length: Duration,
) -> Result<TrialFigures, CompareInputError> {
    let knobs: &[String] = if side.role == "candidate" {
        &o.candidate_knobs
    } else {
        &[]
    };
    run_trial(&side.binary, cell, knobs, kind, length, &o.scratch).map_err(|what| {
        CompareInputError::Cell {
            cell: cell.label(),
            role: side.role.clone(),
            what,
        }
    })
}

/// Both sides run each cell once, briefly, before anything is measured: a
/// cell one side cannot run, or that the sides run on different layouts or
/// sinks, stops the comparison here (exit 2).
fn probe(o: &CompareOptions, say: &mut dyn FnMut(&str)) -> Result<(), CompareInputError> {
    for cell in &o.cells {
        let short = Duration::from_millis(100);
        let b = trial(o, &o.baseline, cell, TrialKind::Saturated, short)?;
        let c = trial(o, &o.candidate, cell, TrialKind::Saturated, short)?;
        for (what, x, y) in [("layout", &b.layout, &c.layout), ("sink", &b.sink, &c.sink)] {
            if x != y {
                return Err(CompareInputError::Mismatch {
                    cell: cell.label(),
                    what: what.into(),
                    baseline: x.clone(),
                    candidate: y.clone(),
                });
            }
        }
        say(&format!("ready     {}: both sides run it", cell.label()));
    }
    Ok(())
}

/// Runs the comparison.
pub fn run(
    o: &CompareOptions,
    say: &mut dyn FnMut(&str),
) -> Result<CompareResults, CompareInputError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&o.scratch).map_err(|e| CompareInputError::Options {
        what: format!("{}: {e}", o.scratch.display()),
    })?;
    probe(o, say)?;
    let mut coin = Coin::new(o.seed);
    let mut cells: Vec<CellComparison> = o
        .cells
        .iter()
        .map(|c| CellComparison {
            cell: c.clone(),
            loss_rate: None,
            pairs: Vec::new(),
            instructions: None,
            checks: Vec::new(),
            first: None,
        })
        .collect();
    measure(o, &mut cells, &mut coin, say)?;
    // 3. Instructions per event, counted.
    if o.rules.wants("instructions") {
        count_all(o, &mut cells, say)?;
    }
    for cc in cells.iter_mut() {
        cc.checks = judge(o, cc)?;
    }
    confirm(o, &mut cells, &mut coin, say)?;
    Ok(CompareResults {
        schema: SCHEMA.into(),
        baseline: o.baseline.clone(),
        candidate: o.candidate.clone(),
        candidate_knobs: o.candidate_knobs.clone(),
        seed: o.seed,
        trial_ms: o.trial.as_millis() as u64,
        pairs: o.pairs,
        cells,
        measure_s: t0.elapsed().as_secs_f64(),
        host: format!(
            "{} ({} CPUs)",
            crate::host::cpu_model(),
            crate::host::cpus()
        ),
    })
}

fn judge(o: &CompareOptions, cc: &CellComparison) -> Result<Vec<super::Check>, CompareInputError> {
    judge_cell(&o.rules, cc).map_err(|what| CompareInputError::Cell {
        cell: cc.cell.label(),
        role: "both".into(),
        what,
    })
}

/// Cells with a timed check that failed are measured again, with fresh
/// pairs in a fresh order; each check's verdict is then
/// [`super::judge::confirmed`] over the two. Instruction counts are not
/// timed: their verdict stands as counted.
fn confirm(
    o: &CompareOptions,
    cells: &mut [CellComparison],
    coin: &mut Coin,
    say: &mut dyn FnMut(&str),
) -> Result<(), CompareInputError> {
    let failing = |cc: &CellComparison| {
        cc.checks
            .iter()
            .any(|k| k.verdict == super::judge::REGRESSION && k.figure != "instructions")
    };
    let mut again: Vec<CellComparison> = cells
        .iter()
        .filter(|cc| failing(cc))
        .map(|cc| CellComparison {
            pairs: Vec::new(),
            first: None,
            checks: Vec::new(),
            ..cc.clone()
        })
        .collect();
    if again.is_empty() {
        return Ok(());
    }
    say(&format!(
        "confirm   {} cell(s) failed a timed check: measuring them again with {} fresh pairs",
        again.len(),
        o.pairs
    ));
    measure(o, &mut again, coin, say)?;
    for a in again.iter_mut() {
        let cc = cells
            .iter_mut()
            .find(|c| c.cell == a.cell)
            .expect("a cell measured again is one of the cells");
        let second = judge(o, a)?;
        let first = std::mem::take(&mut cc.checks);
        cc.checks = first
            .iter()
            .zip(&second)
            .map(|(f, s)| {
                let mut k = s.clone();
                if k.figure != "instructions" {
                    k.verdict = super::judge::confirmed(&f.verdict, &s.verdict).into();
                }
                k
            })
            .collect();
        cc.first = Some(super::FirstMeasurement {
            pairs: std::mem::replace(&mut cc.pairs, std::mem::take(&mut a.pairs)),
            checks: first,
        });
        cc.loss_rate = a.loss_rate;
    }
    Ok(())
}

/// Measures `cells` pair by pair: saturated trials first, then the loss
/// trials at each cell's rate.
fn measure(
    o: &CompareOptions,
    cells: &mut [CellComparison],
    coin: &mut Coin,
    say: &mut dyn FnMut(&str),
) -> Result<(), CompareInputError> {
    let sides = |baseline_first: bool| {
        if baseline_first {
            [&o.baseline, &o.candidate]
        } else {
            [&o.candidate, &o.baseline]
        }
    };
    // 1. Saturated throughput and CPU per event.
    for p in 0..o.pairs {
        let mut line = format!("pair {:>2}/{}", p + 1, o.pairs);
        for cc in cells.iter_mut() {
            let baseline_first = coin.flip();
            let mut got: BTreeMap<&str, TrialFigures> = BTreeMap::new();
            for s in sides(baseline_first) {
                got.insert(
                    &s.role,
                    trial(o, s, &cc.cell, TrialKind::Saturated, o.trial)?,
                );
            }
            let (b, c) = (got["baseline"].clone(), got["candidate"].clone());
            line.push_str(&format!(
                "  {} {:+.1}%",
                cc.cell.variant,
                100.0 * (c.throughput / b.throughput.max(1.0) - 1.0)
            ));
            cc.pairs.push(Pair {
                first: if baseline_first {
                    "baseline"
                } else {
                    "candidate"
                }
                .into(),
                baseline: b,
                candidate: c,
                baseline_at_rate: None,
                candidate_at_rate: None,
            });
        }
        say(&line);
    }
    // 2. Loss at each cell's rate, from this job's baseline throughput.
    if o.rules.wants("loss") {
        for cc in cells.iter_mut() {
            cc.loss_rate = loss_rate(&o.rules, cc, o.loss_fraction);
        }
        for p in 0..o.pairs {
            let mut line = format!("loss {:>2}/{}", p + 1, o.pairs);
            for cc in cells.iter_mut() {
                let Some(rate) = cc.loss_rate else { continue };
                let baseline_first = coin.flip();
                for s in sides(baseline_first) {
                    let f = trial(o, s, &cc.cell, TrialKind::AtRate(rate), o.trial)?;
                    let pair = &mut cc.pairs[p];
                    if s.role == "baseline" {
                        pair.baseline_at_rate = Some(f);
                    } else {
                        pair.candidate_at_rate = Some(f);
                    }
                }
                let pair = &cc.pairs[p];
                let loss = |f: &Option<TrialFigures>| f.as_ref().map_or(0.0, |f| 100.0 * f.loss());
                line.push_str(&format!(
                    "  {} {:.2}%/{:.2}%",
                    cc.cell.variant,
                    loss(&pair.baseline_at_rate),
                    loss(&pair.candidate_at_rate)
                ));
            }
            say(&line);
        }
    }
    Ok(())
}

/// Counts every cell's variant on both sides (once per variant and knobs:
/// the count does not depend on the ring or the sink).
fn count_all(
    o: &CompareOptions,
    cells: &mut [CellComparison],
    say: &mut dyn FnMut(&str),
) -> Result<(), CompareInputError> {
    if !callgrind::available() {
        say("instructions: not counted: valgrind is not installed (apt-get install valgrind)");
        return Ok(());
    }
    for s in [&o.baseline, &o.candidate] {
        if !super::side::can_count(&s.binary) {
            say(&format!(
                "instructions: not counted: the {} ({}) has no `count` command",
                s.role, s.source
            ));
            return Ok(());
        }
    }
    let mut done: BTreeMap<String, Instructions> = BTreeMap::new();
    for cc in cells.iter_mut() {
        let mut args = vec![
            cc.cell.capture.display().to_string(),
            "--variant".to_string(),
            cc.cell.variant.clone(),
        ];
        for k in &cc.cell.knobs {
            args.extend(["--knob".into(), k.clone()]);
        }
        let key = args.join(" ");
        if let Some(i) = done.get(&key) {
            cc.instructions = Some(i.clone());
            continue;
        }
        let mut per = Vec::new();
        for s in [&o.baseline, &o.candidate] {
            let mut a = args.clone();
            if s.role == "candidate" {
                for k in &o.candidate_knobs {
                    a.extend(["--knob".into(), k.clone()]);
                }
            }
            let n = o.count_events;
            let err = |e: callgrind::CallgrindError| CompareInputError::Cell {
                cell: cc.cell.label(),
                role: s.role.clone(),
                what: e.to_string(),
            };
            let small = callgrind::profile(&s.binary, &a, n, &o.scratch).map_err(err)?;
            let large = callgrind::profile(&s.binary, &a, 2 * n, &o.scratch).map_err(err)?;
            per.push(callgrind::per_event(&small, &large, n));
        }
        let candidate: PerEvent = per.pop().unwrap_or_default();
        let baseline: PerEvent = per.pop().unwrap_or_default();
        say(&format!(
            "counted   {}: {:.0} -> {:.0} instructions per event",
            cc.cell.variant, baseline.total, candidate.total
        ));
        let i = Instructions {
            events: o.count_events,
            baseline,
            candidate,
        };
        done.insert(key, i.clone());
        cc.instructions = Some(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coin_is_seeded_and_fair_enough() {
        let mut a = Coin::new(42);
        let mut b = Coin::new(42);
        let flips: Vec<bool> = (0..1000).map(|_| a.flip()).collect();
        assert_eq!(flips, (0..1000).map(|_| b.flip()).collect::<Vec<_>>());
        let heads = flips.iter().filter(|&&x| x).count();
        assert!((430..570).contains(&heads), "{heads}");
    }
}
