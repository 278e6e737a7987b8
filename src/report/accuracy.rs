//! Accuracy beside latency: the `pibench eval` results a sweep wrote for its models
//! (`eval/*.json` in the report directory, [`crate::eval::job::EvalReport`]), joined to the
//! measured runs, and the parts of the report drawn from them — the CSV columns, the
//! accuracy-against-latency figures (one marker shape per method), RLNet against SeNet at equal
//! budgets with accuracy beside cost, accuracy against ℓ, and the report's tables.
//!
//! Everything is read from the JSON files, so `pibench report` redraws it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::chart::*;
use super::plots::{
    compare_link, comparison_data, comparison_panel, families, fmt_budget, looks, method_display,
    method_legend, phase_seconds, stem, Comparison, Look, PlotSet,
};
use super::sweep::{ModelGroup, Sweep};
use super::text::{esc, file_name, thousands};
use super::{ReportError, ReportOptions};
use crate::eval::job::{AttackKind, CorruptedSource, EvalReport, RingSummary, SCHEMA};
use crate::eval::results::TripleJson;
use crate::ring::Ring;

/// The three accuracies a report shows.
pub const KINDS: [&str; 3] = ["CA", "NPA", "AdvA"];

/// One model's accuracies, from one or more evaluations of it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelAccuracy {
    /// The bundle as the evaluation named it.
    pub model: String,
    /// The card's name.
    pub name: String,
    /// The card's method.
    pub method: String,
    /// Clean accuracy.
    pub ca: Option<TripleJson>,
    /// NPA (RLNet's mean over corruptions of the mean over severities; `n` pools every corrupted
    /// image).
    pub npa: Option<TripleJson>,
    /// Adversarial accuracy.
    pub adv: Option<TripleJson>,
    /// How CA was measured (`500 test images of …`).
    pub ca_setting: String,
    /// How NPA was measured.
    pub npa_setting: String,
    /// How AdvA was measured.
    pub adv_setting: String,
    /// The ring of the accuracies above.
    pub ring: Ring,
    /// Every ring of the evaluation that measured CA (for accuracy against ℓ).
    pub rings: Vec<RingSummary>,
    /// Images with a wrapped local truncation, over the evaluations, at `ring`.
    pub wrapped: u64,
    /// The evaluation files.
    pub files: Vec<PathBuf>,
}

impl ModelAccuracy {
    /// The accuracies in [`KINDS`] order.
    pub fn kinds(&self) -> [Option<TripleJson>; 3] {
        [self.ca, self.npa, self.adv]
    }
}

/// The accuracies of a report's models.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accuracies {
    /// One per evaluated model, in file-name order.
    pub models: Vec<ModelAccuracy>,
}

