//! The report's figures, built from a sweep: latency and communication against the ReLU
//! budget, a per-stage breakdown of one model, methods compared at equal budgets, and accuracy
//! against latency. Each becomes plain chart data that [`super::chart`] draws as SVG and PNG.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::style::RGBColor;

use crate::net::link::Link;

use super::chart::*;
use super::sweep::{ModelGroup, Sweep};
use super::{ReportError, ReportOptions};

/// The file stems of the figures a report draws: one definition for drawing them and for
/// clearing them ([`super::clear_report_files`]).
pub(super) mod stem {
    /// Latency against the budget, per link.
    pub(crate) const LATENCY: &str = "latency_vs_budget";
    /// Communication against the budget.
    pub(crate) const COMMUNICATION: &str = "communication_vs_budget";
    /// One model's per-stage breakdown.
    pub(crate) const BREAKDOWN: &str = "layer_breakdown";
    /// Methods at equal budgets (cost, or accuracy beside cost).
    pub(crate) const METHODS: &str = "methods_at_equal_budget";
    /// The model cards' accuracies against latency.
    pub(crate) const CARD_ACCURACY: &str = "accuracy_vs_latency";
    /// Measured accuracy against the ring width.
    pub(crate) const RING: &str = "accuracy_vs_ring";
    /// The fixed stems.
    pub(crate) const FIXED: [&str; 6] = [
        LATENCY,
        COMMUNICATION,
        BREAKDOWN,
        METHODS,
        CARD_ACCURACY,
        RING,
    ];
    /// The latencies measured accuracy is drawn against, one figure per link each.
    pub(crate) const LATENCIES: [&str; 2] = ["online", "total"];

    /// Measured accuracy against the `latency` (one of [`LATENCIES`]) on `link`.
    pub(crate) fn accuracy_latency(latency: &str, link: &str) -> String {
        format!("accuracy_vs_{latency}_{link}")
    }

    /// Whether `stem` names a figure a report draws.
    pub(crate) fn is_report_plot(stem: &str) -> bool {
        FIXED.contains(&stem)
            || LATENCIES.iter().any(|l| {
                stem.strip_prefix(&accuracy_latency(l, ""))
                    .is_some_and(|link| !link.is_empty())
            })
    }
}

/// The plots of a report and what was skipped.
#[derive(Clone, Debug, Default)]
pub struct PlotSet {
    /// Plots written.
    pub files: Vec<PlotFile>,
    /// Plots skipped (and why), and font warnings.
    pub notes: Vec<String>,
}

fn link_color(link: &str, i: usize) -> RGBColor {
    // The presets keep their colours whatever else is plotted; other links follow them.
    let presets = Link::presets().len();
    match (link, Link::preset_rank(link)) {
        ("compute", _) => RGBColor(90, 90, 90),
        (_, Some(rank)) => PALETTE[rank],
        (_, None) => PALETTE[(presets + i) % PALETTE.len()],
    }
}

/// The colour and marker that are a method's own, for the methods pibench knows.
fn method_look(method: &str) -> Option<Look> {
    KNOWN_METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|&(_, look)| look)
}

/// The methods pibench knows, each with its own colour and marker.
const KNOWN_METHODS: [(&str, Look); 4] = [
    (
        "rlnet",
        Look {
            color: PALETTE[0],
            marker: Marker::Circle,
        },
    ),
    (
        "senet",
        Look {
            color: PALETTE[1],
            marker: Marker::Triangle,
        },
    ),
    (
        "snl",
        Look {
            color: PALETTE[2],
            marker: Marker::Square,
        },
    ),
    (
        "dense",
        Look {
            color: PALETTE[7],
            marker: Marker::Diamond,
        },
    ),
];

/// How one series family (or model) looks in every x–y figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Look {
    /// Its colour, where a figure's colour says the family.
    pub(super) color: RGBColor,
    /// Its marker, where a figure's marker says the family.
    pub(super) marker: Marker,
}

