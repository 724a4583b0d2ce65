//! Figures for experiment results: the convergence plot with confidence bands, the
//! filtered-data analysis and the teachers' training curves of Fan et al. (ICLR 2018).
//!
//! Every plot function writes `<stem>.svg` and `<stem>.png`, each through
//! [`write_atomic`], and returns both paths in [`PlotFiles`]. Legends are plotters' own
//! series labels, drawn beside each chart. The input types are plain data defined here,
//! so this module depends on no other part of `l2t`.
//!
//! # Fonts
//!
//! Both files need a TrueType/OpenType font: plotters measures the legends' text with
//! it, and rasterises the PNG's glyphs from it. It is loaded at run time from
//! `$L2T_FONT` when that is set (and only from there), else from the first of
//! [`DEFAULT_FONT_PATHS`] that exists (Debian's `fonts-dejavu-core` installs the first
//! one). Without a font the plot functions write nothing and return
//! [`PlotError::FontNotFound`], which names the paths tried, the figure and the fix. SVG
//! files name the generic `sans-serif` family, so viewers draw them with their own font.

use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plotters::chart::{MeshStyle, SeriesAnno};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::stats::mean_ci95;
use l2t_envs::io::write_atomic;

/// Environment variable naming the TTF/OTF font file used for the figures' text.
///
/// When set, it is the only place looked at, so a wrong path is reported instead of
/// silently falling back to another font.
pub const FONT_ENV: &str = "L2T_FONT";

/// Font files tried in order for the figures' text when [`FONT_ENV`] is not set.
///
/// The first is Debian/Ubuntu's `fonts-dejavu-core`; the others are the same font's
/// places on Fedora and Arch, and Liberation Sans as a last resort.
pub const DEFAULT_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// The family name every text style uses. The font is registered under this name,
/// and SVG viewers resolve it to their own sans-serif font.
const FONT_FAMILY: &str = "sans-serif";

/// Errors from building or writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There is nothing to draw or to compute (no series, no finite point, empty grid).
    #[error("nothing to plot: {0}")]
    EmptyInput(String),
    /// The input breaks a documented requirement (e.g. a grid that is not increasing).
    #[error("invalid plot input: {0}")]
    InvalidInput(String),
    /// No font file for the figures' text; nothing was written.
    #[error(
        "no font for the figures' text{}: tried {}; install one with \
         `apt-get install fonts-dejavu-core` or set {FONT_ENV} to a .ttf file",
        figure_note(.figure),
        join_paths(.tried)
    )]
    FontNotFound {
        /// The font paths looked at, in order.
        tried: Vec<PathBuf>,
        /// The stem of the figure that was not drawn, when a plot function reports it.
        figure: Option<PathBuf>,
    },
    /// The font file exists but could not be read.
    #[error("reading font {}: {source}", .path.display())]
    FontRead {
        /// The font file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The font file is not a TrueType/OpenType font.
    #[error("font {} is not a TrueType/OpenType font; set {FONT_ENV} to a .ttf file", .path.display())]
    InvalidFont {
        /// The font file.
        path: PathBuf,
    },
    /// plotters failed while drawing.
    #[error("drawing {}: {message}", .path.display())]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// plotters' description of the failure.
        message: String,
    },
    /// Creating the folder, writing the temporary file or renaming it failed.
    #[error("writing {}: {source}", .path.display())]
    Io {
        /// The file (or folder) being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Encoding the PNG failed.
    #[error("encoding PNG {}: {source}", .path.display())]
    PngEncode {
        /// The PNG file.
        path: PathBuf,
        /// The encoder's error.
        source: png::EncodingError,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn figure_note(figure: &Option<PathBuf>) -> String {
    match figure {
        Some(p) => format!(" (figure {} not drawn)", p.display()),
        None => String::new(),
    }
}

/// The two files a plot function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotFiles {
    /// `<stem>.svg`.
    pub svg: PathBuf,
    /// `<stem>.png`.
    pub png: PathBuf,
}

/// Title and axis titles of a figure.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ChartLabels {
    /// Drawn centred above the figure; empty for none.
    pub title: String,
    /// Title of the x axis.
    pub x_label: String,
    /// Title of the y axis.
    pub y_label: String,
}

impl ChartLabels {
    /// Labels from string slices.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
        }
    }
}

/// One point of a line with a confidence band: the mean across seeds and the band's
/// lower and upper edge at `x`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BandPoint {
    /// Position on the x axis (e.g. effective training instances).
    pub x: f64,
    /// Mean across seeds.
    pub mean: f64,
    /// Lower edge of the band (e.g. the 95% confidence interval's).
    pub lower: f64,
    /// Upper edge of the band.
    pub upper: f64,
}

/// A labelled line with a shaded band, one per teacher in the convergence plot.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BandSeries {
    /// Legend label (the teacher's name).
    pub label: String,
    /// Points in increasing `x`; points with a non-finite value are skipped, breaking
    /// the line and the band there.
    pub points: Vec<BandPoint>,
}

/// Share of the instances dropped in each of five buckets at one moment of training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DropPoint {
    /// Training progress (e.g. student iteration or effective training instances).
    pub x: f64,
    /// Dropped share per bucket, in `[0, 1]`: bucket 1 (index 0) holds the instances
    /// with the lowest loss (or margin), bucket 5 (index 4) those with the highest.
    pub shares: [f64; 5],
}

/// What the five buckets of a [`DroppedShares`] panel sort instances by; its legend
/// names the buckets accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DropBuckets {
    /// Loss rank within the batch, in fifths: bucket 1 holds the lowest losses.
    #[default]
    LossRank,
    /// Margin `p_y - max_{y' != y} p_{y'}`, with `[-1, 1]` cut into five equal bins:
    /// bucket 1 is `[-1, -0.6)`, bucket 5 `[0.6, 1]`.
    Margin,
}

impl DropBuckets {
    /// The legend's name of each bucket.
    pub fn names(self) -> [&'static str; 5] {
        match self {
            Self::LossRank => ["1 (lowest loss)", "2", "3", "4", "5 (highest loss)"],
            Self::Margin => [
                "margin [-1, -0.6)",
                "[-0.6, -0.2)",
                "[-0.2, 0.2)",
                "[0.2, 0.6)",
                "[0.6, 1]",
            ],
        }
    }
}

/// One panel of the filtered-data figure: one teacher's dropped shares by one kind of
/// bucket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DroppedShares {
    /// Panel title (e.g. the teacher's name).
    pub label: String,
    /// What the buckets sort instances by.
    #[serde(default)]
    pub by: DropBuckets,
    /// Points in increasing `x`.
    pub points: Vec<DropPoint>,
}

/// A plain labelled `(x, y)` series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurveSeries {
    /// Legend label.
    pub label: String,
    /// Points in increasing `x`; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One teacher's training curve: a value per episode (e.g. the episode return) and an
/// optional second series drawn thicker in the same colour (e.g. a moving average from
/// [`moving_average`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TeacherCurve {
    /// Legend label of the per-episode values.
    pub label: String,
    /// `(episode index, value)` in increasing episode order.
    pub values: Vec<(f64, f64)>,
    /// Optional second series with its own legend label.
    pub secondary: Option<CurveSeries>,
}

// ---------------------------------------------------------------------------------------
// Bands across seeds
// ---------------------------------------------------------------------------------------

