//! What a plan enumerates: the variants as it runs them ([`PlanVariant`],
//! their knobs set and the layouts and transports asked of them checked), and
//! its cells ([`Plan::cells`]): captures x ring sizes x variants x layouts x
//! transports x wakeups x modes, each a [`PlannedCell`] or a skipped series
//! with the reason.

use std::path::Path;

use super::check::{exec_reader, knobs_label, Bad};
use super::config::VariantEntry;
use super::{ExecReader, Mode, Plan, PlanVariant};
use crate::capture::Capture;
use crate::experiment::kernel::EXEC_READER;
use crate::experiment::results::{CellKey, SkippedCell};
use crate::pipeline::{Knobs, Variant};
use crate::replay::Wakeup;
use probes::abi::Layout;
use probes::Transport;

/// One cell of the plan, before it runs.
#[derive(Debug, Clone)]
pub struct PlannedCell {
    /// Position in the plan's order.
    pub index: usize,
    pub key: CellKey,
    pub(crate) capture: usize,
    pub(crate) variant: &'static Variant,
    pub(crate) knobs: Knobs,
    pub(crate) layout: Layout,
    pub(crate) transport: Transport,
    /// Data bytes of one ring.
    pub(crate) ring_bytes: u64,
    /// Perf rings (None: the ring buffer, one ring).
    pub(crate) rings: Option<u32>,
    pub(crate) wakeup: Wakeup,
    pub(crate) mode: Mode,
    /// The outside reader of an `exec:` cell (its `variant` is [`EXEC_READER`]).
    pub(crate) exec: Option<ExecReader>,
}

/// One ring's bytes and the number of perf rings for `total` bytes of ring
/// memory on `transport`.
pub(crate) fn ring_split(
    transport: Transport,
    capture: &Capture,
    total: u64,
) -> (u64, Option<u32>) {
    match transport {
        Transport::Perf => {
            let rings = if capture.meta.transport == Transport::Perf {
                capture.meta.rings.max(1)
            } else {
                1
            };
            // Largest power of two that fits total / rings (the kernel wants
            // a power-of-two count of pages per CPU), at least one page.
            let per = (total / rings as u64).max(4096);
            (1u64 << (63 - per.leading_zeros()), Some(rings))
        }
        Transport::Ringbuf => (1u64 << (63 - total.max(4096).leading_zeros()), None),
    }
}

