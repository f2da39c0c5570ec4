//! Replays the kept fuzz corpus (`policy/fuzz/corpus/<target>/*`) through the fuzz targets'
//! properties, so every CI run checks each input fuzzing ever kept (no cargo-fuzz needed).

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "corpus input {} fails its property", p.display());
        n += 1;
    }
    n
}

#[test]
fn parse_corpus() {
    assert!(replay("parse", strait_policy::fuzzing::parse_case) >= 10, "the parse corpus is missing");
}

#[test]
fn glob_corpus() {
    assert!(replay("glob", strait_policy::fuzzing::glob_case) >= 10, "the glob corpus is missing");
}
