//! `report.md`: the setup (machine, ring, backend), a latency and a communication table per
//! network, the plots, the cost model with its error on every measured model, and how to
//! reproduce it all.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::accuracy::Accuracies;
use super::costmodel::CostModel;
use super::plots::{method_display, PlotSet};
use super::sweep::{ModelGroup, Stat, Sweep};
use super::text::{esc, file_name, shell_quote, table_head, thousands};
use super::ReportOptions;
use crate::net::link::Link;

/// Render the report of the directory `dir`. `notes` are listed under "Notes" (skipped plots,
/// font warnings, ...); with `accuracies` it opens with accuracy against latency and has an
/// accuracy section.
pub fn render(
    sweep: &Sweep,
    model: Option<&CostModel>,
    plots: &PlotSet,
    notes: &[String],
    opts: &ReportOptions,
    accuracies: &Accuracies,
    dir: &Path,
) -> String {
    type Section<'a> = Box<dyn Fn(&mut String) -> std::fmt::Result + 'a>;
    let sections: [Section; 10] = [
        Box::new(|s| write_header(s, sweep, opts)),
        Box::new(|s| super::accuracy::write_glance(s, sweep, accuracies, plots)),
        Box::new(|s| write_setup(s, sweep)),
        Box::new(|s| write_links(s, sweep)),
        Box::new(|s| write_results(s, sweep)),
        Box::new(|s| super::accuracy::write_section(s, sweep, accuracies)),
        Box::new(|s| write_plots(s, plots)),
        Box::new(|s| write_cost_model(s, model, sweep)),
        Box::new(|s| write_notes(s, notes)),
        Box::new(|s| write_reproduce(s, sweep, dir)),
    ];
    let mut s = String::new();
    for section in sections {
        // Writing to a String cannot fail.
        let _ = section(&mut s);
    }
    s
}

fn distinct<T: Ord + Clone>(it: impl Iterator<Item = T>) -> Vec<T> {
    it.collect::<BTreeSet<T>>().into_iter().collect()
}

/// The title, what the runs are, and the warnings that apply to every figure (a dealer backend,
/// runs that did not match the oracle).
fn write_header(s: &mut String, sweep: &Sweep, opts: &ReportOptions) -> std::fmt::Result {
    let runs = &sweep.runs;
    writeln!(s, "# {}\n", opts.title)?;
    let versions = distinct(runs.iter().map(|r| r.pibench_version.clone()));
    writeln!(
        s,
        "Generated {} by pibench {} from {} run(s) of {} model(s).\n",
        utc_date(),
        versions.join(", "),
        runs.len(),
        sweep.groups.len()
    )?;

    let backends = distinct(runs.iter().map(|r| r.backend.to_string()));
    if backends.iter().any(|b| b == "dealer") {
        writeln!(
            s,
            "> **Linear preprocessing backend: `dealer`.** The correlations of the linear layers \
             were produced by a trusted dealer, not by a two-party protocol: offline figures \
             cover the garbled ReLUs and their OTs only, and leave out the (homomorphic) cost of \
             the linear layers' preprocessing (in two-process runs, where the server's process \
             plays the dealer, the dealer's deliveries are counted as linear-layer traffic). \
             Online figures are those of the real two-party protocol.\n"
        )?;
    }
    let bad: usize = runs.iter().filter(|r| !r.correct).count();
    if bad > 0 {
        writeln!(
            s,
            "> **{bad} of {} run(s) did not match the fixed-point oracle** (see the `correct` \
             column below and `results.csv`).\n",
            runs.len()
        )?;
    }
    Ok(())
}

