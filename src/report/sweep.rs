//! A sweep: many measured runs, grouped by model (bundle path + batch-norm path), with the median
//! and spread of every figure a table or plot needs, and the one-row-per-run `results.csv`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::net::link::Link;
use crate::results::{LayerCost, PhaseCost, RunResult};

use super::ReportError;

/// Median and spread of one figure over the runs of a group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Stat {
    /// The statistics of `values`; all zero for an empty slice. NaNs are ignored.
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        }
    }

    /// Whether the spread is large enough to be worth showing next to the median (more than 2%).
    pub fn has_spread(&self) -> bool {
        self.n > 1 && (self.max - self.min) > 0.02 * self.median.abs().max(f64::MIN_POSITIVE)
    }
}

/// Median and spread of one phase's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseStat {
    /// Wall-clock seconds (measured compute, loopback or in-memory transport).
    pub seconds: Stat,
    /// Bytes client → server.
    pub bytes_client_to_server: Stat,
    /// Bytes server → client.
    pub bytes_server_to_client: Stat,
    /// Rounds (flights).
    pub rounds: Stat,
}

impl PhaseStat {
    fn of<'a>(phases: impl Iterator<Item = &'a PhaseCost> + Clone) -> PhaseStat {
        let col = |f: fn(&PhaseCost) -> f64| Stat::of(&phases.clone().map(f).collect::<Vec<_>>());
        PhaseStat {
            seconds: col(|p| p.seconds),
            bytes_client_to_server: col(|p| p.bytes_client_to_server as f64),
            bytes_server_to_client: col(|p| p.bytes_server_to_client as f64),
            rounds: col(|p| p.rounds as f64),
        }
    }

    /// Median bytes in both directions.
    pub fn bytes(&self) -> f64 {
        self.bytes_client_to_server.median + self.bytes_server_to_client.median
    }
}

/// One link's latency over the runs of a group, estimated or emulated.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkStat {
    /// The link, as the results carry it.
    pub link: Link,
    /// Whether these are measurements through a throttled channel rather than estimates.
    pub emulated: bool,
    /// Offline seconds on the link.
    pub offline: Stat,
    /// Online seconds on the link.
    pub online: Stat,
}

/// Median per-layer costs of a group (layers matched by position and name across runs).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStat {
    /// Layer name.
    pub name: String,
    /// Op kind.
    pub kind: String,
    /// ReLUs kept (ReLU sites).
    pub relus_kept: u64,
    /// MACs (linear layers).
    pub macs: u64,
    /// Median offline seconds.
    pub offline_seconds: f64,
    /// Median online seconds.
    pub online_seconds: f64,
    /// Median offline bytes (both directions).
    pub offline_bytes: f64,
    /// Median online bytes (both directions).
    pub online_bytes: f64,
}

impl LayerStat {
    /// Whether this layer's cost belongs to the garbled-circuit (ReLU) side rather than the
    /// linear/local side.
    pub fn is_relu(&self) -> bool {
        is_relu_kind(&self.kind)
    }
}

/// Whether a layer kind is evaluated in a garbled circuit.
pub(crate) fn is_relu_kind(kind: &str) -> bool {
    matches!(kind, "relu" | "maxpool")
}

/// Whether a layer kind is a linear layer with its own preprocessing (a MAC-carrying op).
pub(crate) fn is_linear_kind(kind: &str) -> bool {
    matches!(kind, "conv2d" | "linear")
}

/// The identity of a model in a sweep: its bundle and the batch-norm path it was run with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelKey {
    /// Bundle path.
    pub path: String,
    /// Batch-norm path (`clean`/`adv`).
    pub bn_path: String,
    /// The garbling scheme and OT (`three-halves + softspoken-k4`) when the sweep compares
    /// several, else empty.
    pub gc: String,
}

