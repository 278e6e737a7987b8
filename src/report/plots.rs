//! The report's plots, each written as SVG and PNG with plotters: latency and communication
//! against the ReLU budget, a per-stage breakdown of one model, methods compared at equal
//! budgets, and accuracy against latency.
//!
//! Every plot is first turned into plain data ([`XyChart`] or [`BarChart`]) and then drawn by
//! one generic routine per chart kind, once per backend, so the SVG and the PNG cannot differ.
//! Axes are computed here rather than by plotters (nice 1-2-5 ticks, log scales as log10 of the
//! value with decade labels) so that tick labels are always readable numbers with units.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::sweep::{ModelGroup, Sweep};
use super::{ReportError, ReportOptions};

/// Where Debian's `fonts-dejavu-core` puts DejaVu Sans.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const FONT: &str = "sans-serif";

/// One plot written to disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotFile {
    /// File stem, e.g. `latency_vs_budget`.
    pub stem: String,
    /// Human-readable title.
    pub title: String,
    /// The SVG.
    pub svg: PathBuf,
    /// The PNG, when a font was available.
    pub png: Option<PathBuf>,
}

/// The plots of a report and what was skipped.
#[derive(Clone, Debug, Default)]
pub struct PlotSet {
    /// Plots written.
    pub files: Vec<PlotFile>,
    /// Plots skipped (and why), and font warnings.
    pub notes: Vec<String>,
}

/// Register the PNG font once per process. plotters' `ab_glyph` backend needs `'static` bytes,
/// so the file is read once and leaked; later calls reuse it whatever path they name.
fn ensure_font(path: &Path) -> Result<(), String> {
    static REGISTERED: Mutex<bool> = Mutex::new(false);
    let mut done = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return Ok(());
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read font {}: {e}", path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a usable TrueType font", path.display()))?;
    *done = true;
    Ok(())
}

/// Tableau-like palette: distinguishable, print-safe.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn link_color(link: &str, i: usize) -> RGBColor {
    match link {
        "compute" => RGBColor(90, 90, 90),
        "lan" => PALETTE[0],
        "wan" => PALETTE[1],
        "mobile" => PALETTE[2],
        _ => PALETTE[(3 + i) % PALETTE.len()],
    }
}