/// The one rule that gives the families (or models) of a figure, of the methods `methods` in
/// figure order, each its own colour and its own marker, so that whichever of the two a figure
/// uses for the family, and whatever the other says, no two of its series look alike: a family
/// takes its method's colour and marker ([`method_look`]) when no earlier family has, else the
/// first free one, the other known methods' own ones last. Colours beyond the palette are
/// generated hues; markers are unique for up to [`MARKERS`]`.len()` families (then the figures
/// say so).
pub(super) fn looks(methods: &[&str]) -> Vec<Look> {
    let owned: Vec<Look> = KNOWN_METHODS.iter().map(|&(_, look)| look).collect();
    // Free colours and markers in the order they are handed out.
    let by_preference = |all: Vec<RGBColor>| -> Vec<RGBColor> {
        let (theirs, free): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|c| owned.iter().any(|l| l.color == *c));
        free.into_iter().chain(theirs).collect()
    };
    let mut colors = by_preference(PALETTE.to_vec());
    let (theirs, free): (Vec<Marker>, Vec<Marker>) = MARKERS
        .iter()
        .partition(|m| owned.iter().any(|l| l.marker == **m));
    let mut markers: Vec<Marker> = free.into_iter().chain(theirs).collect();
    let mut generated = 0;
    methods
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let own = method_look(m);
            let color = match own.and_then(|l| take(&mut colors, &l.color)) {
                Some(c) => c,
                None if !colors.is_empty() => colors.remove(0),
                None => {
                    generated += 1;
                    generated_color(generated)
                }
            };
            let marker = match own.and_then(|l| take(&mut markers, &l.marker)) {
                Some(m) => m,
                None if !markers.is_empty() => markers.remove(0),
                // Every marker is taken: they repeat.
                None => MARKERS[i % MARKERS.len()],
            };
            Look { color, marker }
        })
        .collect()
}

/// Remove `x` from `free` and return it, when it is there.
fn take<T: PartialEq + Copy>(free: &mut Vec<T>, x: &T) -> Option<T> {
    let i = free.iter().position(|y| y == x)?;
    Some(free.remove(i))
}

/// The `k`-th colour past the palette: hues a golden angle apart, never the same twice.
fn generated_color(k: usize) -> RGBColor {
    use plotters::style::Color as _;
    let hue = (0.1 + k as f64 * 0.618_033_988_75).fract();
    let (r, g, b) = plotters::style::HSLColor(hue, 0.65, 0.42).to_rgba().rgb();
    RGBColor(r, g, b)
}

/// Whether a figure that tells `n` families apart by marker alone can give each its own.
pub(super) fn markers_suffice(n: usize) -> bool {
    n <= MARKERS.len()
}

/// The colours of `methods` in a per-method bar chart: those [`looks`] gives them, so that a
/// method has the same colour in the bars as in the lines.
pub(super) fn method_colors(methods: &[String]) -> Vec<RGBColor> {
    let names: Vec<&str> = methods.iter().map(String::as_str).collect();
    looks(&names).into_iter().map(|l| l.color).collect()
}

/// One coloured box per method, in the order given: the legend of a per-method bar chart.
pub(super) fn method_legend(methods: &[String]) -> Vec<LegendEntry> {
    methods
        .iter()
        .zip(method_colors(methods))
        .map(|(m, c)| LegendEntry::bar(method_display(m), c))
        .collect()
}

/// How a method is written in prose and legends.
pub fn method_display(method: &str) -> String {
    match method {
        "rlnet" => "RLNet".into(),
        "senet" => "SeNet".into(),
        "snl" => "SNL".into(),
        "autorep" => "AutoReP".into(),
        "deepreduce" => "DeepReDuce".into(),
        "dense" => "dense".into(),
        other => other.into(),
    }
}

/// A budget as `50k`, `1.2k` or `557k`.
pub fn fmt_budget(b: u64) -> String {
    if b >= 1000 {
        let k = b as f64 / 1000.0;
        if (k - k.round()).abs() < 0.05 || k >= 100.0 {
            format!("{}k", k.round())
        } else {
            format!("{k:.1}k")
        }
    } else {
        b.to_string()
    }
}
/// Series families: one per (architecture/dataset, method) so lines never join different
/// networks. The label mentions the network only when the sweep has several. A bundle run on
/// both batch-norm paths has the same architecture, masks and so cost on both: only its clean
/// path is plotted. Each has its own colour and marker ([`looks`]).
pub(super) fn families(sweep: &Sweep) -> Vec<Family<'_>> {
    let clean = |g: &ModelGroup| g.key.bn_path.is_empty() || g.key.bn_path == "clean";
    let mut fam: BTreeMap<(String, String, String), Vec<&ModelGroup>> = BTreeMap::new();
    for g in &sweep.groups {
        let twin = sweep
            .groups
            .iter()
            .any(|o| o.key.path == g.key.path && clean(o));
        if !clean(g) && twin {
            continue;
        }
        fam.entry((
            format!("{}/{}", g.architecture, g.dataset),
            g.method.clone(),
            g.key.gc.clone(),
        ))
        .or_default()
        .push(g);
    }
    let several_nets = fam
        .keys()
        .map(|k| &k.0)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let mut out: Vec<(String, String, Vec<&ModelGroup>)> = fam
        .into_iter()
        .map(|((net, method, gc), mut gs)| {
            gs.sort_by_key(|g| g.budget);
            let mut label = method_display(&method);
            if several_nets {
                label = format!("{label} {net}");
            }
            // A sweep comparing garbling schemes / OTs: one line per combination.
            if !gc.is_empty() {
                label = format!("{label} [{gc}]");
            }
            (label, method, gs)
        })
        .collect();
    // RLNet first: it is the method the comparison is about.
    out.sort_by_key(|(l, m, _)| (m != "rlnet", l.clone()));
    let methods: Vec<&str> = out.iter().map(|(_, m, _)| m.as_str()).collect();
    let looks = looks(&methods);
    out.into_iter()
        .zip(looks)
        .map(|((label, method, groups), look)| Family {
            label,
            method,
            groups,
            look,
        })
        .collect()
}