/// Machine, threads, transport, ring, backend, gates per ReLU, local truncation.
fn write_setup(s: &mut String, sweep: &Sweep) -> std::fmt::Result {
    let runs = &sweep.runs;
    let backends = distinct(runs.iter().map(|r| r.backend.to_string()));
    writeln!(s, "## Setup\n")?;
    writeln!(s, "| | |\n|---|---|")?;
    for m in distinct(runs.iter().map(|r| {
        format!(
            "{}, {} logical cores, {}, AES-NI {}",
            r.machine.cpu,
            r.machine.cores,
            r.machine.os,
            if r.machine.aes_ni { "yes" } else { "no" }
        )
    })) {
        writeln!(s, "| machine | {} |", esc(&m))?;
    }
    writeln!(
        s,
        "| threads per party | {} |",
        distinct(runs.iter().map(|r| r.threads))
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        s,
        "| transport | {} |",
        distinct(runs.iter().map(|r| r.transport.clone())).join(", ")
    )?;
    for (ell, frac) in distinct(runs.iter().map(|r| (r.ring.ell, r.ring.frac))) {
        writeln!(
            s,
            "| ring | Z_2^ℓ with ℓ = {ell}, f = {frac} fractional bits |"
        )?;
    }
    for b in &backends {
        let what = if b == "dealer" {
            "dealer — a trusted dealer, **not** two-party"
        } else {
            b.as_str()
        };
        writeln!(s, "| linear preprocessing | {what} |")?;
    }
    let gates = distinct(runs.iter().map(|r| r.and_gates_per_relu));
    writeln!(
        s,
        "| AND gates per garbled ReLU | {} |",
        gates
            .iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let worst = runs
        .iter()
        .map(|r| r.local_truncation.failure_probability)
        .fold(0.0, f64::max);
    writeln!(
        s,
        "| local truncation | worst failure probability per inference {worst:.2e} (union bound) |\n"
    )?;
    Ok(())
}

/// The links the latencies are given for.
fn write_links(s: &mut String, sweep: &Sweep) -> std::fmt::Result {
    let cols = sweep.link_columns();
    if !cols.is_empty() {
        writeln!(s, "## Links\n")?;
        writeln!(
            s,
            "| link | bandwidth, RTT | emulated runs |\n|---|---|---|"
        )?;
        let mut names: Vec<String> = Vec::new();
        for c in &cols {
            if !names.contains(&c.0) {
                names.push(c.0.clone());
            }
        }
        for name in &names {
            let desc = sweep
                .link_named(name)
                .map_or_else(String::new, Link::describe);
            let emu = cols.iter().any(|c| &c.0 == name && c.1);
            writeln!(
                s,
                "| {} | {} | {} |",
                esc(name),
                desc,
                if emu { "yes" } else { "no" }
            )?;
        }
        writeln!(
            s,
            "\nLink latencies are modelled per phase as measured compute + bytes / bandwidth + \
             rounds × RTT/2, as if transfer and compute never overlapped: an upper bound, since \
             pibench streams the tables as it garbles them and runs its OTs beside them; where a \
             run was also made through a throttled channel (`--emulate`), which measures the \
             overlap, the table shows *model / emulated*.\n"
        )?;
    }
    Ok(())
}

/// Per network, the latency table and the communication table of every model.
fn write_results(s: &mut String, sweep: &Sweep) -> std::fmt::Result {
    writeln!(s, "## Results\n")?;
    writeln!(
        s,
        "Medians over the runs of each model; (min–max) when the runs spread by more than 2%. \
         Times in seconds, data in MB (10⁶ bytes).\n"
    )?;
    let nets = distinct(
        sweep
            .groups
            .iter()
            .map(|g| (g.architecture.clone(), g.dataset.clone())),
    );
    let link_names = sweep.link_names();
    for (arch, data) in nets {
        let gs: Vec<&ModelGroup> = sweep
            .groups
            .iter()
            .filter(|g| g.architecture == arch && g.dataset == data)
            .collect();
        writeln!(s, "### {arch} on {data}\n")?;
        write!(
            s,
            "| model | method | BN | ReLUs kept | runs | offline s | online s |"
        )?;
        for l in &link_names {
            write!(s, " {l} offline s | {l} online s |")?;
        }
        writeln!(s)?;
        writeln!(s, "|{}", "---|".repeat(7 + 2 * link_names.len()))?;
        for g in &gs {
            write!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                esc(&g.name),
                method_display(&g.method),
                if g.key.bn_path.is_empty() {
                    "-"
                } else {
                    &g.key.bn_path
                },
                thousands(g.budget),
                g.runs.len(),
                stat(&g.offline.seconds, 3),
                stat(&g.online.seconds, 3)
            )?;
            for l in &link_names {
                for phase in 0..2 {
                    let pick = |e| {
                        g.link(l, e)
                            .map(|ls| if phase == 0 { ls.offline } else { ls.online })
                    };
                    let cell = match (pick(false), pick(true)) {
                        (Some(m), Some(e)) => format!("{} / {}", stat(&m, 3), stat(&e, 3)),
                        (Some(m), None) => stat(&m, 3),
                        (None, Some(e)) => format!("– / {}", stat(&e, 3)),
                        (None, None) => "–".into(),
                    };
                    write!(s, " {cell} |")?;
                }
            }
            writeln!(s)?;
        }
        writeln!(s)?;
        writeln!(
            s,
            "| model | offline MB c→s | offline MB s→c | online MB c→s | online MB s→c | rounds offline | rounds online | client storage MB | peak RSS MB | correct |"
        )?;
        writeln!(s, "|---|---|---|---|---|---|---|---|---|---|")?;
        for g in &gs {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}{} |",
                esc(&g.label()),
                mb(g.offline.bytes_client_to_server.median),
                mb(g.offline.bytes_server_to_client.median),
                mb(g.online.bytes_client_to_server.median),
                mb(g.online.bytes_server_to_client.median),
                g.offline.rounds.median,
                g.online.rounds.median,
                mb(g.client_storage_bytes.median),
                mb(g.peak_rss_bytes.median),
                g.correct,
                g.runs.len(),
                if g.exact == g.runs.len() {
                    " (exact)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(s)?;
        write_he_table(s, sweep, &gs)?;
    }
    Ok(())
}

/// The plots, PNG with a link to the SVG.
fn write_plots(s: &mut String, plots: &PlotSet) -> std::fmt::Result {
    writeln!(s, "## Plots\n")?;
    if plots.files.is_empty() {
        writeln!(s, "No plots were drawn.\n")?;
    }
    for p in &plots.files {
        let svg = file_name(&p.svg);
        writeln!(s, "### {}\n", p.title)?;
        match &p.png {
            Some(png) => writeln!(s, "![{}]({})\n\n[SVG]({svg})\n", p.title, file_name(png))?,
            None => writeln!(s, "![{}]({svg})\n", p.title)?,
        }
    }
    Ok(())
}

/// The fitted cost model and its errors, or why there is none.
fn write_cost_model(s: &mut String, model: Option<&CostModel>, sweep: &Sweep) -> std::fmt::Result {
    writeln!(s, "## Cost model\n")?;
    match model {
        None => writeln!(s, "Not fitted (see the notes below).\n")?,
        Some(m) => write_fitted_model(s, m, sweep)?,
    }
    Ok(())
}

/// What was skipped and why.
fn write_notes(s: &mut String, notes: &[String]) -> std::fmt::Result {
    if !notes.is_empty() {
        writeln!(s, "## Notes\n")?;
        for n in notes {
            writeln!(s, "- {n}")?;
        }
        writeln!(s)?;
    }
    Ok(())
}

/// How to rerun and redraw everything: the commands the runs record (see
/// [`crate::results::SweepPlace`]), or, for runs that record none, a generic sweep and a note
/// saying so.
fn write_reproduce(s: &mut String, sweep: &Sweep, dir: &Path) -> std::fmt::Result {
    writeln!(s, "## How to reproduce\n")?;
    // In the order the sweeps ran: the one that started the directory, then its appends.
    let mut places: Vec<&crate::results::SweepPlace> =
        sweep.runs.iter().filter_map(|r| r.sweep.as_ref()).collect();
    places.sort_by_key(|p| p.appended);
    // One line per sweep: an identical command appended twice ran twice.
    let mut commands: Vec<(u64, &str)> = Vec::new();
    for p in places {
        let c = (p.appended, p.command.as_str());
        if !commands.contains(&c) {
            commands.push(c);
        }
    }
    let dir_arg = shell_quote(&dir.display().to_string());
    // Runs that record no command come from before any recorded append: their line goes first.
    let unrecorded = sweep.runs.iter().filter(|r| r.sweep.is_none()).count();
    if unrecorded > 0 {
        writeln!(
            s,
            "{} of the {} runs do not record the command that measured them (run files written \
             before pibench recorded it, or by `pibench run`); a sweep like theirs, to adapt to \
             their models and options:\n",
            unrecorded,
            sweep.runs.len()
        )?;
        writeln!(s, "```sh")?;
        writeln!(
            s,
            "cargo run --release                # the default job: sweep the bundled models, write reports/"
        )?;
        writeln!(s, "pibench sweep models/*.safetensors --out {dir_arg}")?;
        writeln!(s, "```\n")?;
    }
    if !commands.is_empty() {
        let lead = if unrecorded > 0 {
            "The other runs were measured by:"
        } else {
            "The runs were measured by:"
        };
        writeln!(s, "{lead}\n")?;
        writeln!(s, "```sh")?;
        for (_, c) in &commands {
            writeln!(s, "{c}")?;
        }
        writeln!(s, "```\n")?;
    }
    writeln!(
        s,
        "Every figure and table above is drawn from the per-run JSON files in `{}` (and the \
         evaluations in `{}`); `results.csv` has one row per run, by model in the order of the \
         tables, then by sweep (the first, then its appends), input and repeat, emulated runs last, and `costmodel.json` the fitted \
         cost model.\n",
        dir.join("runs").display(),
        dir.join("eval").display()
    )?;
    writeln!(s, "```sh")?;
    writeln!(
        s,
        "pibench report {dir_arg}   # redraw this report from its run files, without rerunning"
    )?;
    writeln!(
        s,
        "pibench predict MODEL --link wan --costmodel {}   # estimate a bundle without running it",
        shell_quote(&dir.join("costmodel.json").display().to_string())
    )?;
    writeln!(s, "```")?;
    Ok(())
}

fn write_fitted_model(s: &mut String, m: &CostModel, sweep: &Sweep) -> std::fmt::Result {
    writeln!(
        s,
        "Fitted on {} model(s) ({} runs, one point per model: the median of its runs), each \
         quantity as `fixed + per_relu × ReLUs kept` (plus `per_mac × MACs` when the sweep has \
         enough models with different MAC counts; rounds as `fixed + per_site × ReLU sites`), \
         by least squares on relative error. A link's latency is then predicted as compute + \
         bytes / bandwidth + rounds × RTT/2.\n",
        m.models, m.runs
    )?;
    writeln!(
        s,
        "| quantity | fixed | per ReLU | per MAC | per site | R² | max error | median error |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    for (name, f) in m.fits() {
        let term = |t: &str, v: f64| {
            if f.terms.iter().any(|x| x == t) {
                format!("{v:.4e}")
            } else {
                "–".into()
            }
        };
        writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {:.4} | {:.1}% | {:.1}% |",
            term("fixed", f.fixed),
            term("relu", f.per_relu),
            term("mac", f.per_mac),
            term("site", f.per_site),
            f.r2,
            f.max_rel_error * 100.0,
            f.median_rel_error * 100.0
        )?;
    }
    writeln!(s)?;
    let checks = m.check(sweep);
    let any_ho = checks.iter().any(|c| c.predicted_held_out.is_some());
    // Summary per quantity, in the order the checks come (compute first, then links).
    let mut quantities: Vec<&str> = Vec::new();
    for c in &checks {
        if !quantities.contains(&c.quantity.as_str()) {
            quantities.push(&c.quantity);
        }
    }
    writeln!(
        s,
        "Predicted against measured seconds (medians of each model's runs). {}\n",
        if any_ho {
            "*Held out*: predicted by a cost model fitted without that bundle's runs — the honest \
             figure for a bundle the cost model has not seen."
        } else {
            "(With four or more models the report also shows leave-one-model-out errors.)"
        }
    )?;
    let held_out_column = |columns: &[&'static str], held_out: &'static str| {
        let mut columns = columns.to_vec();
        if any_ho {
            columns.push(held_out);
        }
        columns
    };
    table_head(
        s,
        &held_out_column(
            &["quantity", "models", "largest error", "median error"],
            "largest held-out error",
        ),
    )?;
    for q in &quantities {
        let cs: Vec<_> = checks.iter().filter(|c| c.quantity == *q).collect();
        let errs: Vec<f64> = cs.iter().map(|c| c.rel_error().abs()).collect();
        let max = errs.iter().copied().fold(0.0, f64::max);
        let med = Stat::of(&errs).median;
        write!(
            s,
            "| {q} | {} | {} | {} |",
            cs.len(),
            pct_abs(max),
            pct_abs(med)
        )?;
        if any_ho {
            let ho = cs
                .iter()
                .filter_map(|c| c.rel_error_held_out())
                .map(f64::abs)
                .fold(0.0, f64::max);
            write!(s, " {} |", pct_abs(ho))?;
        }
        writeln!(s)?;
    }
    let max_in = checks
        .iter()
        .map(|c| c.rel_error().abs())
        .fold(0.0, f64::max);
    let max_ho = checks
        .iter()
        .filter_map(|c| c.rel_error_held_out())
        .map(f64::abs)
        .fold(0.0, f64::max);
    writeln!(
        s,
        "\nLargest error on the measured models: {}{} (target: within 15%).\n",
        pct_abs(max_in),
        if any_ho {
            format!("; held out: {}", pct_abs(max_ho))
        } else {
            String::new()
        }
    )?;

    writeln!(s, "<details><summary>Per model</summary>\n")?;
    table_head(
        s,
        &held_out_column(
            &["model", "quantity", "measured s", "predicted s", "error"],
            "held-out error",
        ),
    )?;
    for c in &checks {
        write!(
            s,
            "| {} | {} | {:.3} | {:.3} | {} |",
            esc(&c.model),
            c.quantity,
            c.measured,
            c.predicted,
            pct(c.rel_error())
        )?;
        if any_ho {
            write!(s, " {} |", c.rel_error_held_out().map_or("–".into(), pct))?;
        }
        writeln!(s)?;
    }
    writeln!(s, "\n</details>\n")?;
    Ok(())
}

fn pct_abs(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "∞".into()
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", x * 100.0)
    } else {
        "∞".into()
    }
}