fn file_stem(p: &str) -> String {
    Path::new(p)
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

fn describe_limit(r: &EvalReport) -> String {
    format!("{} test images of {}", r.range[1] - r.range[0], r.data)
}

impl Accuracies {
    /// Read every `*.json` in `dir` as an evaluation; a missing directory is no accuracies, a
    /// file that is not an evaluation an error naming it.
    pub fn load_dir(dir: &Path) -> Result<Accuracies, ReportError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Accuracies::default()),
            Err(e) => {
                return Err(ReportError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })
            }
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        files.sort();
        let mut reports = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(ReportError::io(&f))?;
            let r: EvalReport = serde_json::from_str(&text).map_err(ReportError::parse(&f))?;
            if r.schema != SCHEMA {
                return Err(ReportError::Accuracy(format!(
                    "{}: schema `{}`, expected `{SCHEMA}`",
                    f.display(),
                    r.schema
                )));
            }
            reports.push((f, r));
        }
        Ok(Accuracies::from_reports(reports))
    }

    /// Join evaluations by model: each accuracy comes from the evaluation that measured it on
    /// the most images (a sweep evaluates NPA on fewer images than CA and AdvA).
    pub fn from_reports(reports: Vec<(PathBuf, EvalReport)>) -> Accuracies {
        let mut by_model: BTreeMap<String, Vec<(PathBuf, EvalReport)>> = BTreeMap::new();
        for (p, r) in reports {
            by_model
                .entry(r.options.model.display().to_string())
                .or_default()
                .push((p, r));
        }
        let models = by_model
            .into_iter()
            .map(|(model, rs)| {
                let best = |pick: &dyn Fn(&EvalReport) -> Option<TripleJson>| {
                    rs.iter()
                        .filter_map(|(_, r)| pick(r).map(|t| (t, r)))
                        .max_by_key(|(t, _)| t.f32.n)
                };
                let ca = best(&|r| Some(r.clean).filter(|t| t.f32.n > 0));
                let npa = best(&|r| r.npa.as_ref().map(|n| n.mean));
                let adv = best(&|r| r.adversarial);
                let first = &rs[0].1;
                let ca_setting = ca.map_or_else(String::new, |(_, r)| describe_limit(r));
                let npa_setting = npa.map_or_else(String::new, |(_, r)| {
                    let corr = r.npa.as_ref().map_or(0, |n| n.per_corruption.len());
                    let source = match &r.options.corrupted {
                        CorruptedSource::Generated => "generated",
                        CorruptedSource::Files(_) => "from files",
                        CorruptedSource::None => "",
                    };
                    format!(
                        "{corr} corruptions ({source}) × severities {}, on {}",
                        r.options
                            .severities
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        describe_limit(r)
                    )
                });
                let adv_setting = adv.map_or_else(String::new, |(_, r)| {
                    let a = &r.options.attack;
                    let name = match a.kind {
                        AttackKind::Pgd => format!(
                            "PGD-{} (L∞ ε = {:.2}/255, step {:.2}/255{})",
                            a.steps,
                            a.eps * 255.0,
                            a.step * 255.0,
                            if a.random_start { ", random start" } else { "" }
                        ),
                        AttackKind::Fgsm => format!("FGSM (L∞ ε = {:.2}/255)", a.eps * 255.0),
                        AttackKind::None => "none".into(),
                    };
                    format!(
                        "{name} crafted on f32 (through BN_a on dual-BN models), on {}",
                        describe_limit(r)
                    )
                });
                let ring_src = ca.map_or(first, |(_, r)| r);
                ModelAccuracy {
                    name: first.card.name.clone().unwrap_or_else(|| file_stem(&model)),
                    method: first.card.method.to_lowercase(),
                    ca: ca.map(|(t, _)| t),
                    npa: npa.map(|(t, _)| t),
                    adv: adv.map(|(t, _)| t),
                    ca_setting,
                    npa_setting,
                    adv_setting,
                    ring: ring_src.ring,
                    rings: ring_src.rings.clone(),
                    wrapped: rs
                        .iter()
                        .filter(|(_, r)| r.ring == ring_src.ring)
                        .map(|(_, r)| r.wrapped)
                        .sum(),
                    files: rs.iter().map(|(p, _)| p.clone()).collect(),
                    model,
                }
            })
            .collect();
        Accuracies { models }
    }

    /// Whether no model was evaluated.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The accuracies of a group's bundle: the same path, else the same file stem.
    pub fn of_group(&self, g: &ModelGroup) -> Option<&ModelAccuracy> {
        self.models
            .iter()
            .find(|m| m.model == g.key.path)
            .or_else(|| {
                let stem = file_stem(&g.key.path);
                self.models.iter().find(|m| file_stem(&m.model) == stem)
            })
    }

    /// The CSV columns appended to `results.csv`: per accuracy and arithmetic the accuracy and
    /// its 95% interval, and per accuracy the images judged.
    pub fn csv_header() -> Vec<String> {
        let mut h = Vec::new();
        for k in KINDS {
            let k = k.to_lowercase();
            for a in ["f32", "pi"] {
                h.push(format!("{k}_{a}"));
                h.push(format!("{k}_{a}_ci95_lo"));
                h.push(format!("{k}_{a}_ci95_hi"));
            }
            h.push(format!("{k}_n"));
        }
        h
    }

    /// The values of [`Accuracies::csv_header`] for one run (empty when its model was not
    /// evaluated).
    pub fn csv_row(&self, sweep: &Sweep, run: &crate::results::RunResult) -> Vec<String> {
        let acc = sweep
            .groups
            .iter()
            .find(|g| g.key.path == run.model.path && g.key.bn_path == run.model.bn_path)
            .and_then(|g| self.of_group(g));
        let mut row = Vec::new();
        for k in 0..3 {
            match acc.and_then(|a| a.kinds()[k]) {
                Some(t) => {
                    for j in [t.f32, t.pi] {
                        row.push(format!("{:.4}", j.accuracy));
                        row.push(format!("{:.4}", j.ci95[0]));
                        row.push(format!("{:.4}", j.ci95[1]));
                    }
                    row.push(t.f32.n.to_string());
                }
                None => row.extend(std::iter::repeat_n(String::new(), 7)),
            }
        }
        row
    }
}