fn method_color(method: &str, i: usize) -> RGBColor {
    match method {
        "rlnet" => PALETTE[0],
        "senet" => PALETTE[1],
        "snl" => PALETTE[2],
        "dense" => PALETTE[7],
        _ => PALETTE[(3 + i) % PALETTE.len()],
    }
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

/// A tick value: integers without decimals, small values with two significant digits.
fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 || (a >= 1.0 && (v - v.round()).abs() < 1e-9) {
        format!("{}", v.round())
    } else if a >= 1.0 {
        trim_zeros(format!("{v:.2}"))
    } else {
        let digits = (-a.log10().floor()) as usize + 1;
        trim_zeros(format!("{v:.digits$}"))
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A chart axis over data values, linear or log10.
#[derive(Clone, Debug)]
struct Axis {
    log: bool,
    /// Range in plot space (log10 of the value when `log`).
    lo: f64,
    hi: f64,
    /// Tick positions in plot space.
    ticks: Vec<f64>,
}

impl Axis {
    /// An axis covering `values`; log when `allow_log` and they span more than 30×. Linear axes
    /// start at zero (costs are compared against nothing).
    fn fit(values: &[f64], allow_log: bool) -> Axis {
        let pos: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let max = pos.iter().copied().fold(0.0, f64::max);
        let min = pos.iter().copied().fold(f64::INFINITY, f64::min);
        if pos.is_empty() {
            return Axis::linear(0.0, 1.0);
        }
        if allow_log && max / min > 30.0 {
            let lo = (min / 1.6).log10();
            let hi = (max * 1.6).log10();
            let mut ticks = Vec::new();
            let mut dec = lo.floor() as i32;
            while (dec as f64) <= hi {
                for m in [1.0, 2.0, 5.0] {
                    let t = (m * 10f64.powi(dec)).log10();
                    if t >= lo && t <= hi {
                        ticks.push(t);
                    }
                }
                dec += 1;
            }
            // Span of many decades: keep only the powers of ten.
            if ticks.len() > 10 {
                ticks.retain(|t| (t - t.round()).abs() < 1e-9);
            }
            Axis {
                log: true,
                lo,
                hi,
                ticks,
            }
        } else {
            Axis::linear(0.0, max * 1.12)
        }
    }

    fn linear(lo: f64, hi: f64) -> Axis {
        let span = (hi - lo).max(1e-12);
        let raw = span / 6.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| span / s <= 7.0)
            .unwrap_or(10.0 * mag);
        let mut ticks = Vec::new();
        let mut t = (lo / step).ceil() * step;
        while t <= hi + 1e-9 * step {
            ticks.push(t);
            t += step;
        }
        // Let the top of the axis be a tick so the last value is labelled.
        let hi = ticks.last().copied().unwrap_or(hi).max(hi);
        Axis {
            log: false,
            lo,
            hi,
            ticks,
        }
    }

    fn fwd(&self, v: f64) -> f64 {
        if self.log {
            v.max(1e-300).log10()
        } else {
            v
        }
    }

    fn label(&self, t: f64) -> String {
        if self.log {
            fmt_tick(10f64.powf(t))
        } else {
            fmt_tick(t)
        }
    }
}

/// A linear plotters coordinate with the ticks we chose (plotters' own `WithKeyPoints` lacks
/// a default label formatter, which `configure_mesh` requires).
#[derive(Clone, Debug)]
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked {
        Ticked { lo, hi, ticks }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = (self.hi - self.lo).max(1e-300);
        let t = (value - self.lo) / span;
        limit.0 + (t * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // No light mesh lines: only the bold ticks we chose.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Marker shapes, one per method (or accuracy kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Diamond,
}

const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
];

fn marker_elem<'a, DB: DrawingBackend + 'a>(
    m: Marker,
    at: (i32, i32),
    size: i32,
    style: ShapeStyle,
) -> DynElement<'a, DB, (i32, i32)> {
    match m {
        Marker::Circle => Circle::new(at, size, style).into_dyn(),
        Marker::Triangle => TriangleMarker::new(at, size + 1, style).into_dyn(),
        Marker::Square => Rectangle::new(
            [(at.0 - size, at.1 - size), (at.0 + size, at.1 + size)],
            style,
        )
        .into_dyn(),
        Marker::Diamond => Polygon::new(
            vec![
                (at.0, at.1 - size - 1),
                (at.0 + size + 1, at.1),
                (at.0, at.1 + size + 1),
                (at.0 - size - 1, at.1),
            ],
            style,
        )
        .into_dyn(),
    }
}

/// One series of an x–y chart.
#[derive(Clone, Debug)]
struct XySeries {
    color: RGBColor,
    marker: Marker,
    /// Hollow markers and a thinner line (emulated measurements).
    hollow: bool,
    /// Connect the points with a line.
    line: bool,
    /// (x, y, y_min, y_max, point label).
    points: Vec<(f64, f64, f64, f64, String)>,
}

/// One panel of an x–y chart.
#[derive(Clone, Debug)]
struct XyPanel {
    title: String,
    x_desc: String,
    y_desc: String,
    series: Vec<XySeries>,
    log_y: bool,
    log_x: bool,
}

