//! Without a usable font the report still writes its SVGs and says why the PNGs are missing.
//! Its own test binary: plotters' font registry is per process.

mod report_support;

use pibench::report::{write_report, ReportOptions};
use report_support::sweep_runs;

#[test]
fn missing_font_skips_png_but_writes_svg() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ReportOptions {
        font_path: dir.path().join("no-such-font.ttf"),
        ..ReportOptions::default()
    };
    let s = write_report(&sweep_runs(1, 0.0), dir.path(), &opts).unwrap();
    assert!(!s.plots.is_empty());
    for p in &s.plots {
        assert!(p.png.is_none());
        let svg = std::fs::read_to_string(&p.svg).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("<text"),
            "{}",
            p.svg.display()
        );
    }
    assert!(s.notes.iter().any(|n| n.contains("PNG plots skipped")));
    let md = std::fs::read_to_string(&s.report_md).unwrap();
    assert!(md.contains("PNG plots skipped") && md.contains(".svg)"));
}