/// `n` evenly spaced points from `start` to `end` inclusive: a common x grid for
/// [`band_from_seeds`].
pub fn linear_grid(start: f64, end: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => (0..n)
            .map(|i| start + (end - start) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// Turns per-seed curves into a [`BandSeries`]: at each grid point, the mean across
/// seeds and its Student-t 95% confidence interval.
///
/// Each seed's curve is a list of `(x, y)` measurements in non-decreasing `x`, read as a
/// step function: its value at a grid point `g` is the last measurement with `x <= g`.
/// So a curve that ends early (its episode ended when it reached tau) keeps its last
/// value from then on. A seed with no measurement at or before `g` does not count at
/// `g`; grid points no seed reaches are left out. Measurements with a non-finite `x` or
/// `y` are ignored. With one seed counted the band is the line itself.
///
/// Errors: [`PlotError::EmptyInput`] for no seeds, an empty grid or no point at all;
/// [`PlotError::InvalidInput`] for a grid that is not finite and strictly increasing or a
/// curve whose `x` decreases.
pub fn band_from_seeds(
    label: impl Into<String>,
    seeds: &[Vec<(f64, f64)>],
    grid: &[f64],
) -> Result<BandSeries, PlotError> {
    if seeds.is_empty() {
        return Err(PlotError::EmptyInput("no seed curves".into()));
    }
    if grid.is_empty() {
        return Err(PlotError::EmptyInput("empty x grid".into()));
    }
    if grid.iter().any(|g| !g.is_finite()) || grid.windows(2).any(|w| w[1] <= w[0]) {
        return Err(PlotError::InvalidInput(
            "the x grid must be finite and strictly increasing".into(),
        ));
    }
    let mut curves = Vec::with_capacity(seeds.len());
    for (i, seed) in seeds.iter().enumerate() {
        let clean: Vec<(f64, f64)> = seed
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if clean.windows(2).any(|w| w[1].0 < w[0].0) {
            return Err(PlotError::InvalidInput(format!(
                "seed curve {i} has decreasing x"
            )));
        }
        curves.push(clean);
    }
    let mut points = Vec::with_capacity(grid.len());
    let mut values = Vec::with_capacity(curves.len());
    for &g in grid {
        values.clear();
        values.extend(curves.iter().filter_map(|c| step_value_at(c, g)));
        if !values.is_empty() {
            let (mean, half) = mean_ci95(&values);
            points.push(BandPoint {
                x: g,
                mean,
                lower: mean - half,
                upper: mean + half,
            });
        }
    }
    if points.is_empty() {
        return Err(PlotError::EmptyInput(
            "no seed has a finite measurement at or before the last grid point".into(),
        ));
    }
    Ok(BandSeries {
        label: label.into(),
        points,
    })
}

/// The value of a step curve (sorted by `x`) at `x`: its last measurement at or before
/// `x`, `None` before the first.
fn step_value_at(curve: &[(f64, f64)], x: f64) -> Option<f64> {
    let idx = curve.partition_point(|p| p.0 <= x);
    idx.checked_sub(1).map(|i| curve[i].1)
}

/// Trailing moving average over the last `window` finite values (fewer at the start),
/// at each point's `x`: the smoothed second series of a [`TeacherCurve`]. Non-finite
/// values are skipped; `window` 0 is taken as 1.
pub fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let mut out = Vec::with_capacity(finite.len());
    let mut sum = 0.0;
    for (i, &(x, y)) in finite.iter().enumerate() {
        sum += y;
        if i >= window {
            sum -= finite[i - window].1;
        }
        let count = (i + 1).min(window);
        out.push((x, sum / count as f64));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Fonts
// ---------------------------------------------------------------------------------------

/// The font file registered with plotters, once one has been.
static REGISTERED_FONT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The font file the figures' text would use: `$L2T_FONT` if set, else the first existing entry
/// of [`DEFAULT_FONT_PATHS`]. Only checks existence; [`PlotError::FontNotFound`] (with
/// `figure: None`) lists the paths tried when there is none.
pub fn find_font() -> Result<PathBuf, PlotError> {
    let tried: Vec<PathBuf> = match std::env::var_os(FONT_ENV) {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => DEFAULT_FONT_PATHS.iter().map(PathBuf::from).collect(),
    };
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(PlotError::FontNotFound {
            tried,
            figure: None,
        }),
    }
}

/// Loads the font and registers it with plotters under [`FONT_FAMILY`], once per
/// process (the bytes are leaked once, as plotters needs them for `'static`).
fn ensure_font() -> Result<(), PlotError> {
    let mut registered = REGISTERED_FONT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if registered.is_some() {
        return Ok(());
    }
    let path = find_font()?;
    let bytes = fs::read(&path).map_err(|source| PlotError::FontRead {
        path: path.clone(),
        source,
    })?;
    // Parse first so that a bad file is not leaked.
    if ab_glyph::FontRef::try_from_slice(&bytes).is_err() {
        return Err(PlotError::InvalidFont { path });
    }
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| PlotError::InvalidFont { path: path.clone() })?;
    *registered = Some(path);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

/// A figure drawable on any plotters backend, so the SVG and the PNG share one layout.
trait Figure {
    /// Canvas size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure on `root`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// `<stem>.<ext>`, appending rather than replacing so that stems with dots survive.
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Loads the font, then draws the SVG and the PNG and writes each with [`write_atomic`].
fn write_figure<F: Figure>(stem: &Path, figure: &F) -> Result<PlotFiles, PlotError> {
    ensure_font().map_err(|e| match e {
        PlotError::FontNotFound { tried, .. } => PlotError::FontNotFound {
            tried,
            figure: Some(stem.to_path_buf()),
        },
        e => e,
    })?;
    let files = PlotFiles {
        svg: with_suffix(stem, "svg"),
        png: with_suffix(stem, "png"),
    };
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let drawn = |path: &Path, result: Result<(), String>| {
        result.map_err(|message| PlotError::Draw {
            path: path.to_path_buf(),
            message,
        })
    };
    let write = |path: &Path, bytes: &[u8]| {
        write_atomic(path, bytes).map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let size = figure.size();

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        let result = figure.draw(&root).and_then(|()| root.present());
        drawn(&files.svg, result.map_err(|e| e.to_string()))?;
    }
    write(&files.svg, text.as_bytes())?;

    let (w, h) = size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let result = figure.draw(&root).and_then(|()| root.present());
        drawn(&files.png, result.map_err(|e| e.to_string()))?;
    }
    let mut encoded = Vec::new();
    let mut encoder = png::Encoder::new(&mut encoded, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&pixels)?;
            writer.finish()
        })
        .map_err(|source| PlotError::PngEncode {
            path: files.png.clone(),
            source,
        })?;
    write(&files.png, &encoded)?;
    Ok(files)
}

// ---------------------------------------------------------------------------------------
// Shared drawing pieces
// ---------------------------------------------------------------------------------------

/// Teacher colours: the Okabe-Ito palette (colour-blind safe), reordered so the first
/// ones contrast most, with its yellow swapped for olive (yellow is unreadable on white)
/// and Paul Tol's wine and indigo after it, so the main job's nine teachers differ.
/// Series take colours by their position in the input, cycling after ten.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x33, 0x33, 0x33), // near black
    RGBColor(0x99, 0x99, 0x33), // olive
    RGBColor(0xAA, 0x33, 0x77), // wine
    RGBColor(0x33, 0x22, 0x88), // indigo
];

/// Bucket colours, blue (bucket 1: lowest loss, or lowest margin) through grey to red.
const BUCKET_COLOURS: [RGBColor; 5] = [
    RGBColor(0x21, 0x66, 0xAC),
    RGBColor(0x67, 0xA9, 0xCF),
    RGBColor(0x80, 0x80, 0x80),
    RGBColor(0xEF, 0x8A, 0x62),
    RGBColor(0xB2, 0x18, 0x2B),
];

/// The tau line's grey.
const TAU_GREY: RGBColor = RGBColor(0x66, 0x66, 0x66);

fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Height of the strip holding a figure's title.
const HEADER: u32 = 48;
const TITLE_PX: u32 = 22;
const PANEL_TITLE_PX: u32 = 17;
const AXIS_TITLE_PX: u32 = 16;
const TICK_PX: u32 = 14;
const LEGEND_PX: u32 = 14;
/// Width of a legend entry's sample line.
const SWATCH_W: i32 = 28;