/// Which latency an accuracy figure puts on its x axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// The online phase.
    Online,
    /// Offline and online together.
    Total,
}

fn latency_of(g: &ModelGroup, link: &str, which: Latency) -> Option<f64> {
    let l = g.link(link, false)?;
    Some(match which {
        Latency::Online => l.online.median,
        Latency::Total => l.offline.median + l.online.median,
    })
}

/// The y window of accuracy panels: from a round number below the lowest interval to 100.
fn accuracy_window(lows: impl Iterator<Item = f64>) -> (f64, f64) {
    let lo = lows.fold(100.0, f64::min);
    let lo = ((lo - 2.0) / 10.0).floor() * 10.0;
    (lo.clamp(0.0, 90.0), 100.0)
}

fn accuracy_latency_chart(
    sweep: &Sweep,
    acc: &Accuracies,
    link: &str,
    which: Latency,
) -> Option<XyChart> {
    let fams = families(sweep);
    let mut panels: Vec<XyPanel> = KINDS
        .iter()
        .map(|k| XyPanel {
            log_x: true,
            ..XyPanel::new(
                format!("{k} under PI"),
                format!(
                    "{} latency, {link} (s)",
                    match which {
                        Latency::Online => "online",
                        Latency::Total => "offline + online",
                    }
                ),
                "accuracy (%)",
            )
        })
        .collect();
    let mut legend = vec![LegendEntry::heading("Method (marker)")];
    let mut lows = Vec::new();
    // Each budget is written once per panel (methods at equal budgets share their x).
    let mut labelled: Vec<Vec<u64>> = vec![Vec::new(); KINDS.len()];
    for fam in &fams {
        let (flabel, gs) = (&fam.label, &fam.groups);
        let Look { color, marker } = fam.look;
        let mut any = false;
        for (k, panel) in panels.iter_mut().enumerate() {
            let pts: Vec<_> = gs
                .iter()
                .filter_map(|g| {
                    let t = acc.of_group(g)?.kinds()[k]?;
                    let x = latency_of(g, link, which)?;
                    lows.push(t.pi.ci95[0]);
                    let tag = if labelled[k].contains(&g.nominal_budget) {
                        String::new()
                    } else {
                        labelled[k].push(g.nominal_budget);
                        fmt_budget(g.budget)
                    };
                    Some((x, t.pi.accuracy, t.pi.ci95[0], t.pi.ci95[1], tag))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            any = true;
            panel.series.push(XySeries::line(color, marker, false, pts));
        }
        if any {
            legend.push(LegendEntry::line(
                flabel.clone(),
                color,
                Some(marker),
                false,
            ));
        }
    }
    if panels.iter().all(|p| p.series.is_empty()) {
        return None;
    }
    let window = accuracy_window(lows.into_iter());
    for p in &mut panels {
        p.y_range = Some(window);
    }
    panels.retain(|p| !p.series.is_empty());
    Some(XyChart {
        title: format!(
            "Accuracy under PI against {} latency ({link} link)",
            match which {
                Latency::Online => "online",
                Latency::Total => "total",
            }
        ),
        size: (2100, 760),
        panels,
        legend,
        footnote: Some(
            "PI arithmetic (what the client decrypts); whiskers: 95% Wilson interval; point labels: ReLUs kept. Latency: median of the measured runs, modelled on the link."
                .into(),
        ),
    })
}

/// RLNet against SeNet (or any two methods) at equal budgets: the three accuracies under PI
/// beside the online and total latency on the comparison link.
fn comparison_chart(c: &Comparison<'_>, acc: &Accuracies, link: Option<&str>) -> BarChart {
    let (net, _, methods, _) = c;
    let mut panels: Vec<BarPanel> = KINDS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            comparison_panel(c, format!("{name} under PI"), "accuracy (%)", "", &|g| {
                acc.of_group(g)?.kinds()[k].map(|t| t.pi.accuracy)
            })
        })
        .collect();
    let link_name = link.map_or("compute only".to_string(), |l| format!("{l} link"));
    panels.push(comparison_panel(
        c,
        format!("Latency, {link_name}"),
        "offline + online (s)",
        " s",
        &|g| {
            let (a, b) = phase_seconds(g, link);
            Some(a + b)
        },
    ));
    let names: Vec<String> = methods.iter().map(|m| method_display(m)).collect();
    BarChart {
        title: format!(
            "{} at equal ReLU budgets: accuracy beside cost — {net}",
            names.join(" vs ")
        ),
        size: (2300, 760),
        panels,
        legend: method_legend(methods),
        footnote: Some(
            "Accuracy: PI arithmetic on the evaluated test images (see the accuracy table for n and intervals). Latency: median of the runs, modelled on the link. Equal budgets cost the same; the methods differ in accuracy."
                .into(),
        ),
    }
}