/// A line of models in the figures: one network, one method (and garbling/OT combination),
/// its models by budget.
pub(super) struct Family<'a> {
    /// Its legend label.
    pub(super) label: String,
    /// The method (lower case).
    pub(super) method: String,
    /// Its models, by budget.
    pub(super) groups: Vec<&'a ModelGroup>,
    /// Its own colour and marker ([`looks`]).
    pub(super) look: Look,
}

/// The offline and the online panel of a chart against the ReLU budget, on a log y axis.
fn phase_panels(y_desc: &str) -> Vec<XyPanel> {
    ["Offline", "Online"]
        .iter()
        .map(|ph| XyPanel {
            log_y: true,
            ..XyPanel::new(
                format!("{ph} phase"),
                "ReLU budget (ReLUs ×1000)".into(),
                y_desc,
            )
        })
        .collect()
}

fn latency_chart(sweep: &Sweep) -> XyChart {
    let fams = families(sweep);
    let mut links: Vec<(String, bool)> = vec![("compute".into(), false)];
    links.extend(sweep.link_columns());
    let mut panels = phase_panels("latency (s)");
    // Colour says the link, the marker says the method: the legend lists each once.
    let mut legend = vec![LegendEntry::heading("Link")];
    for (li, (link, emulated)) in links.iter().enumerate() {
        let color = link_color(link, li);
        let mut any = false;
        for fam in &fams {
            let marker = fam.look.marker;
            let mut off = Vec::new();
            let mut on = Vec::new();
            for g in &fam.groups {
                let x = g.budget as f64 / 1000.0;
                if link == "compute" {
                    let (a, b) = (g.offline.seconds, g.online.seconds);
                    off.push((x, a.median, a.min, a.max, String::new()));
                    on.push((x, b.median, b.min, b.max, String::new()));
                } else if let Some(l) = g.link(link, *emulated) {
                    off.push((
                        x,
                        l.offline.median,
                        l.offline.min,
                        l.offline.max,
                        String::new(),
                    ));
                    on.push((
                        x,
                        l.online.median,
                        l.online.min,
                        l.online.max,
                        String::new(),
                    ));
                }
            }
            if off.is_empty() {
                continue;
            }
            any = true;
            for (panel, pts) in panels.iter_mut().zip([off, on]) {
                panel
                    .series
                    .push(XySeries::line(color, marker, *emulated, pts));
            }
        }
        if any {
            let label = match (link.as_str(), emulated) {
                ("compute", _) => "compute only (no link)".to_string(),
                (l, true) => format!("{l}, emulated"),
                (l, false) => format!("{l}, modelled"),
            };
            legend.push(LegendEntry::line(
                label,
                color,
                emulated.then_some(Marker::Circle),
                *emulated,
            ));
        }
    }
    legend.push(LegendEntry::heading("Method"));
    for fam in &fams {
        legend.push(LegendEntry::marker(
            fam.label.clone(),
            RGBColor(40, 40, 40),
            fam.look.marker,
        ));
    }
    let mut footnote = String::from(
        "Median over runs (whiskers: min–max). Modelled: measured compute + bytes / bandwidth + rounds × RTT/2. Emulated: run through a throttled channel.",
    );
    if !markers_suffice(fams.len()) {
        footnote.push_str(&format!(
            " More method lines than markers ({}): some share one; results.csv tells them apart.",
            MARKERS.len()
        ));
    }
    XyChart {
        title: "Private inference latency against ReLU budget".into(),
        size: (1700, 760),
        panels,
        legend,
        footnote: Some(footnote),
    }
}