/// Fills `root` white, centres `title` (if any) in its top [`HEADER`] pixels and returns
/// the area below.
fn page<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>, DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(HEADER);
    if !title.is_empty() {
        head.titled(title, (FONT_FAMILY, TITLE_PX))?;
    }
    Ok(body)
}

/// Tick labels: short, without trailing zeros, `k`/`M` for large values.
fn fmt_tick(v: &f64) -> String {
    let v = *v;
    let a = v.abs();
    let s = if a >= 1e6 {
        format!("{}M", trim_zeros(format!("{:.2}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim_zeros(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        trim_zeros(format!("{v:.3}"))
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The finite min and max of `values`, if any.
fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// `lo..hi` widened by `frac` of the span on each side, or by a unit-ish amount when
/// the span is zero, so a single point still gets a drawable axis.
fn padded(lo: f64, hi: f64, frac: f64) -> Range<f64> {
    let span = hi - lo;
    if span > 0.0 {
        (lo - span * frac)..(hi + span * frac)
    } else {
        let d = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - d)..(hi + d)
    }
}

/// Splits `points` into runs of consecutive points accepted by `keep`, so that a line
/// or band is broken (not joined across) where a value is missing.
fn finite_runs<T: Copy>(points: &[T], keep: impl Fn(&T) -> bool) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for p in points {
        if keep(p) {
            current.push(*p);
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Plain finite `(x, y)` pairs.
fn finite_xy(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

/// The chart type of every panel: `f64` on both axes.
type XyChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Splits `area` into the chart's part and, on its right, a strip for a legend of
/// `labels`, as wide as the longest label (measured with the font) needs.
fn split_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[&str],
) -> Result<[DrawingArea<DB, Shift>; 2], DrawingAreaErrorKind<DB::ErrorType>> {
    let font = (FONT_FAMILY, LEGEND_PX).into_text_style(area);
    let mut text_w = 0;
    for label in labels {
        text_w = text_w.max(area.estimate_text_size(label, &font)?.0 as i32);
    }
    // plotters insets the legend box by 5 px; [`draw_legend`] adds 3 × 6 px of margins
    // and gaps around the sample and the text; 7 px are left free on the right.
    let strip = text_w + SWATCH_W + 30;
    let w = area.dim_in_pixel().0 as i32;
    let (chart, legend) = area.split_horizontally((w - strip).max(w / 2));
    Ok([chart, legend])
}

/// Builds the cartesian chart in `area` with a light grid, tick labels and axis titles.
fn build_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    (x, y): (Range<f64>, Range<f64>),
    labels: &ChartLabels,
) -> Result<XyChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)?;
    let mut mesh = chart.configure_mesh();
    house_style(&mut mesh)
        .x_desc(labels.x_label.as_str())
        .y_desc(labels.y_label.as_str())
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&fmt_tick)
        .y_label_formatter(&fmt_tick)
        .draw()?;
    Ok(chart)
}

/// The figures' one mesh style: fonts, light grid and grey axes.
fn house_style<'a, 'b, 'm, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB>,
) -> &'m mut MeshStyle<'a, 'b, RangedCoordf64, RangedCoordf64, DB> {
    mesh.label_style((FONT_FAMILY, TICK_PX))
        .axis_desc_style((FONT_FAMILY, AXIS_TITLE_PX))
        .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
        .light_line_style(RGBColor(0xF3, 0xF3, 0xF3))
        .max_light_lines(1)
        .axis_style(RGBColor(0x55, 0x55, 0x55))
}

/// An empty chart in the legend strip of [`split_legend`]: its series are the legend's
/// entries (see [`entry`]), drawn by [`draw_legend`]. plotters draws a legend inside its
/// chart's plotting area only, so one beside the data needs a chart of its own.
fn legend_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
) -> Result<XyChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    ChartBuilder::on(area)
        .margin_top(12)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
}

/// A new legend entry of `legend` (a [`legend_chart`]): an empty series to label.
fn entry<'a, 'b, DB: DrawingBackend + 'a>(
    legend: &'b mut XyChart<'a, DB>,
) -> Result<&'b mut SeriesAnno<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    legend.draw_series(None::<PathElement<(f64, f64)>>)
}

/// Draws plotters' legend of the labelled series of `legend` (a [`legend_chart`]).
fn draw_legend<'a, DB: DrawingBackend + 'a>(legend: &mut XyChart<'a, DB>) -> DrawResult<DB> {
    legend
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .legend_area_size(SWATCH_W + 6)
        .margin(6)
        .label_font((FONT_FAMILY, LEGEND_PX))
        .draw()
}

/// Labels a legend entry drawn as a line of `width` in `colour`, with a marker when
/// `marker`.
fn label_line<'a, DB: DrawingBackend + 'a>(
    anno: &mut SeriesAnno<'a, DB>,
    label: &str,
    colour: RGBAColor,
    width: u32,
    marker: bool,
) {
    let radius = if marker { 3 } else { 0 };
    anno.label(label).legend(move |(x, y)| {
        EmptyElement::at((x, y))
            + PathElement::new(vec![(0, 0), (SWATCH_W, 0)], colour.stroke_width(width))
            + Circle::new((SWATCH_W / 2, 0), radius, colour.filled())
    });
}

// ---------------------------------------------------------------------------------------
// 1. Convergence plot
// ---------------------------------------------------------------------------------------

struct Convergence<'a> {
    series: &'a [BandSeries],
    labels: &'a ChartLabels,
    tau: Option<f64>,
    x: Range<f64>,
    y: Range<f64>,
}

impl Figure for Convergence<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = page(root, &self.labels.title)?;
        let tau = self.tau.filter(|t| t.is_finite());
        let tau_label = tau.map(|t| format!("tau = {}", fmt_tick(&t)));
        let names: Vec<&str> = (self.series.iter().map(|s| s.label.as_str()))
            .chain(tau_label.as_deref())
            .collect();
        let [plot, key] = split_legend(&body, &names)?;
        let mut chart = build_chart(&plot, (self.x.clone(), self.y.clone()), self.labels)?;
        let mut legend = legend_chart(&key)?;

        let band_ok = |p: &BandPoint| {
            p.x.is_finite() && p.mean.is_finite() && p.lower.is_finite() && p.upper.is_finite()
        };
        // Bands first, all of them, so that no band covers another teacher's line.
        for (i, s) in self.series.iter().enumerate() {
            let bands = finite_runs(&s.points, band_ok)
                .into_iter()
                .filter(|run| run.len() > 1 && run.iter().any(|p| p.upper != p.lower))
                .map(|run| {
                    let upper = run.iter().map(|p| (p.x, p.upper));
                    let lower = run.iter().rev().map(|p| (p.x, p.lower));
                    Polygon::new(upper.chain(lower).collect::<Vec<_>>(), palette(i).mix(0.18))
                });
            chart.draw_series(bands)?;
        }
        let mean_ok = |p: &BandPoint| p.x.is_finite() && p.mean.is_finite();
        for (i, s) in self.series.iter().enumerate() {
            let colour = palette(i);
            let runs = finite_runs(&s.points, mean_ok);
            // A run of one point is a dot; the others are lines.
            let dots = runs.iter().filter(|run| run.len() == 1);
            chart.draw_series(
                dots.map(|run| Circle::new((run[0].x, run[0].mean), 3, colour.filled())),
            )?;
            let lines = runs.iter().map(|run| {
                PathElement::new(
                    run.iter().map(|p| (p.x, p.mean)).collect::<Vec<_>>(),
                    colour.stroke_width(2),
                )
            });
            chart.draw_series(lines)?;
            entry(&mut legend)?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + Rectangle::new([(0, -5), (SWATCH_W, 5)], colour.mix(0.18).filled())
                        + PathElement::new(vec![(0, 0), (SWATCH_W, 0)], colour.stroke_width(2))
                });
        }
        if let (Some(tau), Some(label)) = (tau, tau_label) {
            let style = TAU_GREY.stroke_width(2);
            let ends = [(self.x.start, tau), (self.x.end, tau)];
            chart.draw_series(DashedLineSeries::new(ends, 8, 5, style))?;
            entry(&mut legend)?.label(label).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (10, 0)], style)
                    + PathElement::new(vec![(16, 0), (SWATCH_W, 0)], style)
            });
        }
        draw_legend(&mut legend)
    }
}

