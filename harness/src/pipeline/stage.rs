//! The per-event stages every variant runs, as functions that are never
//! inlined, so that an instruction count (`harness count` under callgrind,
//! `compare::instructions`) can tell them apart by name:
//! `harness::pipeline::stage::{decode, classify, serialize, serialize_batched}`.
//! Each is one call per event; what a variant does around them (reading the
//! ring, copying, handing off) is the rest of its instructions.
//!
//! The names are part of the instruction check's contract with older builds:
//! renaming one makes a baseline built before the rename count it as "rest".

use std::time::{Duration, Instant};

use probes::abi::{DecodeError, Event};

use super::batches::MessageBatches;
use crate::classify::{Classification, Classifier, Scratch};
use crate::sink::message::{encode_key, encode_value, KEY_LEN};

/// The names [`decode`], [`classify`] and the serializers go by in a
/// profile, with the stage each counts towards.
pub const MARKERS: &[(&str, &str)] = &[
    ("harness::pipeline::stage::decode", "decode"),
    ("harness::pipeline::stage::classify", "classify"),
    ("harness::pipeline::stage::serialize", "serialize"),
    ("harness::pipeline::stage::serialize_batched", "serialize"),
];

#[inline(never)]
pub fn decode(data: &[u8]) -> Result<Event<'_>, DecodeError> {
    Event::decode(data)
}

/// Classifies `ev`, after spinning `extra_work` (the knob that makes a
/// variant slower on purpose stands for a slower classifier). The spin is
/// timed: under callgrind, where time runs tens of times slower, it costs
/// what a few clock reads cost, not a tenth of the event.
#[inline(never)]
pub fn classify(
    c: &Classifier,
    ev: &Event<'_>,
    scratch: &mut Scratch,
    extra_work: Duration,
) -> Classification {
    if !extra_work.is_zero() {
        let until = Instant::now() + extra_work;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    c.classify(ev, scratch)
}

/// One event's Kafka key, and its value written into `value`.
#[inline(never)]
pub fn serialize(ev: &Event<'_>, v: &Classification, value: &mut Vec<u8>) -> [u8; KEY_LEN] {
    encode_value(ev, v, value);
    encode_key(ev)
}

/// One event into its lane's batch message; the lane when it is full.
#[inline(never)]
pub(crate) fn serialize_batched(
    b: &mut MessageBatches,
    ev: &Event<'_>,
    v: &Classification,
    origin_ns: u64,
) -> Option<usize> {
    b.push(ev, v, origin_ns)
}