fn communication_chart(sweep: &Sweep) -> XyChart {
    let fams = families(sweep);
    let mut panels = phase_panels("communication (MB)");
    // (label, client → server, server → client)
    let dirs: [(&str, bool, bool); 3] = [
        ("both directions", true, true),
        ("server → client", false, true),
        ("client → server", true, false),
    ];
    let mut legend = vec![LegendEntry::heading("Method")];
    for fam in &fams {
        let (color, gs) = (fam.look.color, &fam.groups);
        legend.push(LegendEntry::bar(fam.label.clone(), color));
        for (di, (_, c2s, s2c)) in dirs.iter().enumerate() {
            let pick = |p: &super::sweep::PhaseStat| {
                let mut v = 0.0;
                if *c2s {
                    v += p.bytes_client_to_server.median;
                }
                if *s2c {
                    v += p.bytes_server_to_client.median;
                }
                v / 1e6
            };
            let series = |f: &dyn Fn(&ModelGroup) -> f64| -> Vec<_> {
                gs.iter()
                    .map(|g| {
                        let v = f(g);
                        (g.budget as f64 / 1000.0, v, v, v, String::new())
                    })
                    .collect()
            };
            let off = series(&|g| pick(&g.offline));
            let on = series(&|g| pick(&g.online));
            for (panel, pts) in panels.iter_mut().zip([off, on]) {
                panel
                    .series
                    .push(XySeries::line(color, MARKERS[di], di > 0, pts));
            }
        }
    }
    legend.push(LegendEntry::heading("Direction"));
    for (di, (dname, _, _)) in dirs.iter().enumerate() {
        legend.push(LegendEntry::line(
            dname.to_string(),
            RGBColor(60, 60, 60),
            Some(MARKERS[di]),
            di > 0,
        ));
    }
    XyChart {
        title: "Communication against ReLU budget".into(),
        size: (1700, 760),
        panels,
        legend,
        footnote: Some(communication_footnote(&fams)),
    }
}

/// The communication chart's footnote: the unit, and which families' lines hide others. Bytes
/// follow from the kept ReLUs and the architecture alone, so two methods at the same budgets
/// draw the same line and the one drawn later covers the other; the footnote says so rather
/// than leave a family missing from the plot.
fn communication_footnote(fams: &[Family<'_>]) -> String {
    let bytes = |g: &ModelGroup| {
        [&g.offline, &g.online].map(|p| {
            (
                p.bytes_client_to_server.median,
                p.bytes_server_to_client.median,
            )
        })
    };
    // (method under, method over), once each: the chart is narrow for a list of networks.
    let mut hidden: Vec<(String, String)> = Vec::new();
    for (i, fam) in fams.iter().enumerate() {
        let (under, a) = (&fam.method, &fam.groups);
        let over = fams[i + 1..].iter().find(|f| {
            let b = &f.groups;
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.budget == y.budget && bytes(x) == bytes(y))
        });
        if let Some(Family { method: over, .. }) = over {
            let pair = (method_display(under), method_display(over));
            if !hidden.contains(&pair) {
                hidden.push(pair);
            }
        }
    }
    let mut note = String::from("Median bytes per inference over runs; 1 MB = 10⁶ bytes.");
    for (under, over) in &hidden {
        let same = if under == over {
            " (another network's)"
        } else {
            ""
        };
        note.push_str(&format!(
            " {under}'s lines lie under {over}'s{same}: equal budgets move equal bytes."
        ));
    }
    note
}

/// The stage of each layer: the name up to its first dot (`layer2.0.conv1` → `layer2`); layers
/// without one are `stem` before the first staged layer and `head` after; the transfers at
/// either end keep their own names.
fn stages(g: &ModelGroup) -> Vec<String> {
    let first = g.layers.iter().position(|l| l.name.contains('.'));
    g.layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if matches!(l.kind.as_str(), "input" | "output") {
                l.kind.clone()
            } else if let Some((stage, _)) = l.name.split_once('.') {
                stage.to_string()
            } else if first.is_some_and(|f| i < f) {
                "stem".into()
            } else if first.is_some() {
                "head".into()
            } else {
                l.name.clone()
            }
        })
        .collect()
}