fn ring_chart(acc: &Accuracies) -> Option<XyChart> {
    let swept: Vec<&ModelAccuracy> = acc.models.iter().filter(|m| m.rings.len() > 1).collect();
    if swept.is_empty() {
        return None;
    }
    let mut fracs: Vec<u32> = swept
        .iter()
        .flat_map(|m| m.rings.iter().map(|r| r.frac))
        .collect();
    fracs.sort_unstable();
    fracs.dedup();
    let ells: Vec<f64> = swept
        .iter()
        .flat_map(|m| m.rings.iter().map(|r| f64::from(r.ell)))
        .collect();
    let lo = ells.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ells.iter().copied().fold(0.0, f64::max);
    let x_range = Some((
        (lo / 8.0).floor() * 8.0 - 4.0,
        (hi / 8.0).ceil() * 8.0 + 4.0,
    ));
    // One panel per accuracy the evaluations measured at several rings and per f.
    let value = |r: &RingSummary, k: usize| -> Option<TripleJson> {
        [Some(r.clean), r.npa.as_ref().map(|n| n.mean), r.adversarial][k]
    };
    let mut panels: Vec<XyPanel> = Vec::new();
    let mut keys: Vec<(usize, u32)> = Vec::new();
    for (k, name) in KINDS.iter().enumerate() {
        for &f in &fracs {
            let several = swept.iter().any(|m| {
                m.rings
                    .iter()
                    .filter(|r| r.frac == f && value(r, k).is_some())
                    .count()
                    > 1
            });
            if several {
                keys.push((k, f));
                panels.push(XyPanel {
                    y_range: Some((0.0, 100.0)),
                    x_range,
                    ..XyPanel::new(
                        format!("{name} under PI, f = {f}"),
                        "ring width ℓ (bits)".into(),
                        "accuracy (%)",
                    )
                });
            }
        }
    }
    let mut legend = vec![LegendEntry::heading("Model")];
    let methods: Vec<&str> = swept.iter().map(|m| m.method.as_str()).collect();
    for (m, Look { color, marker }) in swept.iter().zip(looks(&methods)) {
        for (panel, &(k, f)) in panels.iter_mut().zip(&keys) {
            let pts: Vec<_> = m
                .rings
                .iter()
                .filter(|r| r.frac == f)
                .filter_map(|r| {
                    let t = value(r, k)?;
                    Some((
                        f64::from(r.ell),
                        t.pi.accuracy,
                        t.pi.ci95[0],
                        t.pi.ci95[1],
                        String::new(),
                    ))
                })
                .collect();
            if !pts.is_empty() {
                panel.series.push(XySeries::line(color, marker, false, pts));
            }
        }
        legend.push(LegendEntry::line(
            m.name.clone(),
            color,
            Some(marker),
            false,
        ));
    }
    if panels.is_empty() {
        return None;
    }
    let width = 560 * panels.len() as u32 + 420;
    Some(XyChart {
        title: "Accuracy under PI against the ring width".into(),
        size: (width, 760),
        panels,
        legend,
        footnote: Some(
            "PI arithmetic; whiskers: 95% Wilson interval. A collapse is wrapped (catastrophic) local truncations: the ring is too small for the activations. f32 does not depend on the ring; wrapped counts per ring are in the report's table."
                .into(),
        ),
    })
}

/// The links the accuracy figures are drawn for: LAN and WAN when the runs carry them, else
/// every link.
fn figure_links(sweep: &Sweep) -> Vec<String> {
    let names = sweep.link_names();
    let preferred: Vec<String> = names
        .iter()
        .filter(|n| *n == "lan" || *n == "wan")
        .cloned()
        .collect();
    if preferred.is_empty() {
        names
    } else {
        preferred
    }
}