/// The runs of one model and their statistics.
#[derive(Clone, Debug)]
pub struct ModelGroup {
    /// Which model.
    pub key: ModelKey,
    /// A short name for tables and plots (the card's name, else the bundle's file stem).
    pub name: String,
    /// Linearization method from the card (`rlnet`, `senet`, `snl`, ...), lower case.
    pub method: String,
    /// Architecture from the card.
    pub architecture: String,
    /// Dataset from the card.
    pub dataset: String,
    /// ReLUs kept (the budget actually run).
    pub budget: u64,
    /// The budget the card names (the training target, e.g. 50 000), else `budget`: models of
    /// different methods are compared at equal nominal budgets.
    pub nominal_budget: u64,
    /// Accuracies from the card.
    pub accuracy: Option<crate::model::Accuracy>,
    /// ReLU elements over all sites.
    pub total_relus: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    /// ReLU sites with at least one kept ReLU.
    pub relu_sites: u64,
    /// Linear layers (convolutions and fully connected).
    pub linear_layers: u64,
    /// Linear preprocessing backend of its first run (`dealer`, `he`).
    pub backend: String,
    /// Indices into [`Sweep::runs`].
    pub runs: Vec<usize>,
    /// Setup phase.
    pub setup: PhaseStat,
    /// Offline phase.
    pub offline: PhaseStat,
    /// Online phase.
    pub online: PhaseStat,
    /// Bytes the client stores between the phases.
    pub client_storage_bytes: Stat,
    /// Peak resident memory.
    pub peak_rss_bytes: Stat,
    /// Runs whose secure result matched the oracle.
    pub correct: usize,
    /// Runs whose secure logits matched the oracle bit for bit.
    pub exact: usize,
    /// Per link (estimated, and emulated where run), in preset order then by name.
    pub links: Vec<LinkStat>,
    /// Median per-layer costs (empty when the runs disagree on the layer list).
    pub layers: Vec<LayerStat>,
}

impl ModelGroup {
    /// The name with the batch-norm path when it is not the default clean path.
    pub fn label(&self) -> String {
        let name = if self.key.bn_path.is_empty() || self.key.bn_path == "clean" {
            self.name.clone()
        } else {
            format!("{} ({} BN)", self.name, self.key.bn_path)
        };
        if self.key.gc.is_empty() {
            name
        } else {
            format!("{name} [{}]", self.key.gc)
        }
    }

    /// The link statistics for `link`, estimated (`emulated == false`) or emulated.
    pub fn link(&self, link: &str, emulated: bool) -> Option<&LinkStat> {
        self.links
            .iter()
            .find(|l| l.link.name == link && l.emulated == emulated)
    }
}

/// A set of measured runs grouped by model.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// Every run, in report order ([`Sweep::from_results`]): whatever order they were given in
    /// (measured, or loaded from files), runs that record their place in a sweep come out in
    /// the same order; runs that record none keep the order they were given in among equals.
    pub runs: Vec<RunResult>,
    /// The groups, sorted by architecture, dataset, method, budget, name and BN path.
    pub groups: Vec<ModelGroup>,
}

/// Sort key of link names: presets first in a fixed order, then the rest by name.
pub(crate) fn link_order(name: &str) -> (usize, String) {
    let rank = Link::preset_rank(name).unwrap_or(usize::MAX);
    (rank, name.to_string())
}

/// The order of a run among the runs of its model: measured runs before emulated ones (in
/// link order), each by sweep (the first, then the appended ones), input and repeat. A run
/// without its place in a sweep sorts as the first sweep's input 0, repeat 0.
pub(crate) fn run_order(run: &RunResult) -> (Option<(usize, String)>, u64, u64, u64) {
    let emulated = run
        .links
        .iter()
        .find(|l| l.emulated)
        .map(|l| link_order(&l.link.name));
    let (appended, input, repeat) = run
        .sweep
        .as_ref()
        .map_or((0, 0, 0), |p| (p.appended, p.input, p.repeat));
    (emulated, appended, input, repeat)
}