fn breakdown_chart(g: &ModelGroup) -> BarChart {
    let st = stages(g);
    let mut cats: Vec<String> = Vec::new();
    for s in &st {
        if !cats.contains(s) {
            cats.push(s.clone());
        }
    }
    let per_layer = cats.len() == g.layers.len();
    let idx = |i: usize| cats.iter().position(|c| *c == st[i]).unwrap_or(0);
    let n = cats.len();
    let mut v = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    for (i, l) in g.layers.iter().enumerate() {
        let c = idx(i);
        let r = usize::from(l.is_relu());
        v[r][c] += l.offline_seconds;
        v[2 + r][c] += l.online_seconds;
    }
    let off_lin = RGBColor(31, 78, 121);
    let off_relu = RGBColor(111, 168, 220);
    let on_lin = RGBColor(180, 95, 6);
    let on_relu = RGBColor(246, 178, 107);
    let [a, b, c, d] = v;
    BarChart {
        title: format!(
            "Where the time goes: {} ({} ReLUs kept)",
            g.label(),
            fmt_budget(g.budget)
        ),
        size: (1500, 800),
        panels: vec![BarPanel {
            title: String::new(),
            y_desc: "compute time (s)".into(),
            x_desc: if per_layer { "layer" } else { "stage" }.into(),
            categories: cats,
            slots: vec![
                BarSlot {
                    segments: vec![
                        BarSegment {
                            color: off_lin,
                            values: a,
                        },
                        BarSegment {
                            color: off_relu,
                            values: b,
                        },
                    ],
                },
                BarSlot {
                    segments: vec![
                        BarSegment {
                            color: on_lin,
                            values: c,
                        },
                        BarSegment {
                            color: on_relu,
                            values: d,
                        },
                    ],
                },
            ],
            value_labels: false,
            value_unit: String::new(),
        }],
        legend: vec![
            LegendEntry::bar("offline · linear & local".into(), off_lin),
            LegendEntry::bar("offline · ReLU (garbled)".into(), off_relu),
            LegendEntry::bar("online · linear & local".into(), on_lin),
            LegendEntry::bar("online · ReLU (garbled)".into(), on_relu),
        ],
        footnote: Some(format!(
            "Median over {} run(s), measured compute without a link model. Left bar of each pair: offline; right: online.{}",
            g.runs.len(),
            if g.backend == "dealer" {
                " Dealer backend: the linear layers' offline cost is not measured."
            } else {
                ""
            }
        )),
    }
}

/// Pairs of methods at equal nominal budgets on one network: `(network, budgets, methods,
/// groups[method][budget])`.
pub(super) type Comparison<'a> = (
    String,
    Vec<u64>,
    Vec<String>,
    Vec<Vec<Option<&'a ModelGroup>>>,
);

pub(super) fn comparison_data(sweep: &Sweep) -> Option<Comparison<'_>> {
    let mut nets: BTreeMap<String, Vec<&ModelGroup>> = BTreeMap::new();
    for g in &sweep.groups {
        if g.key.bn_path.is_empty() || g.key.bn_path == "clean" {
            nets.entry(format!("{} / {}", g.architecture, g.dataset))
                .or_default()
                .push(g);
        }
    }
    let mut best: Option<Comparison<'_>> = None;
    for (net, gs) in nets {
        let mut methods: Vec<String> = gs.iter().map(|g| g.method.clone()).collect();
        methods.sort_by_key(|m| (m != "rlnet", m.clone()));
        methods.dedup();
        if methods.len() < 2 {
            continue;
        }
        let mut budgets: Vec<u64> = gs
            .iter()
            .map(|g| g.nominal_budget)
            .filter(|b| {
                gs.iter()
                    .filter(|g| g.nominal_budget == *b)
                    .map(|g| &g.method)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    >= 2
            })
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        if budgets.is_empty() {
            continue;
        }
        let table: Vec<Vec<Option<&ModelGroup>>> = methods
            .iter()
            .map(|m| {
                budgets
                    .iter()
                    .map(|b| {
                        gs.iter()
                            .find(|g| &g.method == m && g.nominal_budget == *b)
                            .copied()
                    })
                    .collect()
            })
            .collect();
        if best.as_ref().is_none_or(|b| b.1.len() < budgets.len()) {
            best = Some((net, budgets, methods, table));
        }
    }
    best
}