/// The stem of the accuracy-against-latency figure a report opens with.
pub fn headline_stem(sweep: &Sweep) -> Option<String> {
    let links = figure_links(sweep);
    let link = links
        .iter()
        .find(|l| *l == "wan")
        .or(links.first())?
        .clone();
    Some(stem::accuracy_latency("online", &link))
}

/// Draw the accuracy figures into `dir` and add them to `set`; the method comparison at equal
/// budgets is redrawn with accuracy beside cost (it replaces the cost-only chart).
pub fn write_plots(
    sweep: &Sweep,
    acc: &Accuracies,
    dir: &Path,
    opts: &ReportOptions,
    set: &mut PlotSet,
) -> Result<(), ReportError> {
    if acc.is_empty() {
        return Ok(());
    }
    // The font was registered (or found missing) by the cost figures just drawn.
    let png = opts.png && set.files.iter().any(|f| f.png.is_some());
    for link in figure_links(sweep) {
        for (which, word) in [Latency::Online, Latency::Total]
            .into_iter()
            .zip(stem::LATENCIES)
        {
            if let Some(c) = accuracy_latency_chart(sweep, acc, &link, which) {
                let stem = stem::accuracy_latency(word, &link);
                let title = format!("CA, NPA and AdvA under PI against {word} latency ({link})");
                set.files
                    .push(render(dir, &stem, &title, &Chart::Xy(c), png)?);
            }
        }
    }
    let evaluated: Vec<ModelGroup> = sweep
        .groups
        .iter()
        .filter(|g| acc.of_group(g).is_some())
        .cloned()
        .collect();
    let sub = Sweep {
        runs: sweep.runs.clone(),
        groups: evaluated,
    };
    if let Some(mut c) = comparison_data(&sub) {
        // Methods without a model at any shared budget (a dense teacher) have no bars.
        let keep: Vec<usize> = (0..c.2.len())
            .filter(|&i| c.3[i].iter().any(Option::is_some))
            .collect();
        c.2 = keep.iter().map(|&i| c.2[i].clone()).collect();
        c.3 = keep.iter().map(|&i| c.3[i].clone()).collect();
        let link = compare_link(sweep, opts);
        let names: Vec<String> = c.2.iter().map(|m| method_display(m)).collect();
        let title = format!(
            "{} at equal ReLU budgets: accuracy beside cost",
            names.join(" vs ")
        );
        let file = render(
            dir,
            stem::METHODS,
            &title,
            &Chart::Bar(comparison_chart(&c, acc, link.as_deref())),
            png,
        )?;
        match set.files.iter_mut().find(|f| f.stem == stem::METHODS) {
            Some(old) => *old = file,
            None => set.files.push(file),
        }
    }
    if let Some(c) = ring_chart(acc) {
        set.files.push(render(
            dir,
            stem::RING,
            "Accuracy under PI against the ring width ℓ",
            &Chart::Xy(c),
            png,
        )?);
    }
    Ok(())
}

fn cell(j: &crate::eval::results::AccuracyJson) -> String {
    format!("{:.1} [{:.1}, {:.1}]", j.accuracy, j.ci95[0], j.ci95[1])
}

/// The section a report opens with: the accuracy-against-latency figure and, per evaluated
/// model, its latency on LAN and WAN beside what it reaches under PI.
pub fn write_glance(
    s: &mut String,
    sweep: &Sweep,
    acc: &Accuracies,
    plots: &PlotSet,
) -> std::fmt::Result {
    if acc.is_empty() {
        return Ok(());
    }
    writeln!(s, "## At a glance: accuracy against latency\n")?;
    if let Some(p) = headline_stem(sweep).and_then(|h| plots.files.iter().find(|f| f.stem == h)) {
        let img = p.png.as_ref().unwrap_or(&p.svg);
        writeln!(
            s,
            "![{}]({})\n\n[SVG]({}) — the same against total latency and on the other links under *Plots* below.\n",
            p.title,
            file_name(img),
            file_name(&p.svg)
        )?;
    }
    let links = figure_links(sweep);
    write!(s, "| method | model | ReLUs |")?;
    for l in &links {
        write!(s, " {l} online s | {l} total s |")?;
    }
    writeln!(s, " CA % | NPA % | AdvA % |")?;
    writeln!(s, "|{}", "---|".repeat(6 + 2 * links.len()))?;
    for fam in families(sweep) {
        for g in fam.groups {
            let Some(a) = acc.of_group(g) else { continue };
            write!(
                s,
                "| {} | {} | {} |",
                method_display(&g.method),
                esc(&g.name),
                thousands(g.budget)
            )?;
            for l in &links {
                for which in [Latency::Online, Latency::Total] {
                    match latency_of(g, l, which) {
                        Some(v) => write!(s, " {v:.3} |")?,
                        None => write!(s, " – |")?,
                    }
                }
            }
            for t in a.kinds() {
                match t {
                    Some(t) => write!(s, " {:.1} |", t.pi.accuracy)?,
                    None => write!(s, " – |")?,
                }
            }
            writeln!(s)?;
        }
    }
    writeln!(
        s,
        "\nAccuracies under the PI arithmetic (the class the client decrypts); latencies are medians of \
         the measured runs, modelled on each link (offline + online for *total*). Intervals, f32 \
         figures and how each accuracy was measured: *Accuracy* below.\n"
    )
}

