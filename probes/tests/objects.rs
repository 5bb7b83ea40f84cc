//! The committed BPF objects must be exactly what `bpf/build.sh` makes from the
//! committed sources (the cilium/ebpf habit: objects in git, plus the command
//! that rebuilds them, plus a test that they agree). Unprivileged: it needs
//! clang, not root.

mod support;

use std::path::Path;
use std::process::Command;

use support::skip_missing;

#[test]
fn committed_objects_match_their_sources() {
    let have_clang = Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_clang {
        skip_missing(
            "clang is not installed: ci/test.sh installs it (apt-get install clang libbpf-dev)",
        );
        return;
    }
    let bpf = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf");
    let out = tempfile::tempdir().unwrap();
    let st = Command::new("bash")
        .arg(bpf.join("build.sh"))
        .arg(out.path())
        .status()
        .unwrap();
    assert!(st.success(), "probes/bpf/build.sh failed");
    let mut n = 0;
    for entry in std::fs::read_dir(bpf.join("obj")).unwrap() {
        let committed = entry.unwrap().path();
        let name = committed.file_name().unwrap();
        let rebuilt = std::fs::read(out.path().join(name))
            .unwrap_or_else(|_| panic!("build.sh did not produce {name:?}"));
        assert!(
            std::fs::read(&committed).unwrap() == rebuilt,
            "{name:?} differs from its sources: run probes/bpf/build.sh and commit the objects"
        );
        n += 1;
    }
    assert_eq!(
        n, 6,
        "expected 6 objects: the probes (2 layouts x 2 transports) and the injector (2 transports)"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        n,
        "build.sh makes an object that is not committed"
    );
}