impl Plan {
    /// Every cell the plan makes with `captures` (opened from
    /// [`Plan::captures`], in order): captures x ring sizes x variants x
    /// layouts x transports x wakeups x modes. Cells of the `layouts` and
    /// `transports` axes that a variant cannot read come back as skipped,
    /// with the reason.
    pub fn cells(&self, captures: &[Capture]) -> (Vec<PlannedCell>, Vec<SkippedCell>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (ci, capture) in captures.iter().enumerate() {
            let capture_name = Path::new(&capture.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            for &total in &self.ring_bytes {
                for pv in &self.variants {
                    let v = pv.variant;
                    // An outside reader defaults to the capture's own layout and transport.
                    let (layout, transport) = match &pv.exec {
                        Some(_) => (capture.meta.layout, capture.meta.transport),
                        None => (v.layout, v.transport),
                    };
                    let layouts = pick(&pv.layouts, &self.layouts, layout);
                    let transports = pick(&pv.transports, &self.transports, transport);
                    // An outside reader writes to no sink of dropbench's.
                    let (variant, sink, broker) = match &pv.exec {
                        Some(x) => (x.series_name(), "none".to_string(), String::new()),
                        None => (
                            v.name.to_string(),
                            self.config.sink.clone(),
                            CellKey::broker_of(&self.config.sink, self.config.brokers.as_deref()),
                        ),
                    };
                    for &layout in &layouts {
                        for &transport in &transports {
                            let wakeups = match transport {
                                Transport::Perf => &self.perf_wakeups,
                                Transport::Ringbuf => &self.ringbuf_wakeups,
                            };
                            for &wakeup in wakeups {
                                let (ring_bytes, rings) = ring_split(transport, capture, total);
                                for &mode in &self.modes {
                                    let key = CellKey {
                                        variant: variant.clone(),
                                        capture: capture_name.clone(),
                                        layout: layout.to_string(),
                                        transport: transport.to_string(),
                                        ring_total_bytes: ring_bytes * rings.unwrap_or(1) as u64,
                                        wakeup: wakeup.to_string(),
                                        sink: sink.clone(),
                                        mode,
                                        knobs: pv.knobs_label.clone(),
                                        broker: broker.clone(),
                                        profile: CellKey::this_profile(),
                                    };
                                    if !v.supports(layout, transport) {
                                        skipped.push(SkippedCell {
                                            key,
                                            reason: unsupported(v, layout, transport),
                                        });
                                        continue;
                                    }
                                    if pv.exec.is_some() && mode != Mode::Kernel {
                                        skipped.push(SkippedCell {
                                            key,
                                            reason: format!(
                                                "an exec: reader reads only the kernel's real rings (pinned on bpffs): it runs in kernel mode, not {}",
                                                mode.name()
                                            ),
                                        });
                                        continue;
                                    }
                                    out.push(PlannedCell {
                                        index: out.len(),
                                        key,
                                        capture: ci,
                                        variant: v,
                                        knobs: pv.knobs,
                                        layout,
                                        transport,
                                        ring_bytes,
                                        rings,
                                        wakeup,
                                        mode,
                                        exec: pv.exec.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        (out, skipped)
    }
}

/// A variant's own list if it has one, else the axis, else its default.
fn pick<T: Copy>(own: &[T], axis: &[T], default: T) -> Vec<T> {
    if !own.is_empty() {
        own.to_vec()
    } else if !axis.is_empty() {
        axis.to_vec()
    } else {
        vec![default]
    }
}

fn unsupported(v: &Variant, layout: Layout, transport: Transport) -> String {
    let names = |xs: Vec<String>| xs.join(", ");
    format!(
        "variant {} cannot read {layout} records from {transport}: it reads layouts {} and transports {}",
        v.name,
        names(v.layouts.iter().map(|l| l.to_string()).collect()),
        names(v.transports.iter().map(|t| t.to_string()).collect()),
    )
}

/// The variants, each with its knobs set and the layouts and transports
/// asked of it checked against what it can read.
pub(super) fn plan_variants(entries: &[VariantEntry]) -> Result<Vec<PlanVariant>, Bad> {
    if entries.is_empty() {
        return Ok(crate::pipeline::VARIANTS
            .iter()
            .filter(|v| v.in_default_sweep)
            .map(|v| PlanVariant {
                variant: v,
                exec: None,
                knobs: (v.knobs)(),
                knobs_label: String::new(),
                layouts: Vec::new(),
                transports: Vec::new(),
            })
            .collect());
    }
    let mut out: Vec<PlanVariant> = Vec::new();
    for e in entries {
        let name = e.name();
        let at = |what: String, knob: Option<&str>| Bad {
            key: match knob {
                Some(k) => format!("variants: {name}: {k}"),
                None => "variants".into(),
            },
            near: std::iter::once(format!("\"{name}\""))
                .chain(knob.map(str::to_string))
                .collect(),
            what,
        };
        if let Some(exec) = exec_reader(e).map_err(|(w, knob)| at(w, knob))? {
            let settings = match e {
                VariantEntry::Set(s) => Some(s.as_ref()),
                VariantEntry::Name(_) => None,
            };
            let (layouts, transports) = match settings {
                Some(s) => (
                    s.layouts
                        .iter()
                        .map(|l| l.parse::<Layout>().map_err(|w| at(w, Some("layouts"))))
                        .collect::<Result<Vec<_>, _>>()?,
                    s.transports
                        .iter()
                        .map(|t| {
                            t.parse::<Transport>()
                                .map_err(|w| at(w, Some("transports")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => (Vec::new(), Vec::new()),
            };
            if out
                .iter()
                .any(|o| o.exec.as_ref().is_some_and(|x| x.name == exec.name))
            {
                return Err(at(format!("{} is listed twice", exec.series_name()), None));
            }
            out.push(PlanVariant {
                variant: &EXEC_READER,
                exec: Some(exec),
                knobs: (EXEC_READER.knobs)(),
                knobs_label: String::new(),
                layouts,
                transports,
            });
            continue;
        }
        if matches!(e, VariantEntry::Set(s) if s.name.is_empty()) {
            return Err(at(
                "a variant table needs a name (or exec = \"COMMAND\" for your own reader)".into(),
                None,
            ));
        }
        let v = crate::pipeline::variant(name).map_err(|e| at(e.to_string(), None))?;
        let defaults = (v.knobs)();
        let mut knobs = defaults;
        let mut layouts = Vec::new();
        let mut transports = Vec::new();
        if let VariantEntry::Set(s) = e {
            let duration = |knob: &str, text: &str| {
                probes::units::parse_duration(text).map_err(|w| at(w, Some(knob)))
            };
            if let Some(x) = s.workers {
                knobs.workers = x;
            }
            if let Some(x) = s.channel_depth {
                knobs.channel_depth = x;
            }
            if let Some(x) = s.batch_size {
                knobs.batch_size = x;
            }
            if let Some(x) = s.sync_publish {
                knobs.sync_publish = x;
            }
            if let Some(x) = s.message_events {
                knobs.message_events = x;
            }
            if let Some(x) = &s.read_timeout {
                knobs.read_timeout = duration("read_timeout", x)?;
            }
            if let Some(x) = &s.extra_work {
                knobs.extra_work = duration("extra_work", x)?;
            }
            if let Some(x) = &s.path_cache {
                let bytes = probes::units::parse_bytes(x).map_err(|w| at(w, Some("path_cache")))?;
                knobs.path_cache = usize::try_from(bytes)
                    .map_err(|_| at(format!("{x}: too large"), Some("path_cache")))?;
            }
            if let Err(crate::pipeline::PipelineError::Knob {
                knob, value, why, ..
            }) = knobs.check(v.name)
            {
                return Err(at(format!("{value}: {why}"), Some(knob)));
            }
            for l in &s.layouts {
                let layout = l.parse::<Layout>().map_err(|w| at(w, Some("layouts")))?;
                if !v.layouts.contains(&layout) {
                    return Err(at(unsupported(v, layout, v.transport), Some("layouts")));
                }
                layouts.push(layout);
            }
            for t in &s.transports {
                let transport = t
                    .parse::<Transport>()
                    .map_err(|w| at(w, Some("transports")))?;
                if !v.transports.contains(&transport) {
                    return Err(at(unsupported(v, v.layout, transport), Some("transports")));
                }
                transports.push(transport);
            }
        }
        let knobs_label = knobs_label(&defaults, &knobs);
        if out
            .iter()
            .any(|o| o.variant.name == v.name && o.knobs_label == knobs_label)
        {
            return Err(at(
                format!("{name} is listed twice with the same knobs"),
                None,
            ));
        }
        out.push(PlanVariant {
            variant: v,
            exec: None,
            knobs,
            knobs_label,
            layouts,
            transports,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::experiment::plan::parse_config_str;
    use crate::replay::kernel::Ready;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/captures")
            .join(name)
    }

    fn cells(text: &str) -> (Vec<PlannedCell>, Vec<SkippedCell>) {
        let plan = Plan::parse(text, "t.toml").unwrap();
        let captures: Vec<Capture> = plan
            .captures()
            .iter()
            .map(|p| Capture::open(p, plan.loading()).unwrap())
            .collect();
        plan.cells(&captures)
    }

    #[test]
    fn the_default_plan_keeps_its_ten_series() {
        let text = format!(
            "captures = [{:?}, {:?}]\n",
            fixture("fixed4k-perf.pcapng"),
            fixture("real-programs-perf.pcapng")
        );
        let (run, skipped) = cells(&text);
        assert!(skipped.is_empty());
        let names: Vec<_> = run.iter().map(|c| c.key.variant.as_str()).collect();
        let v = ["seed-baseline", "batched", "compact", "tuned", "ringbuf"];
        assert_eq!(names, [v, v].concat());
        for (i, c) in run.iter().enumerate() {
            assert_eq!(c.index, i);
            assert_eq!(c.knobs, (c.variant.knobs)());
            assert_eq!(c.layout, c.variant.layout);
            assert_eq!(c.transport, c.variant.transport);
            assert!(c.key.knobs.is_empty());
        }
        // The ring buffer gets the 32 MiB whole; perf splits it per CPU.
        let ringbuf = run.iter().find(|c| c.key.variant == "ringbuf").unwrap();
        assert_eq!((ringbuf.ring_bytes, ringbuf.rings), (32 << 20, None));
    }

    #[test]
    fn axes_cross_variants_and_skip_what_a_variant_cannot_read() {
        let text = format!(
            "captures = [{:?}]\nlayouts = [\"fixed4k\", \"compact\"]\nperf_wakeup = [\"events:1\", \"events:64\"]\n\
             variants = [\"batched\", \"compact\", {{ name = \"batched\", workers = 4, extra_work = \"1us\", path_cache = \"1MiB\" }}]\n",
            fixture("fixed4k-perf.pcapng")
        );
        let (run, skipped) = cells(&text);
        // 3 variants x 2 layouts x 2 perf wakeups, less compact on fixed4k.
        assert_eq!(run.len(), 10);
        assert_eq!(skipped.len(), 2);
        for s in &skipped {
            assert_eq!(
                (s.key.variant.as_str(), s.key.layout.as_str()),
                ("compact", "fixed4k")
            );
            assert!(s.reason.contains("cannot read fixed4k"), "{}", s.reason);
        }
        let tuned: Vec<_> = run.iter().filter(|c| !c.key.knobs.is_empty()).collect();
        assert_eq!(tuned.len(), 4);
        for c in tuned {
            assert_eq!(c.key.knobs, "workers=4,path_cache=1MiB");
            assert_eq!(c.knobs.workers, 4);
            assert_eq!(c.knobs.path_cache, 1 << 20);
            assert_eq!(c.knobs.extra_work, Duration::from_micros(1));
            assert_eq!(c.knobs.channel_depth, (c.variant.knobs)().channel_depth);
        }
        // Keys stay distinct.
        let mut keys: Vec<_> = run.iter().map(|c| c.key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), run.len());
    }

    #[test]
    fn exec_readers_run_in_kernel_mode_only_and_go_by_their_name() {
        let text = format!(
            "captures = [{:?}]\nmodes = [\"replay\", \"kernel\"]\nsink = \"null\"\n\
             variants = [\"batched\", \"exec:./reader --x, y\",\n  \
             {{ exec = \"bpftool map event_pipe pinned $DROPBENCH_PIN_EVENTS\", name = \"bpftool\", transports = [\"perf\"], drain = \"1s\", ready = \"after:200ms\" }}]\n",
            fixture("fixed4k-perf.pcapng")
        );
        let (run, skipped) = cells(&text);
        let names: Vec<(&str, &str)> = run
            .iter()
            .map(|c| (c.key.variant.as_str(), c.key.mode.name()))
            .collect();
        assert_eq!(
            names,
            [
                ("batched", "replay"),
                ("batched", "kernel"),
                ("exec:./reader --x, y", "kernel"),
                ("exec:bpftool", "kernel"),
            ]
        );
        // Their replay cells are skipped, saying why.
        assert_eq!(skipped.len(), 2);
        for s in &skipped {
            assert!(s.key.variant.starts_with("exec:"), "{:?}", s.key);
            assert_eq!(s.key.mode, Mode::Replay);
            assert!(s.reason.contains("kernel mode"), "{}", s.reason);
        }
        let bpftool = &run[3];
        let x = bpftool.exec.as_ref().unwrap();
        assert_eq!(
            x.command,
            "bpftool map event_pipe pinned $DROPBENCH_PIN_EVENTS"
        );
        assert_eq!(x.drain, Duration::from_secs(1));
        assert_eq!(x.ready, Ready::After(Duration::from_millis(200)));
        // The capture's own layout and transport; no sink of dropbench's.
        assert_eq!(
            (bpftool.layout, bpftool.transport),
            (Layout::Fixed4k, Transport::Perf)
        );
        assert_eq!(
            (bpftool.key.sink.as_str(), bpftool.key.broker.as_str()),
            ("none", "")
        );
        assert!(run[1].exec.is_none() && run[1].key.sink == "null");
        // It round-trips through plan.toml.
        let cfg = parse_config_str(&text, "t.toml").unwrap();
        let again = toml::to_string(&cfg).unwrap();
        assert_eq!(parse_config_str(&again, "t.toml").unwrap(), cfg, "{again}");
    }
}
