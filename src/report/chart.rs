//! The chart layer of the report: plain chart data (`XyChart`, `BarChart`) drawn with
//! plotters as SVG and PNG, one generic routine per chart kind and once per backend, so the two
//! files cannot differ. Axes are computed here rather than by plotters (nice 1-2-5 ticks, log
//! scales as log10 of the value with decade labels) so that tick labels are always readable
//! numbers with units. It knows nothing of sweeps: the figures ([`super::plots`]) are built
//! from a sweep into these types.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::ReportError;

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

/// Register the PNG font once per process. plotters' `ab_glyph` backend needs `'static` bytes,
/// so the file is read once and leaked; later calls reuse it whatever path they name.
pub(super) fn ensure_font(path: &Path) -> Result<(), String> {
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
pub(super) const PALETTE: [RGBColor; 10] = [
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

    fn of(axis: &Axis) -> Ticked {
        Ticked::new(axis.lo, axis.hi, axis.ticks.clone())
    }
}

/// One panel's plotting plane, with the margins every panel uses.
fn plane<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x: Ticked,
    y: Ticked,
) -> Result<ChartContext<'_, DB, Cartesian2d<Ticked, Ticked>>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    Ok(ChartBuilder::on(area)
        .margin(14)
        .margin_right(28)
        .x_label_area_size(58)
        .y_label_area_size(86)
        .build_cartesian_2d(x, y)?)
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

/// Marker shapes: closed, so that each reads filled and hollow (an emulated measurement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Marker {
    Circle,
    Triangle,
    Square,
    Diamond,
    TriangleDown,
    Pentagon,
    Hexagon,
    Star,
}

/// Every marker, the most legible first: what the figures hand out in turn.
pub(super) const MARKERS: [Marker; 8] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Pentagon,
    Marker::Hexagon,
    Marker::Star,
];

/// The corners of a regular polygon of `n` corners (a star of `n` points when `inner` is
/// given: every other corner at that fraction of the radius) of radius `r` around `at`, one
/// corner straight up (down when `r` is negative).
fn corners(at: (i32, i32), n: usize, r: f64, inner: Option<f64>) -> Vec<(i32, i32)> {
    let k = if inner.is_some() { 2 * n } else { n };
    (0..k)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / k as f64;
            let r = match inner {
                Some(f) if i % 2 == 1 => r * f,
                _ => r,
            };
            (
                at.0 + (r * a.sin()).round() as i32,
                at.1 - (r * a.cos()).round() as i32,
            )
        })
        .collect()
}

/// A polygon marker: filled, or its outline (plotters fills every `Polygon`).
fn polygon<'a, DB: DrawingBackend + 'a>(
    pts: Vec<(i32, i32)>,
    style: ShapeStyle,
) -> DynElement<'a, DB, (i32, i32)> {
    if style.filled {
        Polygon::new(pts, style).into_dyn()
    } else {
        let mut closed = pts.clone();
        closed.extend(pts.first().copied());
        PathElement::new(closed, style).into_dyn()
    }
}

fn marker_elem<'a, DB: DrawingBackend + 'a>(
    m: Marker,
    at: (i32, i32),
    size: i32,
    style: ShapeStyle,
) -> DynElement<'a, DB, (i32, i32)> {
    let r = f64::from(size + 1);
    match m {
        Marker::Circle => Circle::new(at, size, style).into_dyn(),
        Marker::Triangle => TriangleMarker::new(at, size + 1, style).into_dyn(),
        Marker::Square => Rectangle::new(
            [(at.0 - size, at.1 - size), (at.0 + size, at.1 + size)],
            style,
        )
        .into_dyn(),
        Marker::Diamond => polygon(corners(at, 4, r, None), style),
        Marker::TriangleDown => polygon(corners(at, 3, -r - 1.0, None), style),
        Marker::Pentagon => polygon(corners(at, 5, r, None), style),
        Marker::Hexagon => polygon(corners(at, 6, r, None), style),
        Marker::Star => polygon(corners(at, 5, r + 2.0, Some(0.45)), style),
    }
}

/// One series of an x–y chart.
#[derive(Clone, Debug)]
pub(super) struct XySeries {
    pub(super) color: RGBColor,
    pub(super) marker: Marker,
    /// Hollow markers and a thinner line (emulated measurements).
    pub(super) hollow: bool,
    /// Connect the points with a line.
    pub(super) line: bool,
    /// (x, y, y_min, y_max, point label).
    pub(super) points: Vec<(f64, f64, f64, f64, String)>,
}

impl XySeries {
    /// Points joined by a line; `hollow` for emulated measurements.
    pub(super) fn line(
        color: RGBColor,
        marker: Marker,
        hollow: bool,
        points: Vec<(f64, f64, f64, f64, String)>,
    ) -> XySeries {
        XySeries {
            color,
            marker,
            hollow,
            line: true,
            points,
        }
    }
}