/// The accuracy section: every evaluated model's CA, NPA and AdvA in f32 and under PI with
/// intervals and sizes, the settings, rings, and the models not evaluated.
pub fn write_section(s: &mut String, sweep: &Sweep, acc: &Accuracies) -> std::fmt::Result {
    if acc.is_empty() {
        return Ok(());
    }
    writeln!(s, "## Accuracy\n")?;
    writeln!(
        s,
        "From `pibench eval` (the JSON files in `eval/`): each accuracy in f32 (what PyTorch \
         computes) and under the PI arithmetic (linear layers on the ring, kept ReLUs as the \
         garbled circuit computes them, linearized elements truncated locally on random shares), \
         percent with the 95% Wilson interval; *n* images judged (for NPA, every corrupted image \
         pooled).\n"
    )?;
    writeln!(
        s,
        "| model | method | ReLUs | ring | CA f32 | CA PI | n | NPA f32 | NPA PI | n | AdvA f32 | AdvA PI | n | wrapped |"
    )?;
    writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    let mut settings: Vec<String> = Vec::new();
    for g in &sweep.groups {
        let Some(a) = acc.of_group(g) else { continue };
        if !(g.key.bn_path.is_empty() || g.key.bn_path == "clean") {
            continue;
        }
        write!(
            s,
            "| {} | {} | {} | ℓ = {}, f = {} |",
            esc(&g.name),
            method_display(&g.method),
            thousands(g.budget),
            a.ring.ell,
            a.ring.frac
        )?;
        for t in a.kinds() {
            match t {
                Some(t) => write!(s, " {} | {} | {} |", cell(&t.f32), cell(&t.pi), t.f32.n)?,
                None => write!(s, " – | – | – |")?,
            }
        }
        writeln!(s, " {} |", a.wrapped)?;
        for (k, v) in [
            ("CA", &a.ca_setting),
            ("NPA", &a.npa_setting),
            ("AdvA", &a.adv_setting),
        ] {
            let line = format!("{k}: {v}");
            if !v.is_empty() && !settings.contains(&line) {
                settings.push(line);
            }
        }
    }
    writeln!(s, "\nHow they were measured:\n")?;
    for line in &settings {
        writeln!(s, "- {}", esc(line))?;
    }
    let missing: Vec<String> = sweep
        .groups
        .iter()
        .filter(|g| acc.of_group(g).is_none())
        .map(|g| esc(&g.label()))
        .collect();
    if !missing.is_empty() {
        writeln!(
            s,
            "- not evaluated (no test set of their dataset was given, or synthetic weights): {}",
            missing.join(", ")
        )?;
    }
    writeln!(s)?;
    let swept: Vec<&ModelAccuracy> = acc.models.iter().filter(|m| m.rings.len() > 1).collect();
    if !swept.is_empty() {
        writeln!(s, "### Accuracy against the ring\n")?;
        writeln!(
            s,
            "| model | ℓ | f | AND gates / ReLU | CA PI | NPA PI | AdvA PI | PI = f32 class % | wrapped |"
        )?;
        writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
        for m in swept {
            for r in &m.rings {
                let f = |t: Option<TripleJson>| t.map_or("–".into(), |t| cell(&t.pi));
                writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                    esc(&m.name),
                    r.ell,
                    r.frac,
                    r.and_gates_per_relu,
                    f(Some(r.clean)),
                    f(r.npa.as_ref().map(|n| n.mean)),
                    f(r.adversarial),
                    r.agreement_f32_pi,
                    r.wrapped
                )?;
            }
        }
        writeln!(s)?;
    }
    Ok(())
}