/// An x–y chart: panels side by side, one shared legend at the right.
#[derive(Clone, Debug)]
struct XyChart {
    title: String,
    size: (u32, u32),
    panels: Vec<XyPanel>,
    legend: Vec<LegendEntry>,
    footnote: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum LegendKey {
    /// A section heading, no key.
    Heading,
    /// A line, optionally with a marker (hollow: an emulated measurement).
    Line {
        marker: Option<Marker>,
        hollow: bool,
    },
    /// A marker alone.
    Marker(Marker),
    /// A filled box (bars).
    Box,
}

#[derive(Clone, Debug, PartialEq)]
struct LegendEntry {
    label: String,
    color: RGBColor,
    key: LegendKey,
}

/// One bar position within each category: a stack of segments.
#[derive(Clone, Debug)]
struct BarSlot {
    segments: Vec<BarSegment>,
}

#[derive(Clone, Debug)]
struct BarSegment {
    color: RGBColor,
    /// One value per category.
    values: Vec<f64>,
}

#[derive(Clone, Debug)]
struct BarPanel {
    title: String,
    y_desc: String,
    x_desc: String,
    categories: Vec<String>,
    slots: Vec<BarSlot>,
    /// Print each bar's total above it.
    value_labels: bool,
    value_unit: String,
}

#[derive(Clone, Debug)]
struct BarChart {
    title: String,
    size: (u32, u32),
    panels: Vec<BarPanel>,
    legend: Vec<LegendEntry>,
    footnote: Option<String>,
}

enum Chart {
    Xy(XyChart),
    Bar(BarChart),
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn text_style(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

fn legend_width(entries: &[LegendEntry]) -> u32 {
    let longest = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    (longest * 10 + 70).clamp(150, 420)
}

/// Split off the title (and footnote) and the legend column; return the plotting area.
fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[LegendEntry],
    footnote: Option<&str>,
) -> Result<DrawingArea<DB, Shift>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let (top, rest) = root.split_vertically(56);
    top.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 16),
        text_style(26.0).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    let rest = match footnote {
        Some(note) => {
            let (main, foot) = rest.split_vertically(h - 56 - 34);
            foot.draw(&Text::new(
                note.to_string(),
                (20, 8),
                text_style(15.0).color(&RGBColor(80, 80, 80)),
            ))?;
            main
        }
        None => rest,
    };
    if legend.is_empty() {
        return Ok(rest);
    }
    let lw = legend_width(legend);
    let (plot, leg) = rest.split_horizontally(w - lw);
    draw_legend(&leg, legend)?;
    Ok(plot)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let row = 28;
    let (w, _) = area.dim_in_pixel();
    let top = 40;
    area.draw(&Rectangle::new(
        [
            (4, top - 16),
            (w as i32 - 12, top + row * entries.len() as i32 - 8),
        ],
        ShapeStyle::from(&RGBColor(190, 190, 190)).stroke_width(1),
    ))?;
    for (i, e) in entries.iter().enumerate() {
        let y = top + row * i as i32;
        let x0 = 14;
        let mut text_x = x0 + 44;
        match e.key {
            LegendKey::Heading => {
                text_x = x0;
            }
            LegendKey::Line { marker, hollow } => {
                let style = ShapeStyle::from(&e.color).stroke_width(if hollow { 1 } else { 3 });
                area.draw(&PathElement::new(vec![(x0, y), (x0 + 34, y)], style))?;
                if let Some(m) = marker {
                    let fill = if hollow {
                        WHITE.filled()
                    } else {
                        e.color.filled()
                    };
                    area.draw(&marker_elem::<DB>(m, (x0 + 17, y), 5, fill))?;
                    let ring = ShapeStyle::from(&e.color).stroke_width(2);
                    area.draw(&marker_elem::<DB>(m, (x0 + 17, y), 5, ring))?;
                }
            }
            LegendKey::Marker(m) => {
                area.draw(&marker_elem::<DB>(m, (x0 + 17, y), 6, e.color.filled()))?;
            }
            LegendKey::Box => {
                area.draw(&Rectangle::new(
                    [(x0 + 6, y - 8), (x0 + 28, y + 8)],
                    e.color.filled(),
                ))?;
            }
        }
        let style = if e.key == LegendKey::Heading {
            text_style(17.0).color(&RGBColor(70, 70, 70))
        } else {
            text_style(17.0)
        };
        area.draw(&Text::new(
            e.label.clone(),
            (text_x, y),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// Draw a panel's title above it and return the rest. Drawn as plain text rather than a
/// plotters caption, which measures the text and so needs a font even for SVG.
fn panel_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    if title.is_empty() {
        return Ok(area.clone());
    }
    let (w, _) = area.dim_in_pixel();
    let (top, rest) = area.split_vertically(40);
    top.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 10),
        text_style(22.0).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(rest)
}

fn draw_xy<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &XyChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let plot = frame(root, &c.title, &c.legend, c.footnote.as_deref())?;
    let areas = plot.split_evenly((1, c.panels.len().max(1)));
    for (area, p) in areas.iter().zip(&c.panels) {
        let xs: Vec<f64> = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.0))
            .collect();
        let ys: Vec<f64> = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|q| [q.1, q.2, q.3]))
            .collect();
        let xa = Axis::fit(&xs, p.log_x);
        let ya = Axis::fit(&ys, p.log_y);
        let area = &panel_title(area, &p.title)?;
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .margin_right(28)
            .x_label_area_size(58)
            .y_label_area_size(86)
            .build_cartesian_2d(
                Ticked::new(xa.lo, xa.hi, xa.ticks.clone()),
                Ticked::new(ya.lo, ya.hi, ya.ticks.clone()),
            )?;
        let xl = |v: &f64| xa.label(*v);
        let yl = |v: &f64| ya.label(*v);
        chart
            .configure_mesh()
            .x_desc(&p.x_desc)
            .y_desc(&p.y_desc)
            .x_label_formatter(&xl)
            .y_label_formatter(&yl)
            .label_style(text_style(16.0))
            .axis_desc_style(text_style(18.0))
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        for s in &p.series {
            let mut pts: Vec<(f64, f64, f64, f64, String)> = s
                .points
                .iter()
                .map(|(x, y, lo, hi, l)| {
                    (xa.fwd(*x), ya.fwd(*y), ya.fwd(*lo), ya.fwd(*hi), l.clone())
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let width = if s.hollow { 1 } else { 2 };
            if s.line && pts.len() > 1 {
                chart.draw_series(std::iter::once(PathElement::new(
                    pts.iter().map(|q| (q.0, q.1)).collect::<Vec<_>>(),
                    ShapeStyle::from(&s.color).stroke_width(width),
                )))?;
            }
            // Spread over repeats (min–max), when visible.
            for q in &pts {
                if (q.3 - q.2).abs() > 1e-12 {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(q.0, q.2), (q.0, q.3)],
                        ShapeStyle::from(&s.color).stroke_width(1),
                    )))?;
                }
            }
            let style = if s.hollow {
                ShapeStyle::from(&WHITE).filled()
            } else {
                s.color.filled()
            };
            let stroke = ShapeStyle::from(&s.color).stroke_width(2);
            let m = s.marker;
            for q in &pts {
                let coord = chart.backend_coord(&(q.0, q.1));
                // backend_coord is absolute: draw on the root, whose origin is the backend's.
                root.draw(&marker_elem::<DB>(m, coord, 5, style))?;
                root.draw(&marker_elem::<DB>(m, coord, 5, stroke))?;
                if !q.4.is_empty() {
                    root.draw(&Text::new(
                        q.4.clone(),
                        (coord.0 + 8, coord.1 - 16),
                        text_style(14.0).color(&RGBColor(60, 60, 60)),
                    ))?;
                }
            }
        }
    }
    root.present()?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &BarChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let plot = frame(root, &c.title, &c.legend, c.footnote.as_deref())?;
    let areas = plot.split_evenly((1, c.panels.len().max(1)));
    for (area, p) in areas.iter().zip(&c.panels) {
        let n = p.categories.len();
        let totals: Vec<f64> = (0..n)
            .flat_map(|i| {
                p.slots
                    .iter()
                    .map(move |s| s.segments.iter().map(|g| g.values[i].max(0.0)).sum::<f64>())
            })
            .collect();
        let max = totals.iter().copied().fold(0.0, f64::max);
        let ya = Axis::linear(0.0, if max > 0.0 { max * 1.15 } else { 1.0 });
        // Category labels stay horizontal (plotters' rotated labels collide with the axis);
        // when crowded they shrink, then only every k-th is written.
        let widest = p
            .categories
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(1);
        let (label_px, every) = {
            let (w, _) = area.dim_in_pixel();
            let slot = (w as f64 - 140.0) / n.max(1) as f64;
            let need = |px: f64| widest as f64 * px * 0.62;
            if need(16.0) <= slot {
                (16.0, 1)
            } else if need(12.0) <= slot {
                (12.0, 1)
            } else {
                (12.0, (need(12.0) / slot).ceil() as usize)
            }
        };
        let area = &panel_title(area, &p.title)?;
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .margin_right(28)
            .x_label_area_size(58)
            .y_label_area_size(86)
            .build_cartesian_2d(
                Ticked::new(-0.5, n as f64 - 0.5, (0..n).map(|i| i as f64).collect()),
                Ticked::new(ya.lo, ya.hi, ya.ticks.clone()),
            )?;
        let cats = p.categories.clone();
        let xl = move |v: &f64| {
            let i = v.round() as usize;
            if i.is_multiple_of(every) {
                cats.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let yl = |v: &f64| ya.label(*v);
        let x_style = text_style(label_px);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(&p.x_desc)
            .y_desc(&p.y_desc)
            .x_label_formatter(&xl)
            .y_label_formatter(&yl)
            .x_label_style(x_style)
            .y_label_style(text_style(16.0))
            .axis_desc_style(text_style(18.0))
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        let k = p.slots.len().max(1) as f64;
        let group_w = 0.8;
        let bar_w = group_w / k;
        for (si, slot) in p.slots.iter().enumerate() {
            for i in 0..n {
                let x0 = i as f64 - group_w / 2.0 + si as f64 * bar_w + bar_w * 0.06;
                let x1 = x0 + bar_w * 0.88;
                let mut y = 0.0;
                for seg in &slot.segments {
                    let v = seg.values[i].max(0.0);
                    if v > 0.0 {
                        chart.draw_series(std::iter::once(Rectangle::new(
                            [(x0, y), (x1, y + v)],
                            seg.color.filled(),
                        )))?;
                    }
                    y += v;
                }
                if p.value_labels && y > 0.0 {
                    let at = chart.backend_coord(&((x0 + x1) / 2.0, y));
                    root.draw(&Text::new(
                        format!("{}{}", fmt_value(y), p.value_unit),
                        (at.0, at.1 - 4),
                        text_style(14.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ))?;
                }
            }
        }
    }
    root.present()?;
    Ok(())
}

/// A value label: three significant digits.
fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Draw `chart` as `<stem>.svg` and, with a font, `<stem>.png`.
fn render(
    dir: &Path,
    stem: &str,
    title: &str,
    chart: &Chart,
    png: bool,
) -> Result<PlotFile, ReportError> {
    let size = match chart {
        Chart::Xy(c) => c.size,
        Chart::Bar(c) => c.size,
    };
    let err = |e: Box<dyn std::error::Error>| ReportError::Plot {
        plot: stem.to_string(),
        reason: e.to_string(),
    };
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        match chart {
            Chart::Xy(c) => draw_xy(&root, c),
            Chart::Bar(c) => draw_bars(&root, c),
        }
        .map_err(err)?;
    }
    let png_path = if png {
        let p = dir.join(format!("{stem}.png"));
        {
            let root = BitMapBackend::new(&p, size).into_drawing_area();
            match chart {
                Chart::Xy(c) => draw_xy(&root, c),
                Chart::Bar(c) => draw_bars(&root, c),
            }
            .map_err(err)?;
        }
        Some(p)
    } else {
        None
    };
    Ok(PlotFile {
        stem: stem.into(),
        title: title.into(),
        svg,
        png: png_path,
    })
}

/// Series families: one per (architecture/dataset, method) so lines never join different
/// networks. The label mentions the network only when the sweep has several. A bundle run on
/// both batch-norm paths has the same architecture, masks and so cost on both: only its clean
/// path is plotted.
fn families(sweep: &Sweep) -> Vec<(String, String, Vec<&ModelGroup>)> {
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
    out
}

fn latency_chart(sweep: &Sweep) -> XyChart {
    let fams = families(sweep);
    let mut links: Vec<(String, bool)> = vec![("compute".into(), false)];
    links.extend(sweep.link_columns());
    let mut panels: Vec<XyPanel> = ["Offline", "Online"]
        .iter()
        .map(|ph| XyPanel {
            title: format!("{ph} phase"),
            x_desc: "ReLU budget (ReLUs ×1000)".into(),
            y_desc: "latency (s)".into(),
            series: Vec::new(),
            log_y: true,
            log_x: false,
        })
        .collect();
    // Colour says the link, the marker says the method: the legend lists each once.
    let mut legend = vec![LegendEntry {
        label: "Link".into(),
        color: BLACK,
        key: LegendKey::Heading,
    }];
    for (li, (link, emulated)) in links.iter().enumerate() {
        let color = link_color(link, li);
        let mut any = false;
        for (fi, (_, _, gs)) in fams.iter().enumerate() {
            let marker = MARKERS[fi % MARKERS.len()];
            let mut off = Vec::new();
            let mut on = Vec::new();
            for g in gs {
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
                panel.series.push(XySeries {
                    color,
                    marker,
                    hollow: *emulated,
                    line: true,
                    points: pts,
                });
            }
        }
        if any {
            let label = match (link.as_str(), emulated) {
                ("compute", _) => "compute only (no link)".to_string(),
                (l, true) => format!("{l}, emulated"),
                (l, false) => format!("{l}, modelled"),
            };
            legend.push(LegendEntry {
                label,
                color,
                key: LegendKey::Line {
                    marker: emulated.then_some(Marker::Circle),
                    hollow: *emulated,
                },
            });
        }
    }
    legend.push(LegendEntry {
        label: "Method".into(),
        color: BLACK,
        key: LegendKey::Heading,
    });
    for (fi, (flabel, _, _)) in fams.iter().enumerate() {
        legend.push(LegendEntry {
            label: flabel.clone(),
            color: RGBColor(40, 40, 40),
            key: LegendKey::Marker(MARKERS[fi % MARKERS.len()]),
        });
    }
    XyChart {
        title: "Private inference latency against ReLU budget".into(),
        size: (1700, 760),
        panels,
        legend,
        footnote: Some(
            "Median over runs (whiskers: min–max). Modelled: measured compute + bytes / bandwidth + rounds × RTT/2. Emulated: run through a throttled channel."
                .into(),
        ),
    }
}

fn communication_chart(sweep: &Sweep) -> XyChart {
    let fams = families(sweep);
    let mut panels: Vec<XyPanel> = ["Offline", "Online"]
        .iter()
        .map(|ph| XyPanel {
            title: format!("{ph} phase"),
            x_desc: "ReLU budget (ReLUs ×1000)".into(),
            y_desc: "communication (MB)".into(),
            series: Vec::new(),
            log_y: true,
            log_x: false,
        })
        .collect();
    // (label, client → server, server → client)
    let dirs: [(&str, bool, bool); 3] = [
        ("both directions", true, true),
        ("server → client", false, true),
        ("client → server", true, false),
    ];
    let mut legend = vec![LegendEntry {
        label: "Method".into(),
        color: BLACK,
        key: LegendKey::Heading,
    }];
    for (fi, (flabel, method, gs)) in fams.iter().enumerate() {
        let color = method_color(method, fi);
        legend.push(LegendEntry {
            label: flabel.clone(),
            color,
            key: LegendKey::Box,
        });
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
                panel.series.push(XySeries {
                    color,
                    marker: MARKERS[di],
                    hollow: di > 0,
                    line: true,
                    points: pts,
                });
            }
        }
    }
    legend.push(LegendEntry {
        label: "Direction".into(),
        color: BLACK,
        key: LegendKey::Heading,
    });
    for (di, (dname, _, _)) in dirs.iter().enumerate() {
        legend.push(LegendEntry {
            label: dname.to_string(),
            color: RGBColor(60, 60, 60),
            key: LegendKey::Line {
                marker: Some(MARKERS[di]),
                hollow: di > 0,
            },
        });
    }
    XyChart {
        title: "Communication against ReLU budget".into(),
        size: (1700, 760),
        panels,
        legend,
        footnote: Some("Median bytes per inference over runs; 1 MB = 10⁶ bytes.".into()),
    }
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
            LegendEntry {
                label: "offline · linear & local".into(),
                color: off_lin,
                key: LegendKey::Box,
            },
            LegendEntry {
                label: "offline · ReLU (garbled)".into(),
                color: off_relu,
                key: LegendKey::Box,
            },
            LegendEntry {
                label: "online · linear & local".into(),
                color: on_lin,
                key: LegendKey::Box,
            },
            LegendEntry {
                label: "online · ReLU (garbled)".into(),
                color: on_relu,
                key: LegendKey::Box,
            },
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
type Comparison<'a> = (
    String,
    Vec<u64>,
    Vec<String>,
    Vec<Vec<Option<&'a ModelGroup>>>,
);