/// The link used for comparisons: the option, else `wan`, else the first link, else compute.
pub(super) fn compare_link(sweep: &Sweep, opts: &ReportOptions) -> Option<String> {
    let names = sweep.link_names();
    if let Some(l) = &opts.compare_link {
        return names.contains(l).then(|| l.clone());
    }
    if names.iter().any(|n| n == "wan") {
        return Some("wan".into());
    }
    names.into_iter().next()
}

pub(super) fn phase_seconds(g: &ModelGroup, link: Option<&str>) -> (f64, f64) {
    match link.and_then(|l| g.link(l, false)) {
        Some(l) => (l.offline.median, l.online.median),
        None => (g.offline.seconds.median, g.online.seconds.median),
    }
}

/// A panel of a comparison at equal budgets: one bar per method at each budget, with its value
/// written above it (0 where a method has no model at that budget).
pub(super) fn comparison_panel(
    c: &Comparison<'_>,
    title: String,
    y_desc: &str,
    value_unit: &str,
    value: &dyn Fn(&ModelGroup) -> Option<f64>,
) -> BarPanel {
    let (_, budgets, methods, table) = c;
    let slots = method_colors(methods)
        .into_iter()
        .enumerate()
        .map(|(mi, color)| BarSlot {
            segments: vec![BarSegment {
                color,
                values: table[mi]
                    .iter()
                    .map(|g| g.and_then(value).unwrap_or(0.0))
                    .collect(),
            }],
        })
        .collect();
    BarPanel {
        title,
        y_desc: y_desc.into(),
        x_desc: "ReLU budget".into(),
        categories: budgets.iter().map(|b| fmt_budget(*b)).collect(),
        slots,
        value_labels: true,
        value_unit: value_unit.into(),
    }
}

fn comparison_chart(c: &Comparison<'_>, link: Option<&str>) -> BarChart {
    let (net, _, methods, _) = c;
    let panels = vec![
        comparison_panel(c, "Offline phase".into(), "latency (s)", " s", &|g| {
            Some(phase_seconds(g, link).0)
        }),
        comparison_panel(c, "Online phase".into(), "latency (s)", " s", &|g| {
            Some(phase_seconds(g, link).1)
        }),
    ];
    let names: Vec<String> = methods.iter().map(|m| method_display(m)).collect();
    BarChart {
        title: format!(
            "{} at equal ReLU budgets — {net}, {}",
            names.join(" vs "),
            link.map_or("compute only".to_string(), |l| format!("{l} link"))
        ),
        size: (1600, 760),
        panels,
        legend: method_legend(methods),
        footnote: Some(
            "Median over runs; budgets are the nominal budgets of the model cards.".into(),
        ),
    }
}

/// Reads one accuracy out of a card.
type AccuracyField = fn(&crate::model::Accuracy) -> Option<f64>;