pub(super) fn stat(st: &Stat, digits: usize) -> String {
    if st.n == 0 {
        return "–".into();
    }
    if st.has_spread() {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            st.median,
            st.min,
            st.max,
            d = digits
        )
    } else {
        format!("{:.d$}", st.median, d = digits)
    }
}

pub(super) fn mb(bytes: f64) -> String {
    let m = bytes / 1e6;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 1.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.3}")
    }
}

/// The `he` backend's linear preprocessing per model against Delphi-style SIMD packing.
fn write_he_table(s: &mut String, sweep: &Sweep, gs: &[&ModelGroup]) -> std::fmt::Result {
    let rows: Vec<(&ModelGroup, Vec<crate::results::HeTraffic>)> = gs
        .iter()
        .map(|g| {
            (
                *g,
                g.runs.iter().filter_map(|&i| sweep.runs[i].he).collect(),
            )
        })
        .filter(|(_, h): &(_, Vec<_>)| !h.is_empty())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        s,
        "HE linear preprocessing (all linear steps, both parties) against what Delphi-style SIMD \
         packing would move for the same steps (an estimate: ciphertexts only, rotation keys not \
         counted; exact Z_2^ℓ shares need a CRT over several plaintext primes):\n"
    )?;
    writeln!(
        s,
        "| model | HE s | MB c→s | MB s→c | keys MB | MB total | SIMD as Delphi sends, MB | SIMD with our compression, MB | CRT primes |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
    for (g, h) in rows {
        let mut secs: Vec<f64> = h.iter().map(|t| t.seconds).collect();
        secs.sort_by(f64::total_cmp);
        let t = h[0];
        writeln!(
            s,
            "| {} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            esc(&g.label()),
            secs[secs.len() / 2],
            mb(t.bytes_client_to_server as f64),
            mb(t.bytes_server_to_client as f64),
            mb(t.key_bytes as f64),
            mb(t.bytes() as f64),
            mb(t.simd_bytes_as_sent as f64),
            mb(t.simd_bytes_compressed as f64),
            t.simd_crt_primes
        )?;
    }
    writeln!(s)
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(557_056), "557\u{202f}056 (557k)");
        assert_eq!(thousands(12), "12");
        assert_eq!(mb(2_500_000.0), "2.5");
        assert_eq!(pct(0.123), "+12.3%");
        assert_eq!(esc("a|b"), "a\\|b");
    }

    fn reproduce(runs: Vec<crate::results::RunResult>) -> String {
        let mut s = String::new();
        let sweep = Sweep::from_results(runs).unwrap();
        write_reproduce(&mut s, &sweep, Path::new("out/dir")).unwrap();
        s
    }

    #[test]
    fn reproduce_names_the_recorded_commands_and_says_which_runs_have_none() {
        use crate::report::sweep::testing::run;
        let (first, appended) = (
            "pibench sweep models/b.safetensors --out out/dir",
            "pibench sweep models/a.safetensors --out out/dir --append",
        );
        let a = |rep, cmd| run("a", "rlnet", "c10", 50_000, 0.0, false, Some((0, rep, cmd)));
        let b = |place| run("b", "senet", "c10", 50_000, 0.0, false, place);
        // Model a's runs come first in the report, but were appended to b's sweep.
        let mut later = vec![a(0, appended), a(1, appended)];
        for r in &mut later {
            r.sweep.as_mut().unwrap().appended = 1;
        }
        let s = reproduce([later, vec![b(Some((0, 0, first)))]].concat());
        assert!(
            s.contains(&format!("by:\n\n```sh\n{first}\n{appended}\n```")),
            "{s}"
        );
        assert!(
            !s.contains("do not record") && !s.contains("*.safetensors"),
            "{s}"
        );
        assert!(s.contains("pibench report out/dir "), "{s}");
        assert!(s.contains("--costmodel out/dir/costmodel.json"), "{s}");
        // A run from before runs recorded their command: the generic sweep, and why.
        let s = reproduce(vec![a(0, first), b(None)]);
        assert!(
            s.contains(first) && s.contains("1 of the 2 runs do not record"),
            "{s}"
        );
        assert!(
            s.contains("pibench sweep models/*.safetensors --out out/dir\n"),
            "{s}"
        );
        let s = reproduce(vec![b(None)]);
        assert!(
            !s.contains("measured by") && s.contains("1 of the 1 runs"),
            "{s}"
        );
    }
}