/// Writes the convergence plot (the paper's accuracy against effective training
/// instances): one line per teacher (the mean across seeds) with its shaded band (e.g.
/// the 95% confidence interval from [`band_from_seeds`]), and an optional dashed
/// horizontal line at `tau`; the legend names them right of the chart. Teachers take
/// palette colours by position in `series`.
///
/// Non-finite points are skipped (the line and band break there). Errors:
/// [`PlotError::EmptyInput`] when `series` is empty or holds no finite point; the
/// file and font errors of [`PlotError`] otherwise.
pub fn plot_convergence(
    stem: impl AsRef<Path>,
    series: &[BandSeries],
    labels: &ChartLabels,
    tau: Option<f64>,
) -> Result<PlotFiles, PlotError> {
    if series.is_empty() {
        return Err(PlotError::EmptyInput(
            "no series for the convergence plot".into(),
        ));
    }
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.x.is_finite() && p.mean.is_finite())
    };
    let (x0, x1) = finite_range(finite().map(|p| p.x))
        .ok_or_else(|| PlotError::EmptyInput("no finite point in any convergence series".into()))?;
    let ys = finite()
        .flat_map(|p| [p.mean, p.lower, p.upper])
        .chain(tau.filter(|t| t.is_finite()));
    let (y0, y1) = finite_range(ys).unwrap_or((0.0, 1.0));
    let figure = Convergence {
        series,
        labels,
        tau,
        x: if x1 > x0 { x0..x1 } else { padded(x0, x1, 0.0) },
        y: padded(y0, y1, 0.05),
    };
    write_figure(stem.as_ref(), &figure)
}

// ---------------------------------------------------------------------------------------
// Interval plot (the benchmark's leaderboard)
// ---------------------------------------------------------------------------------------

/// One row of an interval plot: a point estimate and its interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntervalRow {
    /// Name on the y axis.
    pub label: String,
    /// The estimate (a dot).
    pub estimate: f64,
    /// Lower end of its interval.
    pub lower: f64,
    /// Upper end of its interval.
    pub upper: f64,
}

struct Intervals<'a> {
    rows: &'a [IntervalRow],
    labels: &'a ChartLabels,
    x: Range<f64>,
    reference: Option<f64>,
}

impl Figure for Intervals<'_> {
    fn size(&self) -> (u32, u32) {
        (1000, 120 + 44 * self.rows.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = page(root, &self.labels.title)?;
        let n = self.rows.len();
        let names: Vec<String> = self.rows.iter().map(|r| r.label.clone()).collect();
        let name_of = move |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[n - 1 - i as usize].clone()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(&body)
            .margin(12)
            .x_label_area_size(52)
            .y_label_area_size(180)
            .build_cartesian_2d(self.x.clone(), -0.6..(n as f64 - 0.4))?;
        let mut mesh = chart.configure_mesh();
        house_style(&mut mesh)
            .x_desc(self.labels.x_label.as_str())
            .x_labels(8)
            .y_labels(n.max(1))
            .x_label_formatter(&fmt_tick)
            .y_label_formatter(&name_of)
            .disable_y_mesh()
            .draw()?;
        if let Some(r) = self.reference.filter(|r| r.is_finite()) {
            let ends = [(r, -0.6), (r, n as f64 - 0.4)];
            chart.draw_series(DashedLineSeries::new(ends, 8, 5, TAU_GREY.stroke_width(2)))?;
        }
        // The first row on top.
        for (i, row) in self.rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let colour = palette(i);
            if row.lower.is_finite() && row.upper.is_finite() {
                chart.draw_series([Rectangle::new(
                    [(row.lower, y - 0.28), (row.upper, y + 0.28)],
                    colour.mix(0.3).filled(),
                )])?;
            }
            if row.estimate.is_finite() {
                chart.draw_series([PathElement::new(
                    vec![(row.estimate, y - 0.28), (row.estimate, y + 0.28)],
                    colour.stroke_width(3),
                )])?;
            }
        }
        Ok(())
    }
}

/// Writes an interval plot, rliable's aggregate figure: one row per entry, top to
/// bottom in the order of `rows`, its interval as a bar and its estimate as a tick, and
/// an optional dashed vertical line at `reference` (e.g. NoTeach's level).
///
/// Errors: [`PlotError::EmptyInput`] when `rows` is empty or holds no finite value; the
/// file and font errors of [`PlotError`] otherwise.
pub fn plot_intervals(
    stem: impl AsRef<Path>,
    rows: &[IntervalRow],
    labels: &ChartLabels,
    reference: Option<f64>,
) -> Result<PlotFiles, PlotError> {
    let values = rows
        .iter()
        .flat_map(|r| [r.estimate, r.lower, r.upper])
        .chain(reference);
    let (lo, hi) = finite_range(values)
        .ok_or_else(|| PlotError::EmptyInput("no finite value for the interval plot".into()))?;
    let figure = Intervals {
        rows,
        labels,
        x: padded(lo.min(0.0), hi, 0.05),
        reference,
    };
    write_figure(stem.as_ref(), &figure)
}

// ---------------------------------------------------------------------------------------
// 2. Filtered-data analysis
// ---------------------------------------------------------------------------------------

/// Size of one panel of the filtered-data figure, its legend included.
const PANEL_W: u32 = 640;
const PANEL_H: u32 = 360;

struct Filtered<'a> {
    panels: &'a [DroppedShares],
    labels: &'a ChartLabels,
    cols: usize,
    rows: usize,
    /// One x range per panel.
    x: Vec<Range<f64>>,
    y: Range<f64>,
}

impl Figure for Filtered<'_> {
    fn size(&self) -> (u32, u32) {
        (
            PANEL_W * self.cols as u32,
            HEADER + PANEL_H * self.rows as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let grid = page(root, &self.labels.title)?;
        for ((panel, x), area) in
            (self.panels.iter().zip(&self.x)).zip(grid.split_evenly((self.rows, self.cols)))
        {
            let names = panel.by.names();
            let body = area.titled(&panel.label, (FONT_FAMILY, PANEL_TITLE_PX))?;
            let [plot, key] = split_legend(&body, &names)?;
            let mut chart = build_chart(&plot, (x.clone(), self.y.clone()), self.labels)?;
            let mut legend = legend_chart(&key)?;
            let markers = panel.points.len() <= 60;
            for (b, (&colour, name)) in BUCKET_COLOURS.iter().zip(names).enumerate() {
                let pts: Vec<(f64, f64)> =
                    panel.points.iter().map(|p| (p.x, p.shares[b])).collect();
                let runs = finite_runs(&pts, finite_xy);
                if markers {
                    let dots = runs
                        .iter()
                        .flatten()
                        .map(|&p| Circle::new(p, 3, colour.filled()));
                    chart.draw_series(dots)?;
                }
                chart.draw_series(
                    runs.into_iter()
                        .map(|run| PathElement::new(run, colour.stroke_width(2))),
                )?;
                label_line(entry(&mut legend)?, name, colour.into(), 2, markers);
            }
            draw_legend(&mut legend)?;
        }
        Ok(())
    }
}