fn comparison_data(sweep: &Sweep) -> Option<Comparison<'_>> {
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
fn compare_link(sweep: &Sweep, opts: &ReportOptions) -> Option<String> {
    let names = sweep.link_names();
    if let Some(l) = &opts.compare_link {
        return names.contains(l).then(|| l.clone());
    }
    if names.iter().any(|n| n == "wan") {
        return Some("wan".into());
    }
    names.into_iter().next()
}

fn phase_seconds(g: &ModelGroup, link: Option<&str>) -> (f64, f64) {
    match link.and_then(|l| g.link(l, false)) {
        Some(l) => (l.offline.median, l.online.median),
        None => (g.offline.seconds.median, g.online.seconds.median),
    }
}

fn comparison_chart(c: &Comparison<'_>, link: Option<&str>) -> BarChart {
    let (net, budgets, methods, table) = c;
    let cats: Vec<String> = budgets.iter().map(|b| fmt_budget(*b)).collect();
    let mut panels = Vec::new();
    for (pi, phase) in ["Offline", "Online"].iter().enumerate() {
        let slots = methods
            .iter()
            .enumerate()
            .map(|(mi, m)| BarSlot {
                segments: vec![BarSegment {
                    color: method_color(m, mi),
                    values: table[mi]
                        .iter()
                        .map(|g| {
                            g.map_or(0.0, |g| {
                                let (a, b) = phase_seconds(g, link);
                                if pi == 0 {
                                    a
                                } else {
                                    b
                                }
                            })
                        })
                        .collect(),
                }],
            })
            .collect();
        panels.push(BarPanel {
            title: format!("{phase} phase"),
            y_desc: "latency (s)".into(),
            x_desc: "ReLU budget".into(),
            categories: cats.clone(),
            slots,
            value_labels: true,
            value_unit: " s".into(),
        });
    }
    let names: Vec<String> = methods.iter().map(|m| method_display(m)).collect();
    BarChart {
        title: format!(
            "{} at equal ReLU budgets — {net}, {}",
            names.join(" vs "),
            link.map_or("compute only".to_string(), |l| format!("{l} link"))
        ),
        size: (1600, 760),
        panels,
        legend: methods
            .iter()
            .enumerate()
            .map(|(i, m)| LegendEntry {
                label: method_display(m),
                color: method_color(m, i),
                key: LegendKey::Box,
            })
            .collect(),
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
    let mut legend = vec![LegendEntry {
        label: "Method".into(),
        color: BLACK,
        key: LegendKey::Heading,
    }];
    let mut kinds_used = [false; 3];
    // Budgets already written: the curves of two methods share their x at equal budgets.
    let mut written: Vec<u64> = Vec::new();
    for (fi, (flabel, method, gs)) in fams.iter().enumerate() {
        let color = method_color(method, fi);
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
            series.push(XySeries {
                color,
                marker: MARKERS[ki],
                hollow: false,
                line: true,
                points: pts,
            });
        }
        if any {
            legend.push(LegendEntry {
                label: flabel.clone(),
                color,
                key: LegendKey::Line {
                    marker: None,
                    hollow: false,
                },
            });
        }
    }
    legend.push(LegendEntry {
        label: "Accuracy".into(),
        color: BLACK,
        key: LegendKey::Heading,
    });
    for (ki, (kname, _)) in kinds.iter().enumerate() {
        if kinds_used[ki] {
            legend.push(LegendEntry {
                label: kname.to_string(),
                color: RGBColor(60, 60, 60),
                key: LegendKey::Marker(MARKERS[ki]),
            });
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
            title: String::new(),
            x_desc: format!("online latency, {link_name} (s)"),
            y_desc: "accuracy (%)".into(),
            series,
            log_y: false,
            log_x: true,
        }],
        legend,
        footnote: Some(
            "Accuracies as the model cards report them (CA clean, NPA natural perturbations, AdvA adversarial); point labels: ReLU budget."
                .into(),
        ),
    })
}