/// The short name of a run's model.
pub(crate) fn model_name(run: &RunResult) -> String {
    if let Some(n) = run.model.card.name.as_ref().filter(|n| !n.is_empty()) {
        return n.clone();
    }
    let stem = Path::new(&run.model.path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem.is_empty() {
        format!(
            "{}-{}-{}",
            run.model.card.architecture, run.model.card.method, run.model.budget
        )
    } else {
        stem
    }
}

/// ReLU sites with at least one kept ReLU and linear layers, from a run's per-layer costs.
pub(crate) fn structure_of(run: &RunResult) -> (u64, u64) {
    let sites = run
        .layers
        .iter()
        .filter(|l| is_relu_kind(&l.kind) && l.relus_kept > 0)
        .count() as u64;
    let linear = run
        .layers
        .iter()
        .filter(|l| is_linear_kind(&l.kind))
        .count() as u64;
    (sites, linear)
}

impl Sweep {
    /// Group `runs` by model and put them in report order, the one order of `results.csv`
    /// and of every table: by model in the order of [`Sweep::groups`], and within a model its
    /// measured runs by sweep (appended ones after), input and repeat, then its emulated runs in
    /// link order (`run_order`). Runs that do not record their place in a sweep (older files,
    /// `pibench run`) keep the order given among equals. Fails on an empty set.
    pub fn from_results(runs: Vec<RunResult>) -> Result<Sweep, ReportError> {
        if runs.is_empty() {
            return Err(ReportError::NoResults);
        }
        let mut by_key: BTreeMap<ModelKey, Vec<usize>> = BTreeMap::new();
        // Runs of different garbling schemes or OTs are different groups.
        let several_gc = runs.iter().any(|r| r.gc != runs[0].gc);
        for (i, r) in runs.iter().enumerate() {
            let key = ModelKey {
                path: r.model.path.clone(),
                bn_path: r.model.bn_path.clone(),
                gc: if several_gc {
                    r.gc.to_string()
                } else {
                    String::new()
                },
            };
            by_key.entry(key).or_default().push(i);
        }
        let mut groups: Vec<ModelGroup> = by_key
            .into_iter()
            .map(|(key, mut idx)| {
                // Stable: equal places keep the order given.
                idx.sort_by_cached_key(|&i| run_order(&runs[i]));
                build_group(key, idx, &runs)
            })
            .collect();
        groups.sort_by(|a, b| {
            (
                &a.architecture,
                &a.dataset,
                &a.method,
                a.budget,
                &a.name,
                &a.key,
            )
                .cmp(&(
                    &b.architecture,
                    &b.dataset,
                    &b.method,
                    b.budget,
                    &b.name,
                    &b.key,
                ))
        });
        // The runs in group order; each group's indices then count in the new order.
        let order: Vec<usize> = groups.iter().flat_map(|g| g.runs.clone()).collect();
        let mut slots: Vec<Option<RunResult>> = runs.into_iter().map(Some).collect();
        let runs: Vec<RunResult> = order.iter().filter_map(|&i| slots[i].take()).collect();
        let mut next = 0;
        for g in &mut groups {
            g.runs = (next..next + g.runs.len()).collect();
            next += g.runs.len();
        }
        Ok(Sweep { runs, groups })
    }

    /// Load every `*.json` file of `dir` (not recursive) as a [`RunResult`]. A file that is a
    /// JSON array of results contributes all of them. Files that fail to parse are an error
    /// naming the file: a report silently missing runs would be presented as complete.
    pub fn load_dir(dir: &Path) -> Result<Sweep, ReportError> {
        let rd = std::fs::read_dir(dir).map_err(ReportError::io(dir))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in rd {
            let entry = entry.map_err(ReportError::io(dir))?;
            let p = entry.path();
            let is_json = p.extension().is_some_and(|e| e == "json");
            // costmodel.json lives next to results in a report directory; it is not a run.
            let is_costmodel = p.file_name().is_some_and(|n| n == "costmodel.json");
            if is_json && !is_costmodel && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        let mut runs = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(ReportError::io(&f))?;
            let parsed: Result<Vec<RunResult>, _> = if text.trim_start().starts_with('[') {
                serde_json::from_str(&text)
            } else {
                serde_json::from_str::<RunResult>(&text).map(|r| vec![r])
            };
            runs.extend(parsed.map_err(ReportError::parse(&f))?);
        }
        if runs.is_empty() {
            return Err(ReportError::NoResultsIn(dir.to_path_buf()));
        }
        Sweep::from_results(runs)
    }

    /// The runs of a group.
    pub fn runs_of<'a>(&'a self, g: &'a ModelGroup) -> impl Iterator<Item = &'a RunResult> + 'a {
        g.runs.iter().map(move |&i| &self.runs[i])
    }

    /// Every (link, emulated) pair present in any run, in preset order.
    pub fn link_columns(&self) -> Vec<(String, bool)> {
        let mut cols: Vec<(String, bool)> = Vec::new();
        for r in &self.runs {
            for l in &r.links {
                let c = (l.link.name.clone(), l.emulated);
                if !cols.contains(&c) {
                    cols.push(c);
                }
            }
        }
        cols.sort_by_key(|c| (link_order(&c.0), c.1));
        cols
    }

    /// The link named `name` as the first run that carries it stores it.
    pub fn link_named(&self, name: &str) -> Option<&Link> {
        self.runs
            .iter()
            .flat_map(|r| &r.links)
            .map(|l| &l.link)
            .find(|l| l.name == name)
    }

    /// Estimated (not emulated) link names present in the sweep, in preset order.
    pub fn link_names(&self) -> Vec<String> {
        self.link_columns()
            .into_iter()
            .filter(|(_, e)| !e)
            .map(|(n, _)| n)
            .collect()
    }

    /// The CSV header of [`Sweep::to_csv`].
    pub fn csv_header(&self) -> Vec<String> {
        let mut h: Vec<String> = [
            "model",
            "method",
            "architecture",
            "dataset",
            "budget",
            "total_relus",
            "macs",
            "bn_path",
            "path",
            "backend",
            "ell",
            "frac",
            "threads",
            "transport",
            "setup_s",
            "offline_s",
            "online_s",
            "offline_bytes_c2s",
            "offline_bytes_s2c",
            "online_bytes_c2s",
            "online_bytes_s2c",
            "offline_rounds",
            "online_rounds",
            "client_storage_bytes",
            "server_storage_bytes",
            "peak_rss_bytes",
            "correct",
            "exact",
            "max_logit_diff_vs_oracle",
            "local_trunc_failure_prob",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (link, emulated) in self.link_columns() {
            let tag = if emulated {
                format!("{link}_emulated")
            } else {
                link
            };
            h.push(format!("{tag}_offline_s"));
            h.push(format!("{tag}_online_s"));
        }
        h
    }

    /// `results.csv`: a header and one row per run.
    pub fn to_csv(&self) -> String {
        self.to_csv_with(&[], &|_| Vec::new())
    }

    /// [`Sweep::to_csv`] with `extra_header` columns appended, filled per run by `extra` (the
    /// model's accuracies when the sweep was evaluated).
    pub fn to_csv_with(
        &self,
        extra_header: &[String],
        extra: &dyn Fn(&RunResult) -> Vec<String>,
    ) -> String {
        let cols = self.link_columns();
        let mut out = String::new();
        let mut header = self.csv_header();
        header.extend_from_slice(extra_header);
        push_csv_row(&mut out, &header);
        for r in &self.runs {
            let mut row: Vec<String> = vec![
                model_name(r),
                r.model.card.method.clone(),
                r.model.card.architecture.clone(),
                r.model.card.dataset.clone(),
                r.model.budget.to_string(),
                r.model.total_relus.to_string(),
                r.model.macs.to_string(),
                r.model.bn_path.clone(),
                r.model.path.clone(),
                r.backend.to_string(),
                r.ring.ell.to_string(),
                r.ring.frac.to_string(),
                r.threads.to_string(),
                r.transport.clone(),
                fmt_f(r.setup.seconds),
                fmt_f(r.offline.seconds),
                fmt_f(r.online.seconds),
                r.offline.bytes_client_to_server.to_string(),
                r.offline.bytes_server_to_client.to_string(),
                r.online.bytes_client_to_server.to_string(),
                r.online.bytes_server_to_client.to_string(),
                r.offline.rounds.to_string(),
                r.online.rounds.to_string(),
                r.client_storage_bytes.to_string(),
                r.server_storage_bytes.to_string(),
                r.peak_rss_bytes.to_string(),
                r.correct.to_string(),
                r.exact.to_string(),
                fmt_f(r.max_logit_diff_vs_oracle),
                format!("{:e}", r.local_truncation.failure_probability),
            ];
            for (link, emulated) in &cols {
                match r
                    .links
                    .iter()
                    .find(|l| &l.link.name == link && l.emulated == *emulated)
                {
                    Some(l) => {
                        row.push(fmt_f(l.offline_seconds));
                        row.push(fmt_f(l.online_seconds));
                    }
                    None => {
                        row.push(String::new());
                        row.push(String::new());
                    }
                }
            }
            row.extend(extra(r));
            push_csv_row(&mut out, &row);
        }
        out
    }

    /// Write [`Sweep::to_csv`] to `path`.
    pub fn save_csv(&self, path: &Path) -> Result<(), ReportError> {
        std::fs::write(path, self.to_csv()).map_err(ReportError::io(path))
    }
}

fn fmt_f(x: f64) -> String {
    format!("{x:.6}")
}

/// Append one RFC 4180 row: fields with commas, quotes or line breaks are quoted.
fn push_csv_row(out: &mut String, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            let _ = write!(out, "\"{}\"", f.replace('"', "\"\""));
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
}

fn build_group(key: ModelKey, idx: Vec<usize>, runs: &[RunResult]) -> ModelGroup {
    let rs: Vec<&RunResult> = idx.iter().map(|&i| &runs[i]).collect();
    let first = rs[0];
    // Runs through an emulated link measure compute *and* that link's transfers: they count for
    // their link's emulated figures only, never for the compute statistics.
    let measured: Vec<&RunResult> = if rs.iter().any(|r| r.transport != "emulated") {
        rs.iter()
            .copied()
            .filter(|r| r.transport != "emulated")
            .collect()
    } else {
        rs.clone()
    };
    let col = |f: &dyn Fn(&RunResult) -> f64| {
        Stat::of(&measured.iter().map(|r| f(r)).collect::<Vec<_>>())
    };

    // One column per link name (and emulated or not), the link as the first run carries it.
    let mut link_keys: Vec<(Link, bool)> = Vec::new();
    for r in &rs {
        for l in &r.links {
            if !link_keys
                .iter()
                .any(|(k, e)| k.name == l.link.name && *e == l.emulated)
            {
                link_keys.push((l.link.clone(), l.emulated));
            }
        }
    }
    link_keys.sort_by_key(|a| (link_order(&a.0.name), a.1));
    let links = link_keys
        .into_iter()
        .map(|(link, emulated)| {
            let pick = |f: fn(&crate::results::LinkEstimate) -> f64| {
                Stat::of(
                    &rs.iter()
                        .flat_map(|r| r.links.iter())
                        .filter(|l| l.link.name == link.name && l.emulated == emulated)
                        .map(f)
                        .collect::<Vec<_>>(),
                )
            };
            LinkStat {
                offline: pick(|l| l.offline_seconds),
                online: pick(|l| l.online_seconds),
                link,
                emulated,
            }
        })
        .collect();

    let (relu_sites, linear_layers) = structure_of(first);
    ModelGroup {
        name: model_name(first),
        method: first.model.card.method.to_lowercase(),
        architecture: first.model.card.architecture.clone(),
        dataset: first.model.card.dataset.clone(),
        budget: first.model.budget,
        nominal_budget: first.model.card.budget.unwrap_or(first.model.budget),
        accuracy: first.model.card.accuracy.clone(),
        total_relus: first.model.total_relus,
        macs: first.model.macs,
        relu_sites,
        linear_layers,
        backend: first.backend.to_string(),
        setup: PhaseStat::of(measured.iter().map(|r| &r.setup)),
        offline: PhaseStat::of(measured.iter().map(|r| &r.offline)),
        online: PhaseStat::of(measured.iter().map(|r| &r.online)),
        client_storage_bytes: col(&|r| r.client_storage_bytes as f64),
        peak_rss_bytes: col(&|r| r.peak_rss_bytes as f64),
        correct: rs.iter().filter(|r| r.correct).count(),
        exact: rs.iter().filter(|r| r.exact).count(),
        links,
        layers: layer_stats(&rs),
        runs: idx,
        key,
    }
}

/// Median per-layer costs, when every run has the same layer list.
fn layer_stats(rs: &[&RunResult]) -> Vec<LayerStat> {
    let first = &rs[0].layers;
    let same = rs.iter().all(|r| {
        r.layers.len() == first.len()
            && r.layers
                .iter()
                .zip(first)
                .all(|(a, b)| a.name == b.name && a.kind == b.kind)
    });
    if !same {
        return Vec::new();
    }
    (0..first.len())
        .map(|i| {
            let med = |f: fn(&LayerCost) -> f64| {
                Stat::of(&rs.iter().map(|r| f(&r.layers[i])).collect::<Vec<_>>()).median
            };
            let l = &first[i];
            LayerStat {
                name: l.name.clone(),
                kind: l.kind.clone(),
                relus_kept: l.relus_kept,
                macs: l.macs,
                offline_seconds: med(|l| l.offline.seconds),
                online_seconds: med(|l| l.online.seconds),
                offline_bytes: med(|l| l.offline.bytes() as f64),
                online_bytes: med(|l| l.online.bytes() as f64),
            }
        })
        .collect()
}

/// Synthetic runs for the report's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::net::link::Link;
    use crate::results::{LinkEstimate, ModelInfo, PhaseCost, RunResult, SweepPlace};

    /// A run of the model `name` (method, dataset, budget) whose times grow with the budget and
    /// with `jitter`, estimated on the preset links; emulated on LAN when `emulated`; at
    /// `place` (input, repeat) of a sweep run by `command` when given.
    pub(crate) fn run(
        name: &str,
        method: &str,
        dataset: &str,
        budget: u64,
        jitter: f64,
        emulated: bool,
        place: Option<(u64, u64, &str)>,
    ) -> RunResult {
        let phase = |s: f64| PhaseCost {
            seconds: s,
            bytes_client_to_server: 1000 + budget,
            bytes_server_to_client: 4000 + 16 * budget,
            rounds: 10,
            ..PhaseCost::default()
        };
        let (off, on) = (
            0.1 + budget as f64 * 1e-5 + jitter,
            0.05 + budget as f64 * 3e-6 + jitter,
        );
        let mut links: Vec<LinkEstimate> = Link::presets()
            .into_iter()
            .enumerate()
            .map(|(i, link)| LinkEstimate {
                link,
                offline_seconds: off * (2 + 3 * i) as f64,
                online_seconds: on * (2 + 3 * i) as f64,
                emulated: false,
            })
            .collect();
        if emulated {
            links.push(LinkEstimate {
                emulated: true,
                ..links[0].clone()
            });
        }
        RunResult {
            pibench_version: "0.1.0".into(),
            model: ModelInfo {
                path: format!("models/{name}.safetensors"),
                card: crate::model::ModelCard {
                    name: Some(name.into()),
                    architecture: "resnet18".into(),
                    dataset: dataset.into(),
                    method: method.into(),
                    budget: Some(budget),
                    ..Default::default()
                },
                bn_path: "clean".into(),
                fingerprint: String::new(),
                total_relus: 557_056,
                budget,
                macs: 555_000_000,
            },
            ring: crate::ring::Ring::default(),
            backend: crate::protocol::prepro::Backend::Dealer,
            gc: crate::protocol::GcOptions::RECOMMENDED,
            threads: 2,
            transport: if emulated { "emulated" } else { "memory" }.into(),
            machine: Default::default(),
            setup: phase(0.01),
            offline: phase(off),
            online: phase(on),
            layers: vec![],
            client_storage_bytes: 0,
            server_storage_bytes: 0,
            peak_rss_bytes: 0,
            and_gates_per_relu: 127,
            correct: true,
            exact: true,
            max_logit_diff_vs_oracle: 0.0,
            max_logit_diff_fixed_vs_f32: 0.0,
            predicted_class: 0,
            f32_class: 0,
            oracle_checked: true,
            logits: vec![0.0; 10],
            local_truncation: Default::default(),
            links,
            he: None,
            sweep: place.map(|(input, repeat, command)| SweepPlace {
                input,
                repeat,
                appended: 0,
                command: command.into(),
            }),
        }
    }

    /// A sweep as `pibench sweep` measures it: `inputs` × `repeats` runs of every model, the
    /// models innermost, then one LAN-emulated run of each; in the order they were measured.
    pub(crate) fn measured_order(
        models: &[(&str, &str, &str, u64)],
        inputs: u64,
        repeats: u64,
        command: Option<&str>,
    ) -> Vec<RunResult> {
        let mut runs = Vec::new();
        for input in 0..inputs {
            for rep in 0..repeats {
                for &(name, method, dataset, budget) in models {
                    let jitter = 0.001 * (input * repeats + rep) as f64;
                    let place = command.map(|c| (input, rep, c));
                    runs.push(run(name, method, dataset, budget, jitter, false, place));
                }
            }
        }
        for &(name, method, dataset, budget) in models {
            let place = command.map(|c| (0, 0, c));
            runs.push(run(name, method, dataset, budget, 0.0, true, place));
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: [(&str, &str, &str, u64); 4] = [
        ("rlnet-50k", "rlnet", "cifar10", 50_000),
        ("senet-50k", "senet", "cifar10", 50_000),
        ("rlnet-10k", "rlnet", "digits-32", 10_000),
        ("teacher", "dense", "digits-32", 69_632),
    ];

    /// The file a sweep writes a run to (`bench::sweep`'s names): what `load_dir` sorts by.
    fn file_name(r: &RunResult) -> String {
        let p = r.sweep.as_ref().unwrap();
        if r.transport == "emulated" {
            format!("{}-clean-input{}-emulated-lan.json", model_name(r), p.input)
        } else {
            format!(
                "{}-clean-input{}-rep{}.json",
                model_name(r),
                p.input,
                p.repeat
            )
        }
    }

    #[test]
    fn the_report_order_does_not_depend_on_the_order_runs_come_in() {
        let measured = testing::measured_order(&MODELS, 2, 11, Some("pibench sweep"));
        let as_swept = Sweep::from_results(measured.clone()).unwrap();
        // `pibench report DIR` reads the run files in file-name order, where rep10 sorts
        // before rep2 and the emulated run before rep0.
        let mut by_file = measured.clone();
        by_file.sort_by_key(file_name);
        assert_ne!(by_file, measured);
        let redrawn = Sweep::from_results(by_file).unwrap();
        assert_eq!(redrawn.runs, as_swept.runs);
        assert_eq!(redrawn.to_csv(), as_swept.to_csv());
        let mut reversed = measured;
        reversed.reverse();
        assert_eq!(Sweep::from_results(reversed).unwrap().runs, as_swept.runs);
        // The order: by model as the groups are, then input and repeat, emulated runs last.
        let mut next = 0;
        for g in &as_swept.groups {
            assert_eq!(g.runs, (next..next + g.runs.len()).collect::<Vec<_>>());
            next += g.runs.len();
            let runs: Vec<&RunResult> = as_swept.runs_of(g).collect();
            assert!(runs.iter().all(|r| r.model.path == g.key.path));
            let places: Vec<(bool, u64, u64)> = runs
                .iter()
                .map(|r| {
                    let p = r.sweep.as_ref().unwrap();
                    (r.transport == "emulated", p.input, p.repeat)
                })
                .collect();
            let mut sorted = places.clone();
            sorted.sort();
            assert_eq!(places, sorted);
            assert_eq!(places.len(), 2 * 11 + 1);
        }
        assert_eq!(next, as_swept.runs.len());
    }

    #[test]
    fn runs_without_a_place_keep_their_order_within_a_model() {
        let measured = testing::measured_order(&MODELS, 2, 2, None);
        let sweep = Sweep::from_results(measured.clone()).unwrap();
        for g in &sweep.groups {
            let given: Vec<&RunResult> = measured
                .iter()
                .filter(|r| r.model.path == g.key.path && r.transport != "emulated")
                .collect();
            let ordered: Vec<&RunResult> = sweep.runs_of(g).collect();
            // Measured runs in the order given, the emulated one last.
            assert_eq!(&ordered[..given.len()], &given[..]);
            assert_eq!(ordered.last().unwrap().transport, "emulated");
        }
    }

    #[test]
    fn stat_median_and_spread() {
        let s = Stat::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Stat::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.median, 2.5);
        assert!(s.has_spread());
        assert_eq!(Stat::of(&[]).n, 0);
        assert!(!Stat::of(&[5.0, 5.0]).has_spread());
    }

    #[test]
    fn csv_quotes_fields_with_commas() {
        let mut s = String::new();
        push_csv_row(&mut s, &["a,b".into(), "c\"d".into(), "e".into()]);
        assert_eq!(s, "\"a,b\",\"c\"\"d\",e\n");
    }

    #[test]
    fn links_sort_presets_first() {
        let mut v = vec!["zzz", "mobile", "lan", "abc", "wan"];
        v.sort_by_key(|n| link_order(n));
        assert_eq!(v, ["lan", "wan", "mobile", "abc", "zzz"]);
    }
}