/// Every finite `(x, share)` point of `panels`.
fn finite_points(panels: &[DroppedShares]) -> Vec<(f64, f64)> {
    (panels.iter().flat_map(|t| t.points.iter()))
        .flat_map(|p| p.shares.iter().map(move |&s| (p.x, s)))
        .filter(finite_xy)
        .collect()
}

/// One x range per panel: panels in groups of `group` (a row of a teacher's pair, or all
/// of them) share the range of their group's finite points, with a little room so the
/// end markers are not cut in half; a group without a finite point borrows the range of
/// all panels.
fn panel_x_ranges(panels: &[DroppedShares], group: usize) -> Vec<Range<f64>> {
    let all = finite_range(finite_points(panels).iter().map(|p| p.0));
    (panels.chunks(group.max(1)))
        .flat_map(|g| {
            let (x0, x1) = (finite_range(finite_points(g).iter().map(|p| p.0)))
                .or(all)
                .unwrap_or((0.0, 1.0));
            std::iter::repeat_n(padded(x0, x1, 0.02), g.len())
        })
        .collect()
}

/// Writes the filtered-data analysis (the paper's figure of what the teacher drops):
/// one panel per entry of `panels`, each titled with its label and holding five lines,
/// the share of instances dropped in each bucket (1 = lowest loss or margin, blue, ... 5
/// = highest, red) over training, with a legend naming the buckets by the panel's
/// [`DropBuckets`]. Panels of one kind are laid out in up to three columns; panels of
/// both kinds two to a row, in the given order (e.g. each teacher's loss-rank panel
/// beside its margin panel). Panels of one kind share the x axis, so that teachers
/// compare directly; with both kinds each row (a teacher's pair, e.g. training updates
/// of teachers trained for different numbers of episodes) gets its own x range. The y
/// axis spans at least `[0, 1]`; `labels.x_label` and
/// `y_label` title every panel's axes and `labels.title` the figure. Lines have markers
/// when a panel has at most 60 points.
///
/// Non-finite shares are skipped. Errors: [`PlotError::EmptyInput`] when `panels`
/// is empty or holds no finite point; the file and font errors otherwise.
pub fn plot_filtered_data(
    stem: impl AsRef<Path>,
    panels: &[DroppedShares],
    labels: &ChartLabels,
) -> Result<PlotFiles, PlotError> {
    let Some(first) = panels.first() else {
        return Err(PlotError::EmptyInput(
            "no teachers for the filtered-data plot".into(),
        ));
    };
    let all = finite_points(panels);
    if all.is_empty() {
        return Err(PlotError::EmptyInput(
            "no finite point in any filtered-data series".into(),
        ));
    }
    let (y0, y1) = finite_range(all.iter().map(|p| p.1).chain([0.0, 1.0])).unwrap_or((0.0, 1.0));
    let mixed = panels.iter().any(|p| p.by != first.by);
    let n = panels.len();
    let cols = match n {
        _ if mixed => 2,
        1 => 1,
        2..=4 => 2,
        _ => 3,
    };
    let x = panel_x_ranges(panels, if mixed { cols } else { n });
    let figure = Filtered {
        panels,
        labels,
        cols,
        rows: n.div_ceil(cols),
        x,
        y: padded(y0, y1, 0.03),
    };
    write_figure(stem.as_ref(), &figure)
}

// ---------------------------------------------------------------------------------------
// 3. Teacher training curves
// ---------------------------------------------------------------------------------------

/// At most this many points per series get markers; beyond, markers would hide the line.
const MAX_MARKERS: usize = 150;

struct Training<'a> {
    curves: &'a [TeacherCurve],
    labels: &'a ChartLabels,
    x: Range<f64>,
    y: Range<f64>,
}

impl Figure for Training<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = page(root, &self.labels.title)?;
        let names: Vec<&str> = (self.curves.iter())
            .flat_map(|c| std::iter::once(&c.label).chain(c.secondary.iter().map(|s| &s.label)))
            .map(String::as_str)
            .collect();
        let [plot, key] = split_legend(&body, &names)?;
        let mut chart = build_chart(&plot, (self.x.clone(), self.y.clone()), self.labels)?;
        let mut legend = legend_chart(&key)?;
        for (i, c) in self.curves.iter().enumerate() {
            let colour = palette(i);
            // With a second series the raw values step back (lighter) behind it.
            let raw = colour.mix(if c.secondary.is_some() { 0.45 } else { 1.0 });
            let runs = finite_runs(&c.values, finite_xy);
            let markers = c.values.len() <= MAX_MARKERS;
            if markers {
                chart.draw_series(
                    runs.iter()
                        .flatten()
                        .map(|&p| Circle::new(p, 3, raw.filled())),
                )?;
            }
            chart.draw_series(
                runs.into_iter()
                    .map(|run| PathElement::new(run, raw.stroke_width(1))),
            )?;
            label_line(entry(&mut legend)?, &c.label, raw, 1, markers);
            if let Some(sec) = &c.secondary {
                let runs = finite_runs(&sec.points, finite_xy);
                chart.draw_series(
                    runs.into_iter()
                        .map(|run| PathElement::new(run, colour.stroke_width(3))),
                )?;
                label_line(entry(&mut legend)?, &sec.label, colour.into(), 3, false);
            }
        }
        draw_legend(&mut legend)
    }
}