/// Draw every plot the sweep supports into `dir`.
pub fn write_plots(
    sweep: &Sweep,
    dir: &Path,
    opts: &ReportOptions,
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
        "latency_vs_budget",
        "Offline and online latency against ReLU budget, per link",
        Chart::Xy(latency_chart(sweep)),
    )?;
    add(
        "communication_vs_budget",
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
            "layer_breakdown",
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
                "methods_at_equal_budget",
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
        Some(c) => add(
            "accuracy_vs_latency",
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
    fn ticks_are_readable() {
        assert_eq!(fmt_tick(0.0), "0");
        assert_eq!(fmt_tick(5.0), "5");
        assert_eq!(fmt_tick(2.5), "2.5");
        assert_eq!(fmt_tick(0.02), "0.02");
        assert_eq!(fmt_tick(0.001), "0.001");
        assert_eq!(fmt_tick(1500.0), "1500");
    }

    #[test]
    fn linear_axis_covers_data_with_nice_steps() {
        let a = Axis::fit(&[0.3, 1.7, 4.2], true);
        assert!(!a.log);
        assert!(a.hi >= 4.2 && a.lo == 0.0);
        assert!(a.ticks.len() >= 3 && a.ticks.len() <= 8);
        let steps: Vec<f64> = a.ticks.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.iter().all(|s| (s - steps[0]).abs() < 1e-9));
    }

    #[test]
    fn wide_range_gets_log_axis() {
        let a = Axis::fit(&[0.01, 0.5, 30.0], true);
        assert!(a.log);
        assert!(a.lo <= 0.01f64.log10() && a.hi >= 30f64.log10());
        assert!(a.ticks.iter().any(|t| (t - 0.0).abs() < 1e-9)); // 1 s
        assert_eq!(a.label(0.0), "1");
    }

    #[test]
    fn budgets_format_in_thousands() {
        assert_eq!(fmt_budget(50_000), "50k");
        assert_eq!(fmt_budget(557_056), "557k");
        assert_eq!(fmt_budget(12_345), "12.3k");
        assert_eq!(fmt_budget(999), "999");
    }
}