/// One panel of an x–y chart.
#[derive(Clone, Debug)]
pub(super) struct XyPanel {
    pub(super) title: String,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    pub(super) series: Vec<XySeries>,
    pub(super) log_y: bool,
    pub(super) log_x: bool,
    /// A fixed linear y range (accuracies: a window of 0–100 %), instead of one fitted to the data.
    pub(super) y_range: Option<(f64, f64)>,
    /// A fixed linear x range, instead of one from zero to the largest value.
    pub(super) x_range: Option<(f64, f64)>,
}

/// A chart: panels side by side under one title, one shared legend at the right, an optional
/// footnote below.
#[derive(Clone, Debug)]
pub(super) struct Figure<P> {
    pub(super) title: String,
    pub(super) size: (u32, u32),
    pub(super) panels: Vec<P>,
    pub(super) legend: Vec<LegendEntry>,
    pub(super) footnote: Option<String>,
}

impl XyPanel {
    /// An empty panel on linear axes fitted to its data.
    pub(super) fn new(title: String, x_desc: String, y_desc: &str) -> XyPanel {
        XyPanel {
            title,
            x_desc,
            y_desc: y_desc.into(),
            series: Vec::new(),
            log_y: false,
            log_x: false,
            y_range: None,
            x_range: None,
        }
    }
}

/// An x–y chart.
pub(super) type XyChart = Figure<XyPanel>;

/// A bar chart.
pub(super) type BarChart = Figure<BarPanel>;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum LegendKey {
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
pub(super) struct LegendEntry {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) key: LegendKey,
}

impl LegendEntry {
    /// A section heading.
    pub(super) fn heading(label: &str) -> LegendEntry {
        LegendEntry {
            label: label.into(),
            color: BLACK,
            key: LegendKey::Heading,
        }
    }

    /// A line, optionally with a marker.
    pub(super) fn line(
        label: String,
        color: RGBColor,
        marker: Option<Marker>,
        hollow: bool,
    ) -> LegendEntry {
        LegendEntry {
            label,
            color,
            key: LegendKey::Line { marker, hollow },
        }
    }

    /// A marker alone.
    pub(super) fn marker(label: String, color: RGBColor, marker: Marker) -> LegendEntry {
        LegendEntry {
            label,
            color,
            key: LegendKey::Marker(marker),
        }
    }

    /// A filled box (bars).
    pub(super) fn bar(label: String, color: RGBColor) -> LegendEntry {
        LegendEntry {
            label,
            color,
            key: LegendKey::Box,
        }
    }
}

/// One bar position within each category: a stack of segments.
#[derive(Clone, Debug)]
pub(super) struct BarSlot {
    pub(super) segments: Vec<BarSegment>,
}

#[derive(Clone, Debug)]
pub(super) struct BarSegment {
    pub(super) color: RGBColor,
    /// One value per category.
    pub(super) values: Vec<f64>,
}

#[derive(Clone, Debug)]
pub(super) struct BarPanel {
    pub(super) title: String,
    pub(super) y_desc: String,
    pub(super) x_desc: String,
    pub(super) categories: Vec<String>,
    pub(super) slots: Vec<BarSlot>,
    /// Print each bar's total above it.
    pub(super) value_labels: bool,
    pub(super) value_unit: String,
}

pub(super) enum Chart {
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

/// Draw `chart` on any backend (the SVG and the PNG are the same drawing).
fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    match chart {
        Chart::Xy(c) => draw_xy(root, c),
        Chart::Bar(c) => draw_bars(root, c),
    }
}

/// Draw a figure's frame, each panel in its slot with `panel`, and finish the drawing.
fn draw_panels<DB: DrawingBackend, P>(
    root: &DrawingArea<DB, Shift>,
    c: &Figure<P>,
    mut panel: impl FnMut(&DrawingArea<DB, Shift>, &P) -> DrawResult,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let plot = frame(root, &c.title, &c.legend, c.footnote.as_deref())?;
    let areas = plot.split_evenly((1, c.panels.len().max(1)));
    for (area, p) in areas.iter().zip(&c.panels) {
        panel(area, p)?;
    }
    root.present()?;
    Ok(())
}

fn draw_xy<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &XyChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    draw_panels(root, c, |area, p| {
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
        let xa = match p.x_range {
            Some((lo, hi)) => Axis::linear(lo, hi),
            None => Axis::fit(&xs, p.log_x),
        };
        let ya = match p.y_range {
            Some((lo, hi)) => Axis::linear(lo, hi),
            None => Axis::fit(&ys, p.log_y),
        };
        let area = &panel_title(area, &p.title)?;
        let mut chart = plane(area, Ticked::of(&xa), Ticked::of(&ya))?;
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
        Ok(())
    })
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &BarChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    draw_panels(root, c, |area, p| {
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
        let mut chart = plane(
            area,
            Ticked::new(-0.5, n as f64 - 0.5, (0..n).map(|i| i as f64).collect()),
            Ticked::of(&ya),
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
        Ok(())
    })
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
pub(super) fn render(
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
        draw(&SVGBackend::new(&svg, size).into_drawing_area(), chart).map_err(err)?;
    }
    let png_path = if png {
        let p = dir.join(format!("{stem}.png"));
        {
            draw(&BitMapBackend::new(&p, size).into_drawing_area(), chart).map_err(err)?;
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
}