/// Writes the teachers' training curves: per teacher, the per-episode values (e.g.
/// episode returns) as a thin line with markers (markers up to 150 points per series),
/// and the optional second series as a thick line in the same colour (the raw values
/// are then drawn lighter); the legend names both right of the chart. Teachers take
/// palette colours by position in `curves`.
///
/// Non-finite points are skipped. Errors: [`PlotError::EmptyInput`] when `curves` is
/// empty or holds no finite point; the file and font errors otherwise.
pub fn plot_teacher_training(
    stem: impl AsRef<Path>,
    curves: &[TeacherCurve],
    labels: &ChartLabels,
) -> Result<PlotFiles, PlotError> {
    if curves.is_empty() {
        return Err(PlotError::EmptyInput("no teacher training curves".into()));
    }
    let all = || {
        curves
            .iter()
            .flat_map(|c| {
                c.values
                    .iter()
                    .chain(c.secondary.iter().flat_map(|s| s.points.iter()))
            })
            .copied()
            .filter(finite_xy)
    };
    let (x0, x1) = finite_range(all().map(|p| p.0))
        .ok_or_else(|| PlotError::EmptyInput("no finite point in any training curve".into()))?;
    let (y0, y1) = finite_range(all().map(|p| p.1)).unwrap_or((0.0, 1.0));
    let figure = Training {
        curves,
        labels,
        x: padded(x0, x1, 0.02),
        y: padded(y0, y1, 0.05),
    };
    write_figure(stem.as_ref(), &figure)
}
#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// Set to keep the test figures (under the system temp dir) for a look.
    const KEEP_ENV: &str = "L2T_PLOTS_TEST_KEEP";

    /// A fresh folder under the system temp dir for one test, removed when dropped
    /// unless `L2T_PLOTS_TEST_KEEP` is set.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            if std::env::var_os(KEEP_ENV).is_none() {
                let _ = fs::remove_dir_all(&self.0);
            } else {
                eprintln!("note: test figures kept in {}", self.0.display());
            }
        }
    }

    impl AsRef<Path> for Scratch {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("l2t-plots-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn font_present() -> bool {
        match find_font() {
            Ok(_) => true,
            Err(e) => {
                eprintln!("note: PNG checks skipped: {e}");
                false
            }
        }
    }

    /// Runs a plot call; with no font, checks that nothing was written and returns `None`.
    fn plot_or_skip(result: Result<PlotFiles, PlotError>, stem: &Path) -> Option<PlotFiles> {
        match result {
            Ok(files) => Some(files),
            Err(PlotError::FontNotFound {
                figure: Some(figure),
                ..
            }) => {
                assert!(!font_present());
                assert_eq!(figure, stem);
                for ext in ["svg", "png"] {
                    assert!(!with_suffix(stem, ext).exists(), "{ext} written");
                }
                None
            }
            Err(e) => panic!("plot failed: {e}"),
        }
    }

    /// Checks the file is a whole SVG and that it names each of `labels` (the legend).
    fn check_svg(path: &Path, labels: &[&str]) {
        let text = fs::read_to_string(path).expect("read svg");
        assert!(
            text.starts_with("<svg"),
            "not an SVG: {}",
            &text[..40.min(text.len())]
        );
        assert!(text.trim_end().ends_with("</svg>"));
        for label in labels {
            // plotters writes each text on a line of its own.
            assert!(text.lines().any(|l| l == *label), "no label {label:?}");
        }
    }

    /// Decodes the PNG and checks its size and that it has drawn (coloured) pixels.
    fn check_png(path: &Path, expect_colour: bool) -> (u32, u32) {
        let decoder = png::Decoder::new(fs::File::open(path).expect("open png"));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        let px = &buf[..info.buffer_size()];
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let non_white = px.chunks(3).filter(|c| c != &[255, 255, 255]).count();
        assert!(
            non_white > 1000,
            "PNG nearly blank: {non_white} drawn pixels"
        );
        if expect_colour {
            let coloured = px
                .chunks(3)
                .filter(|c| c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) > 60)
                .count();
            assert!(coloured > 200, "PNG has no coloured lines: {coloured}");
        }
        (info.width, info.height)
    }

    fn no_temp_files_left(dir: &Path) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let name = entry.expect("entry").file_name();
            assert!(
                !name.to_string_lossy().ends_with(".part"),
                "temporary file left: {name:?}"
            );
        }
    }

    #[test]
    fn band_by_hand() {
        // Three seeds measured at the same x: at x = 0 the values are 1, 2, 3.
        let seeds = vec![
            vec![(0.0, 1.0), (10.0, 4.0)],
            vec![(0.0, 2.0), (10.0, 4.0)],
            vec![(0.0, 3.0), (10.0, 4.0)],
        ];
        let band = band_from_seeds("t", &seeds, &[0.0, 5.0, 10.0]).expect("band");
        assert_eq!(band.label, "t");
        assert_eq!(band.points.len(), 3);
        // mean 2, sample sd 1, half width t(0.975, 2) * 1 / sqrt(3), t = 4.3027.
        let half = crate::stats::t_critical_95(2) / 3f64.sqrt();
        assert_abs_diff_eq!(half, 4.3027 / 3f64.sqrt(), epsilon = 1e-4);
        let p = band.points[0];
        assert_abs_diff_eq!(p.mean, 2.0, epsilon = 1e-12);
        assert_abs_diff_eq!(p.lower, 2.0 - half, epsilon = 1e-12);
        assert_abs_diff_eq!(p.upper, 2.0 + half, epsilon = 1e-12);
        // x = 5 falls between measurements: the step value is the one from x = 0.
        assert_eq!(band.points[1].mean, 2.0);
        // At x = 10 all agree: the band collapses onto the mean.
        let q = band.points[2];
        assert_eq!((q.mean, q.lower, q.upper), (4.0, 4.0, 4.0));
    }

    #[test]
    fn band_two_seeds_by_hand() {
        let seeds = vec![vec![(1.0, 0.5)], vec![(1.0, 0.7)]];
        let band = band_from_seeds("t", &seeds, &[1.0]).expect("band");
        // mean 0.6, sd sqrt(0.02) = 0.141421..., half = 12.7062 * sd / sqrt 2 = 12.7062 * 0.1
        let p = band.points[0];
        assert_abs_diff_eq!(p.mean, 0.6, epsilon = 1e-12);
        assert_abs_diff_eq!(p.upper - p.mean, 1.27062, epsilon = 1e-5);
        assert_abs_diff_eq!(p.mean - p.lower, 1.27062, epsilon = 1e-5);
    }

    #[test]
    fn band_carries_finished_seeds_forward() {
        // Seed 0 reached tau at x = 20 and stopped; seed 1 goes on to x = 40.
        let seeds = vec![
            vec![(0.0, 0.1), (20.0, 0.9)],
            vec![(0.0, 0.1), (20.0, 0.5), (40.0, 0.7)],
        ];
        let band = band_from_seeds("t", &seeds, &[0.0, 20.0, 30.0, 40.0]).expect("band");
        let means: Vec<f64> = band.points.iter().map(|p| p.mean).collect();
        assert_abs_diff_eq!(means[0], 0.1, epsilon = 1e-12);
        assert_abs_diff_eq!(means[1], 0.7, epsilon = 1e-12);
        assert_abs_diff_eq!(means[2], 0.7, epsilon = 1e-12); // 0.9 carried, 0.5 held
        assert_abs_diff_eq!(means[3], 0.8, epsilon = 1e-12); // 0.9 carried, 0.7
    }

    #[test]
    fn band_skips_grid_points_before_any_measurement_and_counts_started_seeds() {
        let seeds = vec![vec![(5.0, 1.0)], vec![(10.0, 3.0)]];
        let band = band_from_seeds("t", &seeds, &[0.0, 5.0, 10.0]).expect("band");
        let xs: Vec<f64> = band.points.iter().map(|p| p.x).collect();
        assert_eq!(xs, vec![5.0, 10.0]);
        // At x = 5 only seed 0 has started: a single value, band = line.
        let p = band.points[0];
        assert_eq!((p.mean, p.lower, p.upper), (1.0, 1.0, 1.0));
        assert_abs_diff_eq!(band.points[1].mean, 2.0, epsilon = 1e-12);
    }

    #[test]
    fn single_seed_band_is_the_line() {
        let seeds = vec![vec![(0.0, 0.2), (1.0, 0.4), (2.0, 0.6)]];
        let band = band_from_seeds("one", &seeds, &linear_grid(0.0, 2.0, 5)).expect("band");
        assert_eq!(band.points.len(), 5);
        for p in &band.points {
            assert_eq!(p.lower, p.mean);
            assert_eq!(p.upper, p.mean);
        }
        assert_eq!(band.points[3].mean, 0.4); // x = 1.5: step value from x = 1
    }

    #[test]
    fn band_ignores_nan_measurements() {
        let seeds = vec![
            vec![(0.0, 0.2), (1.0, f64::NAN), (f64::NAN, 0.9), (2.0, 0.6)],
            vec![(0.0, f64::NAN)],
        ];
        let band = band_from_seeds("t", &seeds, &[0.0, 1.0, 2.0]).expect("band");
        let means: Vec<f64> = band.points.iter().map(|p| p.mean).collect();
        assert_eq!(means, vec![0.2, 0.2, 0.6]);
        assert!(band.points.iter().all(|p| p.lower.is_finite()));
    }

    #[test]
    fn band_errors() {
        let grid = [0.0, 1.0];
        assert!(matches!(
            band_from_seeds("t", &[], &grid),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![(0.0, 1.0)]], &[]),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![]], &grid),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![(0.0, f64::NAN)]], &grid),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![(5.0, 1.0)]], &grid),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![(0.0, 1.0)]], &[1.0, 0.0]),
            Err(PlotError::InvalidInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![(0.0, 1.0)]], &[0.0, f64::NAN]),
            Err(PlotError::InvalidInput(_))
        ));
        assert!(matches!(
            band_from_seeds("t", &[vec![(1.0, 1.0), (0.0, 1.0)]], &grid),
            Err(PlotError::InvalidInput(_))
        ));
    }

    #[test]
    fn moving_average_by_hand() {
        let pts = [
            (0.0, 1.0),
            (1.0, 3.0),
            (2.0, f64::NAN),
            (3.0, 5.0),
            (4.0, 7.0),
        ];
        let ma = moving_average(&pts, 2);
        assert_eq!(ma, vec![(0.0, 1.0), (1.0, 2.0), (3.0, 4.0), (4.0, 6.0)]);
        assert_eq!(moving_average(&pts[..2], 0), vec![(0.0, 1.0), (1.0, 3.0)]);
        assert!(moving_average(&[], 3).is_empty());
    }

    #[test]
    fn tick_format() {
        assert_eq!(fmt_tick(&0.0), "0");
        assert_eq!(fmt_tick(&-0.0001), "0");
        assert_eq!(fmt_tick(&0.85), "0.85");
        assert_eq!(fmt_tick(&250.0), "250");
        assert_eq!(fmt_tick(&20_000.0), "20k");
        assert_eq!(fmt_tick(&1_500_000.0), "1.5M");
    }

    #[test]
    fn stem_suffix_keeps_dots() {
        assert_eq!(
            with_suffix(Path::new("out/fig.v2"), "svg"),
            PathBuf::from("out/fig.v2.svg")
        );
    }

    fn teachers(n: usize) -> Vec<BandSeries> {
        (0..n)
            .map(|t| {
                let seeds: Vec<Vec<(f64, f64)>> = (0..5)
                    .map(|s| {
                        let end = 40_000.0 + 30_000.0 * t as f64 + 5_000.0 * s as f64;
                        (0..=40)
                            .map(|k| k as f64 * 5_000.0)
                            .take_while(|&x| x <= end)
                            .map(|x| {
                                let rate = 1.0 + 0.3 * t as f64 + 0.05 * s as f64;
                                (x, 0.9 - 0.8 * (-x * rate / 40_000.0).exp())
                            })
                            .collect()
                    })
                    .collect();
                band_from_seeds(
                    format!("teacher {t}"),
                    &seeds,
                    &linear_grid(0.0, 200_000.0, 81),
                )
                .expect("band")
            })
            .collect()
    }

    #[test]
    fn convergence_writes_svg_and_png() {
        let dir = scratch("convergence");
        let stem = dir.join("convergence");
        let mut series = teachers(7);
        // A NaN in the middle of one series must not panic.
        series[1].points[10].mean = f64::NAN;
        series[2].points[5].upper = f64::INFINITY;
        let labels = ChartLabels::new(
            "Fashion-MNIST MLP: dev accuracy",
            "effective training instances",
            "dev accuracy",
        );
        if let Some(files) =
            plot_or_skip(plot_convergence(&stem, &series, &labels, Some(0.8)), &stem)
        {
            assert_eq!(files.svg, dir.join("convergence.svg"));
            let names: Vec<String> = (0..7).map(|t| format!("teacher {t}")).collect();
            let mut legend: Vec<&str> = names.iter().map(String::as_str).collect();
            legend.extend(["tau = 0.8", "dev accuracy", labels.title.as_str()]);
            check_svg(&files.svg, &legend);
            assert_eq!(check_png(&files.png, true), (1200, 600));
        }
        no_temp_files_left(&dir);
    }

    #[test]
    fn intervals_write_svg_and_png_with_every_label() {
        let dir = scratch("intervals");
        let stem = dir.join("leaderboard");
        let rows: Vec<IntervalRow> = ["es", "rho_loss", "no_teach"]
            .iter()
            .enumerate()
            .map(|(i, name)| IntervalRow {
                label: name.to_string(),
                estimate: 0.2 + 0.4 * i as f64,
                lower: 0.15 + 0.4 * i as f64,
                upper: 0.3 + 0.4 * i as f64,
            })
            .collect();
        let labels = ChartLabels::new("IQM of instances over NoTeach", "normalised instances", "");
        if let Some(files) = plot_or_skip(plot_intervals(&stem, &rows, &labels, Some(1.0)), &stem) {
            check_svg(
                &files.svg,
                &["es", "rho_loss", "no_teach", labels.title.as_str()],
            );
            assert_eq!(check_png(&files.png, true), (1000, 120 + 44 * 3));
        }
        let nan = IntervalRow {
            label: "x".into(),
            estimate: f64::NAN,
            lower: f64::NAN,
            upper: f64::NAN,
        };
        assert!(matches!(
            plot_intervals(&stem, &[nan], &labels, None),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            plot_intervals(&stem, &[], &labels, None),
            Err(PlotError::EmptyInput(_))
        ));
        no_temp_files_left(&dir);
    }

    #[test]
    fn convergence_single_point_and_single_seed() {
        let dir = scratch("convergence-one");
        let stem = dir.join("one");
        let one = band_from_seeds("only", &[vec![(3.0, 0.5)]], &[3.0]).expect("band");
        let labels = ChartLabels::new("", "x", "y");
        if let Some(files) = plot_or_skip(plot_convergence(&stem, &[one], &labels, None), &stem) {
            check_svg(&files.svg, &["only"]);
            check_png(&files.png, false);
        }
    }

    #[test]
    fn plots_reject_empty_input() {
        let dir = scratch("empty");
        let labels = ChartLabels::default();
        let stem = dir.join("e");
        assert!(matches!(
            plot_convergence(&stem, &[], &labels, None),
            Err(PlotError::EmptyInput(_))
        ));
        let nan = BandSeries {
            label: "nan".into(),
            points: vec![BandPoint {
                x: f64::NAN,
                mean: 1.0,
                lower: 0.0,
                upper: 2.0,
            }],
        };
        assert!(matches!(
            plot_convergence(&stem, &[nan], &labels, Some(0.5)),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            plot_filtered_data(&stem, &[], &labels),
            Err(PlotError::EmptyInput(_))
        ));
        let empty = DroppedShares {
            label: "x".into(),
            by: DropBuckets::LossRank,
            points: vec![],
        };
        assert!(matches!(
            plot_filtered_data(&stem, &[empty], &labels),
            Err(PlotError::EmptyInput(_))
        ));
        assert!(matches!(
            plot_teacher_training(&stem, &[], &labels),
            Err(PlotError::EmptyInput(_))
        ));
        let nan_curve = TeacherCurve {
            label: "x".into(),
            values: vec![(0.0, f64::NAN)],
            secondary: None,
        };
        assert!(matches!(
            plot_teacher_training(&stem, &[nan_curve], &labels),
            Err(PlotError::EmptyInput(_))
        ));
        // Nothing was written for rejected input.
        assert_eq!(fs::read_dir(&dir).expect("dir").count(), 0);
    }

    fn drop_record(label: &str, shift: f64) -> DroppedShares {
        DroppedShares {
            label: label.into(),
            by: DropBuckets::LossRank,
            points: (0..40)
                .map(|k| {
                    let x = k as f64 * 250.0;
                    let t = k as f64 / 40.0;
                    let mut shares = [0.0; 5];
                    for (b, s) in shares.iter_mut().enumerate() {
                        // Early on the easy buckets are dropped; later the hard ones.
                        let centre = t * 4.0 + shift;
                        *s = (0.6 * (-(b as f64 - centre).powi(2) / 2.0).exp()).min(1.0);
                    }
                    if k == 7 {
                        shares[2] = f64::NAN;
                    }
                    DropPoint { x, shares }
                })
                .collect(),
        }
    }

    #[test]
    fn filtered_data_writes_svg_and_png() {
        let dir = scratch("filtered");
        let labels = ChartLabels::new(
            "Share of instances dropped per loss bucket",
            "student iteration",
            "share dropped",
        );
        for n in [1usize, 3, 5] {
            let stem = dir.join(format!("filtered-{n}"));
            let records: Vec<DroppedShares> = (0..n)
                .map(|i| drop_record(&format!("teacher {i}"), -(i as f64) * 0.5))
                .collect();
            if let Some(files) = plot_or_skip(plot_filtered_data(&stem, &records, &labels), &stem) {
                let mut legend = DropBuckets::LossRank.names().to_vec();
                legend.extend(records.iter().map(|r| r.label.as_str()));
                check_svg(&files.svg, &legend);
                let cols = [1, 2, 3][usize::from(n > 1) + usize::from(n > 4)];
                let size = (
                    PANEL_W * cols,
                    HEADER + PANEL_H * n.div_ceil(cols as usize) as u32,
                );
                assert_eq!(check_png(&files.png, true), size);
            }
        }
        no_temp_files_left(&dir);
    }

    #[test]
    fn pairs_get_their_own_x_range_and_one_kind_shares_one() {
        let panel = |by, last: f64| DroppedShares {
            label: "t".into(),
            by,
            points: (1..=4)
                .map(|i| DropPoint {
                    x: last * i as f64 / 4.0,
                    shares: [0.1; 5],
                })
                .collect(),
        };
        let pairs = [
            panel(DropBuckets::LossRank, 20.0),
            panel(DropBuckets::Margin, 20.0),
            panel(DropBuckets::LossRank, 480.0),
            panel(DropBuckets::Margin, 480.0),
        ];
        let x = panel_x_ranges(&pairs, 2);
        assert_eq!(x.len(), 4);
        assert_eq!(x[0], x[1]);
        assert_eq!(x[2], x[3]);
        assert!(x[0].end < 21.0 && x[0].start > 4.0, "{:?}", x[0]);
        assert!(x[2].end > 480.0 && x[2].start > 100.0, "{:?}", x[2]);
        let shared = panel_x_ranges(&pairs, pairs.len());
        assert!(shared.iter().all(|r| *r == shared[0]));
        assert!(shared[0].start < 6.0 && shared[0].end > 480.0);
    }

    #[test]
    fn loss_rank_and_margin_panels_pair_up() {
        let dir = scratch("training-drops");
        let labels = ChartLabels::new("Dropped per update", "training episodes", "share dropped");
        // Three teachers, each a loss-rank panel then a margin panel: two columns.
        let panels: Vec<DroppedShares> = (0..3)
            .flat_map(|i| {
                let record = drop_record(&format!("teacher {i}"), i as f64 * 0.5);
                [DropBuckets::LossRank, DropBuckets::Margin].map(|by| DroppedShares {
                    label: format!("{}, by {by:?}", record.label),
                    by,
                    points: record.points.clone(),
                })
            })
            .collect();
        let stem = dir.join("training_drops");
        if let Some(files) = plot_or_skip(plot_filtered_data(&stem, &panels, &labels), &stem) {
            let mut legend = DropBuckets::LossRank.names().to_vec();
            legend.extend(DropBuckets::Margin.names());
            legend.extend(["teacher 2, by LossRank", "teacher 2, by Margin"]);
            check_svg(&files.svg, &legend);
            assert_eq!(
                check_png(&files.png, true),
                (2 * PANEL_W, HEADER + 3 * PANEL_H)
            );
        }
        no_temp_files_left(&dir);
    }

    #[test]
    fn teacher_training_writes_svg_and_png() {
        let dir = scratch("training");
        let stem = dir.join("training");
        let curves: Vec<TeacherCurve> = (0..3)
            .map(|t| {
                let values: Vec<(f64, f64)> = (0..60)
                    .map(|e| {
                        let e = e as f64;
                        let noise = ((e * 12.9898 + t as f64).sin() * 43_758.545).fract() * 0.3;
                        (
                            e,
                            -2.0 + 1.5 * (1.0 - (-e / 20.0).exp()) + noise + 0.2 * t as f64,
                        )
                    })
                    .collect();
                let smooth = moving_average(&values, 10);
                TeacherCurve {
                    label: format!("teacher {t}"),
                    values,
                    secondary: (t != 2).then(|| CurveSeries {
                        label: format!("teacher {t}, moving average (10)"),
                        points: smooth,
                    }),
                }
            })
            .collect();
        let labels = ChartLabels::new("Teacher training", "episode", "episode return");
        if let Some(files) = plot_or_skip(plot_teacher_training(&stem, &curves, &labels), &stem) {
            let legend = [
                "teacher 0",
                "teacher 0, moving average (10)",
                "teacher 1, moving average (10)",
                "teacher 2",
            ];
            check_svg(&files.svg, &legend);
            assert_eq!(check_png(&files.png, true), (1200, 600));
        }
        no_temp_files_left(&dir);
    }

    #[test]
    fn png_font_error_names_the_fix() {
        let e = PlotError::FontNotFound {
            tried: vec![PathBuf::from("/nope/DejaVuSans.ttf")],
            figure: Some(PathBuf::from("out/fig")),
        };
        let msg = e.to_string();
        assert!(msg.contains("/nope/DejaVuSans.ttf"), "{msg}");
        assert!(msg.contains("apt-get install fonts-dejavu-core"), "{msg}");
        assert!(msg.contains(FONT_ENV), "{msg}");
        assert!(msg.contains("out/fig"), "{msg}");
    }

    /// Env var through which [`no_figure_without_font`] tells its child where to write.
    const CHILD_OUT: &str = "L2T_PLOTS_TEST_CHILD_OUT";

    /// Runs [`no_figure_without_font_child`] in a fresh test process (no font registered
    /// yet) with `L2T_FONT` pointing nowhere: the error must be `FontNotFound`, naming
    /// the font tried and the figure, and nothing may be written.
    #[test]
    fn no_figure_without_font() {
        let dir = scratch("nofont");
        let exe = std::env::current_exe().expect("test binary");
        // Test names leave out the crate's name.
        let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
        let child = std::process::Command::new(exe)
            .args([
                "--ignored",
                "--exact",
                &format!("{module}::no_figure_without_font_child"),
                "--test-threads=1",
            ])
            .env(FONT_ENV, dir.join("missing-font.ttf"))
            .env(CHILD_OUT, dir.as_os_str())
            .output()
            .expect("run child test");
        // Captured, so the child's summary lines don't mix with this run's.
        assert!(
            child.status.success(),
            "child test failed:\n{}\n{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        let written: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .filter(|name| name != "ran")
            .collect();
        assert!(written.is_empty(), "written without a font: {written:?}");
        let marker = fs::read_to_string(dir.join("ran")).expect("child ran");
        assert_eq!(marker, "3");
    }

    #[test]
    #[ignore = "run by no_figure_without_font in a child process"]
    fn no_figure_without_font_child() {
        let Some(dir) = std::env::var_os(CHILD_OUT).map(PathBuf::from) else {
            eprintln!("note: only meaningful when run by no_figure_without_font");
            return;
        };
        let labels = ChartLabels::new("no font", "x", "y");
        let mut ran = 0;
        let results = [
            plot_convergence(dir.join("convergence"), &teachers(2), &labels, Some(0.8)),
            plot_filtered_data(dir.join("filtered"), &[drop_record("t", 0.0)], &labels),
            plot_teacher_training(
                dir.join("training"),
                &[TeacherCurve {
                    label: "t".into(),
                    values: vec![(0.0, 1.0), (1.0, 2.0)],
                    secondary: None,
                }],
                &labels,
            ),
        ];
        for (r, stem) in results
            .into_iter()
            .zip(["convergence", "filtered", "training"])
        {
            match r {
                Err(PlotError::FontNotFound {
                    tried,
                    figure: Some(figure),
                }) => {
                    assert_eq!(tried, vec![dir.join("missing-font.ttf")]);
                    assert_eq!(figure, dir.join(stem));
                    ran += 1;
                }
                other => panic!("expected FontNotFound naming the figure, got {other:?}"),
            }
        }
        fs::write(dir.join("ran"), ran.to_string()).expect("marker");
    }
}
