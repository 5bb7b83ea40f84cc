//! A capture rewritten into another event layout, for cells whose layout is
//! not the one the capture was recorded in.

use std::path::Path;

use probes::abi::Layout;

use crate::capture::{Capture, CaptureError, CaptureWriter, Loading};

/// The same events in another layout, as the probe would have emitted them in that layout
/// (compact <-> fixed4k), written next to `dir` and loaded back.
pub fn relayout(src: &Capture, layout: Layout, dir: &Path) -> Result<Capture, CaptureError> {
    use probes::abi::{encode_event, Event};
    use probes::record::RecordRef;
    let path = dir.join(format!(
        "{}-as-{}.pcapng",
        Path::new(&src.file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("capture"),
        layout.name()
    ));
    let mut meta = src.meta.clone();
    meta.layout = layout;
    let mut w = CaptureWriter::create(&path, &meta)?;
    let mut buf = Vec::new();
    let mut err = None;
    let read = src.for_each(|e| {
        if err.is_some() {
            return;
        }
        let r = match e.rec {
            RecordRef::Sample {
                ring,
                origin_ns,
                data,
            } => match Event::decode(data) {
                Ok(ev) => {
                    encode_event(layout, &ev.header, ev.path, &mut buf);
                    w.write(RecordRef::Sample {
                        ring,
                        origin_ns,
                        data: &buf,
                    })
                }
                Err(_) => w.write(e.rec),
            },
            lost => w.write(lost),
        };
        if let Err(x) = r {
            err = Some(x);
        }
    });
    read?;
    if let Some(e) = err {
        return Err(e);
    }
    w.finish(&[])?;
    // Held as its source is: a streamed capture's relayout is streamed too.
    Capture::open(
        &path,
        if src.is_streamed() {
            Loading::Stream
        } else {
            Loading::Auto
        },
    )
}