fn accuracy_chart(sweep: &Sweep, link: Option<&str>) -> Option<XyChart> {
    let kinds: [(&str, AccuracyField); 3] =
        [("CA", |a| a.clean), ("NPA", |a| a.npa), ("AdvA", |a| a.adv)];
    let fams = families(sweep);
    let mut series = Vec::new();
    // Colour says the method, the marker says which accuracy.
    let mut legend = vec![LegendEntry::heading("Method")];
    let mut kinds_used = [false; 3];
    // Budgets already written: the curves of two methods share their x at equal budgets.
    let mut written: Vec<u64> = Vec::new();
    for fam in &fams {
        let (flabel, color, gs) = (&fam.label, fam.look.color, &fam.groups);
        let mut labelled = false;
        let mut any = false;
        for (ki, (_, get)) in kinds.iter().enumerate() {
            let pts: Vec<_> = gs
                .iter()
                .filter_map(|g| {
                    let acc = g.accuracy.as_ref().and_then(get)?;
                    let (_, on) = phase_seconds(g, link);
                    // Budgets are written once, on the topmost curve of the first method.
                    let tag = if labelled || written.contains(&g.nominal_budget) {
                        String::new()
                    } else {
                        fmt_budget(g.nominal_budget)
                    };
                    Some((on, acc, acc, acc, tag))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            if !labelled {
                written.extend(gs.iter().map(|g| g.nominal_budget));
            }
            labelled = true;
            any = true;
            kinds_used[ki] = true;
            series.push(XySeries::line(color, MARKERS[ki], false, pts));
        }
        if any {
            legend.push(LegendEntry::line(flabel.clone(), color, None, false));
        }
    }
    legend.push(LegendEntry::heading("Accuracy"));
    for (ki, (kname, _)) in kinds.iter().enumerate() {
        if kinds_used[ki] {
            legend.push(LegendEntry::marker(
                kname.to_string(),
                RGBColor(60, 60, 60),
                MARKERS[ki],
            ));
        }
    }
    if series.is_empty() {
        return None;
    }
    let link_name = link.map_or("compute only".to_string(), |l| format!("{l} link"));
    Some(XyChart {
        title: format!("Accuracy against online latency ({link_name})"),
        size: (1400, 800),
        panels: vec![XyPanel {
            series,
            log_x: true,
            ..XyPanel::new(
                String::new(),
                format!("online latency, {link_name} (s)"),
                "accuracy (%)",
            )
        }],
        legend,
        footnote: Some(
            "Accuracies as the model cards report them (CA clean, NPA natural perturbations, AdvA adversarial); point labels: ReLU budget."
                .into(),
        ),
    })
}

/// Draw every plot the sweep supports into `dir`. With `measured_accuracy` (pibench evaluated the
/// models: [`super::accuracy`] draws those), the chart of the cards' own accuracies is not drawn.
pub fn write_plots(
    sweep: &Sweep,
    dir: &Path,
    opts: &ReportOptions,
    measured_accuracy: bool,
) -> Result<PlotSet, ReportError> {
    let mut set = PlotSet::default();
    let png = opts.png
        && match ensure_font(&opts.font_path) {
            Ok(()) => true,
            Err(e) => {
                let msg = format!(
                    "PNG plots skipped: {e} (install the Debian package fonts-dejavu-core); SVGs written."
                );
                eprintln!("warning: {msg}");
                set.notes.push(msg);
                false
            }
        };
    let mut add = |stem: &str, title: &str, chart: Chart| -> Result<(), ReportError> {
        set.files.push(render(dir, stem, title, &chart, png)?);
        Ok(())
    };

    add(
        stem::LATENCY,
        "Offline and online latency against ReLU budget, per link",
        Chart::Xy(latency_chart(sweep)),
    )?;
    add(
        stem::COMMUNICATION,
        "Communication against ReLU budget",
        Chart::Xy(communication_chart(sweep)),
    )?;

    let with_layers: Vec<&ModelGroup> = sweep
        .groups
        .iter()
        .filter(|g| !g.layers.is_empty())
        .collect();
    let chosen = match &opts.breakdown_model {
        Some(name) => with_layers
            .iter()
            .find(|g| &g.name == name || &g.label() == name || &g.key.path == name)
            .copied(),
        // The largest budget, RLNet's when it has one: the model the report is about.
        None => with_layers
            .iter()
            .max_by_key(|g| (g.budget, g.method == "rlnet"))
            .copied(),
    };
    let mut notes = Vec::new();
    match chosen {
        Some(g) => add(
            stem::BREAKDOWN,
            &format!("Per-stage breakdown of {}", g.label()),
            Chart::Bar(breakdown_chart(g)),
        )?,
        None => notes.push(match &opts.breakdown_model {
            Some(n) => {
                format!("Per-layer breakdown skipped: no model named `{n}` with per-layer costs.")
            }
            None => "Per-layer breakdown skipped: no run carries per-layer costs.".into(),
        }),
    }

    let link = compare_link(sweep, opts);
    if let (Some(want), None) = (&opts.compare_link, &link) {
        notes.push(format!(
            "Comparison link `{want}` is not in the results; comparisons use compute time only."
        ));
    }
    match comparison_data(sweep) {
        Some(c) => {
            let names: Vec<String> = c.2.iter().map(|m| method_display(m)).collect();
            add(
                stem::METHODS,
                &format!("{} at equal ReLU budgets", names.join(" vs ")),
                Chart::Bar(comparison_chart(&c, link.as_deref())),
            )?
        }
        None => notes.push(
            "Method comparison skipped: no two methods (e.g. RLNet and SeNet) share a nominal budget on the same network."
                .into(),
        ),
    }
    match accuracy_chart(sweep, link.as_deref()) {
        // The cards' accuracies (as training reported them) give way to the measured ones.
        Some(_) if measured_accuracy => notes.push(
            "The model cards' accuracies (as training reported them) are not plotted: pibench measured them (see Accuracy)."
                .into(),
        ),
        Some(c) => add(
            stem::CARD_ACCURACY,
            "Accuracy against online latency",
            Chart::Xy(c),
        )?,
        None => notes.push(
            "Accuracy plot skipped: no model card carries accuracies (CA, NPA, AdvA).".into(),
        ),
    }
    set.notes.extend(notes);
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_format_in_thousands() {
        assert_eq!(fmt_budget(50_000), "50k");
        assert_eq!(fmt_budget(557_056), "557k");
        assert_eq!(fmt_budget(12_345), "12.3k");
        assert_eq!(fmt_budget(999), "999");
    }

    /// The default job's lines (RLNet and SeNet on two networks, the dense teacher) and, with
    /// `more`, three more methods: eight families, as many as there are markers.
    fn sweep(more: bool) -> Sweep {
        let mut models = vec![
            ("rlnet-c10-50k", "rlnet", "cifar10", 50_000),
            ("rlnet-c10-82k", "rlnet", "cifar10", 82_000),
            ("senet-c10-50k", "senet", "cifar10", 50_000),
            ("senet-c10-82k", "senet", "cifar10", 82_000),
            ("rlnet-d-6k", "rlnet", "digits-32", 6_000),
            ("rlnet-d-10k", "rlnet", "digits-32", 10_000),
            ("senet-d-6k", "senet", "digits-32", 6_000),
            ("senet-d-10k", "senet", "digits-32", 10_000),
            ("teacher", "dense", "digits-32", 69_632),
        ];
        if more {
            models.extend([
                ("snl-c10-50k", "snl", "cifar10", 50_000),
                ("autorep-c10-50k", "autorep", "cifar10", 50_000),
                ("deepreduce-c10-50k", "deepreduce", "cifar10", 50_000),
            ]);
        }
        let mut runs = crate::report::sweep::testing::measured_order(&models, 1, 2, None);
        for (i, r) in runs.iter_mut().enumerate() {
            r.model.card.accuracy = Some(crate::model::Accuracy {
                clean: Some(90.0 - i as f64 * 0.1),
                npa: Some(70.0),
                adv: Some(40.0),
                attack: None,
            });
        }
        Sweep::from_results(runs).unwrap()
    }

    /// No two series of a panel share colour and marker (a hollow marker is another marker
    /// than the filled one); every figure's legend names them.
    fn assert_series_distinct(chart: &XyChart) {
        for p in &chart.panels {
            let looks: Vec<_> = p
                .series
                .iter()
                .map(|s| (s.color, s.marker, s.hollow))
                .collect();
            for (i, a) in looks.iter().enumerate() {
                assert!(
                    !looks[i + 1..].contains(a),
                    "{}, panel {}: two series look like {a:?}",
                    chart.title,
                    p.title
                );
            }
            assert!(p.series.len() > 1, "{}: nothing to tell apart", chart.title);
        }
    }

    #[test]
    fn no_two_series_of_a_figure_look_alike() {
        for more in [false, true] {
            let sweep = sweep(more);
            let fams = families(&sweep);
            assert_eq!(fams.len(), if more { 8 } else { 5 });
            let latency = latency_chart(&sweep);
            assert_series_distinct(&latency);
            assert!(!latency.footnote.unwrap().contains("share one"));
            assert_series_distinct(&communication_chart(&sweep));
            assert_series_distinct(&accuracy_chart(&sweep, Some("wan")).unwrap());
        }
    }

    #[test]
    fn every_family_has_its_own_colour_and_marker_known_methods_their_own() {
        let methods = [
            "rlnet", "rlnet", "senet", "senet", "dense", "snl", "x", "y", "z", "u", "v", "w",
        ];
        let l = looks(&methods);
        assert_eq!(l.len(), methods.len());
        // A method's own look goes to its first family.
        assert_eq!(Some(l[0]), method_look("rlnet"));
        assert_eq!(Some(l[2]), method_look("senet"));
        assert_eq!(Some(l[4]), method_look("dense"));
        assert_eq!(Some(l[5]), method_look("snl"));
        // The second RLNet line borrows nothing another known method owns.
        let owned = ["rlnet", "senet", "snl", "dense"].map(|m| method_look(m).unwrap());
        assert!(owned
            .iter()
            .all(|o| o.color != l[1].color && o.marker != l[1].marker));
        for (i, a) in l.iter().enumerate() {
            for b in &l[i + 1..] {
                assert_ne!(a.color, b.color, "colours repeat: {l:?}");
            }
        }
        for (i, a) in l[..MARKERS.len()].iter().enumerate() {
            for b in &l[i + 1..MARKERS.len()] {
                assert_ne!(a.marker, b.marker, "markers repeat: {l:?}");
            }
        }
        assert!(markers_suffice(MARKERS.len()) && !markers_suffice(MARKERS.len() + 1));
    }
}
