//! The PNG and SVG chart: what it shows and where.
//!
//! Layout (1000x600): a title and a line saying what the window is; the data area with
//! the target range shaded, the measured values (the last three hours of the model's input,
//! and for a past window the values measured after it), the median forecast with its 50%
//! and 90% bands (the same shading at every step), and a dashed line at the last reading;
//! wall-clock ticks with the date under the first tick and under each new day, the clock in
//! the axis title; the legend to the right of the data area; the warnings that change what
//! the forecast means printed below. Colours are Okabe-Ito's colour-blind-safe palette.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform};

use super::axis::{self, TimeTick};
use super::notes::{older_sequence_used, plain_warnings};
use super::{HEIGHT, PlotData, PlotError, WIDTH, medians, quantile, step_samples};

/// The font family of every text (the embedded DejaVu Sans).
pub(crate) const FONT: &str = "sans-serif";
/// History points drawn: three hours on the 5-minute grid.
pub const HISTORY_POINTS: usize = 36;

/// Okabe-Ito blue: the forecast.
const BLUE: RGBColor = RGBColor(0, 114, 178);
/// Okabe-Ito bluish green: the target range.
const GREEN: RGBColor = RGBColor(0, 158, 115);
/// Measured values.
const INK: RGBColor = RGBColor(0, 0, 0);
/// Text other than data labels.
const TEXT: RGBColor = RGBColor(34, 34, 34);
/// Secondary text.
const MUTED: RGBColor = RGBColor(90, 90, 90);
/// Okabe-Ito vermillion, darkened for text contrast: warnings.
const WARN: RGBColor = RGBColor(180, 70, 0);
/// Grid lines.
const GRID: RGBColor = RGBColor(226, 226, 226);
/// The 90% band's opacity; the 50% band is drawn over it with [`BAND_50`].
const BAND_90: f64 = 0.2;
/// The 50% band's opacity (over the 90% band).
const BAND_50: f64 = 0.38;
/// The target range's opacity.
const TARGET: f64 = 0.08;

const PLOT_LEFT: i32 = 78;
const PLOT_TOP: i32 = 86;
const LEGEND_WIDTH: i32 = 186;
const WARNING_LINE: i32 = 19;
const MAX_WARNINGS: usize = 5;

/// The data area in pixels and the value ranges it shows.
struct Frame {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
    /// Minutes from the last reading, left and right edges.
    x: (f64, f64),
    /// Glucose in display units, bottom and top edges.
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64, y: f64) -> (i32, i32) {
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (
            self.left + (fx * f64::from(self.right - self.left)).round() as i32,
            self.bottom - (fy * f64::from(self.bottom - self.top)).round() as i32,
        )
    }
}

/// What the chart draws, in display units and minutes from the last reading.
struct Series {
    measured: Vec<(f64, f64)>,
    median: Vec<(f64, f64)>,
    band_90: Vec<(f64, f64)>,
    band_50: Vec<(f64, f64)>,
    has_bands: bool,
}

fn minutes(t: i64, t0: i64) -> f64 {
    (t as f64 - t0 as f64) / 60_000.0
}

fn series(data: &PlotData, t0: i64) -> Series {
    let u = data.units;
    let n = data.history.len().min(data.history_times.len());
    let from = n.saturating_sub(HISTORY_POINTS);
    let mut measured: Vec<(f64, f64)> = (from..n)
        .map(|i| {
            (
                minutes(data.history_times[i], t0),
                u.from_mgdl(data.history[i]),
            )
        })
        .collect();
    if let Some(actual) = &data.actual {
        measured.extend(
            data.forecast_times
                .iter()
                .zip(actual)
                .map(|(&t, &v)| (minutes(t, t0), u.from_mgdl(v))),
        );
    }
    let start = data.history.last().map(|&v| (0.0, u.from_mgdl(v)));
    let xs: Vec<f64> = data
        .forecast_times
        .iter()
        .map(|&t| minutes(t, t0))
        .collect();
    let mut median: Vec<(f64, f64)> = start.into_iter().collect();
    median.extend(
        xs.iter()
            .zip(medians(data))
            .map(|(&x, m)| (x, u.from_mgdl(m))),
    );
    let level = |q: f64| -> Vec<(f64, f64)> {
        xs.iter()
            .enumerate()
            .map(|(p, &x)| (x, u.from_mgdl(quantile(&step_samples(data, p), q))))
            .collect()
    };
    let band = |lo: f64, hi: f64| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = start.into_iter().collect();
        points.extend(level(hi));
        points.extend(level(lo).into_iter().rev());
        points
    };
    Series {
        measured,
        median,
        band_90: band(0.05, 0.95),
        band_50: band(0.25, 0.75),
        has_bands: data.samples.len() > 1,
    }
}

fn err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Render(e.to_string())
}

fn style(size: u32, color: RGBColor) -> TextStyle<'static> {
    let mut s = TextStyle::from((FONT, size).into_font());
    s.color = color.to_backend_color();
    s
}

fn anchored(s: TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    s.pos(Pos::new(h, v))
}

/// Draws `data` on `root` (1000x600); data that [`super::validate`] refuses is an error.
pub(crate) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PlotData,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    super::validate(data)?;
    let t0 = data.history_times.last().copied().unwrap_or(0);
    let s = series(data, t0);
    let warnings: Vec<String> = plain_warnings(&data.warnings)
        .into_iter()
        .take(MAX_WARNINGS)
        .collect();
    let frame = frame(data, &s, warnings.len());
    root.fill(&WHITE).map_err(err)?;
    draw_header(root, data, t0)?;
    let ticks = draw_grid(root, &frame, data, t0)?;
    draw_data(root, &frame, &s)?;
    draw_now(root, &frame, data, t0)?;
    draw_axes(root, &frame, data, t0, &ticks)?;
    draw_legend(root, &frame, data, s.has_bands)?;
    draw_warnings(root, &frame, &warnings)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The data area: x from the first drawn reading to the last forecast time, y over every
/// drawn value and the target range, each with a margin.
fn frame(data: &PlotData, s: &Series, warnings: usize) -> Frame {
    let points = || {
        s.measured
            .iter()
            .chain(&s.median)
            .chain(&s.band_90)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (lo, hi) = data.units.target_range();
    let (mut x0, mut x1, y0, y1) = points().fold(
        (f64::INFINITY, f64::NEG_INFINITY, lo, hi),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if !(x0.is_finite() && x1.is_finite() && x1 > x0) {
        (x0, x1) = (-60.0, 60.0);
    }
    let xpad = ((x1 - x0) * 0.02).max(2.0);
    let ypad = (y1 - y0) * 0.06;
    let bottom = HEIGHT as i32 - 76 - WARNING_LINE * warnings as i32 - 4;
    Frame {
        left: PLOT_LEFT,
        top: PLOT_TOP,
        right: WIDTH as i32 - LEGEND_WIDTH - 18,
        bottom,
        x: (x0 - xpad, x1 + xpad),
        // no room below zero unless a value is there
        y: (
            if y0 >= 0.0 {
                (y0 - ypad).max(0.0)
            } else {
                y0 - ypad
            },
            y1 + ypad,
        ),
    }
}

fn draw_header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &PlotData,
    t0: i64,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let horizon = data
        .forecast_times
        .last()
        .map_or(0.0, |&t| minutes(t, t0))
        .round();
    let title = format!(
        "Glucose forecast: {horizon:.0} minutes from {} {}",
        axis::date_text(t0),
        axis::clock_text(t0)
    );
    let mut bold = TextStyle::from((FONT, 22, FontStyle::Bold).into_font());
    bold.color = TEXT.to_backend_color();
    root.draw_text(&title, &bold, (PLOT_LEFT, 14))
        .map_err(err)?;
    let subtitle = if data.actual.is_some() {
        format!(
            "A past window: the model saw the readings up to {}; the values measured after it are shown for comparison.",
            axis::clock_text(t0)
        )
    } else if older_sequence_used(&data.warnings) {
        "The hour after the end of an older sequence, not after the newest data: see below."
            .to_string()
    } else {
        "The hour after the last reading, forecast from the readings before it.".to_string()
    };
    root.draw_text(&subtitle, &style(14, MUTED), (PLOT_LEFT, 44))
        .map_err(err)?;
    Ok(())
}

/// The target range, grid lines and midnight lines; returns the time ticks.
fn draw_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    data: &PlotData,
    t0: i64,
) -> Result<Vec<TimeTick>, PlotError>
where
    DB::ErrorType: 'static,
{
    let (lo, hi) = data.units.target_range();
    let (lo, hi) = (lo.max(f.y.0), hi.min(f.y.1));
    let (xa, ya) = f.px(f.x.0, hi);
    let (xb, yb) = f.px(f.x.1, lo);
    root.draw(&Rectangle::new(
        [(xa, ya), (xb, yb)],
        GREEN.mix(TARGET).filled(),
    ))
    .map_err(err)?;
    for y in [ya, yb] {
        root.draw(&PathElement::new(
            vec![(xa, y), (xb, y)],
            GREEN.mix(0.6).stroke_width(1),
        ))
        .map_err(err)?;
    }
    let ms = |m: f64| t0.saturating_add((m * 60_000.0).round() as i64);
    let ticks = axis::time_ticks(ms(f.x.0), ms(f.x.1), 9);
    let grid = GRID.stroke_width(1);
    for t in &ticks {
        let (x, _) = f.px(minutes(t.ms, t0), 0.0);
        root.draw(&PathElement::new(vec![(x, f.top), (x, f.bottom)], grid))
            .map_err(err)?;
    }
    for (v, _) in axis::value_ticks(f.y.0, f.y.1, data.units, 8) {
        let (_, y) = f.px(0.0, v);
        root.draw(&PathElement::new(vec![(f.left, y), (f.right, y)], grid))
            .map_err(err)?;
    }
    for m in axis::midnights(ms(f.x.0), ms(f.x.1)) {
        let (x, _) = f.px(minutes(m, t0), 0.0);
        root.draw(&PathElement::new(
            vec![(x, f.top), (x, f.bottom)],
            RGBColor(150, 150, 150).stroke_width(1),
        ))
        .map_err(err)?;
    }
    Ok(ticks)
}

fn draw_data<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    s: &Series,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let px =
        |pts: &[(f64, f64)]| -> Vec<(i32, i32)> { pts.iter().map(|&(x, y)| f.px(x, y)).collect() };
    if s.has_bands {
        root.draw(&Polygon::new(px(&s.band_90), BLUE.mix(BAND_90).filled()))
            .map_err(err)?;
        root.draw(&Polygon::new(px(&s.band_50), BLUE.mix(BAND_50).filled()))
            .map_err(err)?;
    }
    for (pts, color, width, radius) in [(&s.measured, INK, 2, 3), (&s.median, BLUE, 3, 4)] {
        let line = px(pts);
        root.draw(&PathElement::new(line.clone(), color.stroke_width(width)))
            .map_err(err)?;
        for p in line {
            root.draw(&Circle::new(p, radius, color.filled()))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// The dashed line at the last reading, labelled above the data area.
fn draw_now<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    data: &PlotData,
    t0: i64,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let (x, _) = f.px(0.0, 0.0);
    let dash = RGBColor(60, 60, 60).stroke_width(2);
    let mut y = f.top;
    while y < f.bottom {
        let end = (y + 7).min(f.bottom);
        root.draw(&PathElement::new(vec![(x, y), (x, end)], dash))
            .map_err(err)?;
        y += 12;
    }
    let label = if data.actual.is_some() || older_sequence_used(&data.warnings) {
        format!("forecast from {}", axis::clock_text(t0))
    } else {
        format!("now {}", axis::clock_text(t0))
    };
    let st = anchored(style(14, TEXT), HPos::Center, VPos::Bottom);
    root.draw_text(&label, &st, (x, f.top - 5)).map_err(err)?;
    Ok(())
}

/// The frame, tick labels, dates and axis titles.
fn draw_axes<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    data: &PlotData,
    t0: i64,
    ticks: &[TimeTick],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    root.draw(&Rectangle::new(
        [(f.left, f.top), (f.right, f.bottom)],
        RGBColor(68, 68, 68).stroke_width(1),
    ))
    .map_err(err)?;
    let tick_style = anchored(style(14, TEXT), HPos::Center, VPos::Top);
    let date_style = anchored(style(13, MUTED), HPos::Center, VPos::Top);
    let mut last_date_end = i32::MIN;
    for t in ticks {
        let (x, _) = f.px(minutes(t.ms, t0), 0.0);
        root.draw(&PathElement::new(
            vec![(x, f.bottom), (x, f.bottom + 4)],
            RGBColor(68, 68, 68).stroke_width(1),
        ))
        .map_err(err)?;
        root.draw_text(&t.label, &tick_style, (x, f.bottom + 7))
            .map_err(err)?;
        if let Some(date) = &t.date {
            let w = root
                .estimate_text_size(date, &date_style)
                .map_or(80, |(w, _)| w as i32);
            // keep dates apart: a date never starts before the previous one ends
            let cx = x.max(last_date_end + 10 + w / 2);
            root.draw_text(date, &date_style, (cx, f.bottom + 25))
                .map_err(err)?;
            last_date_end = cx + w / 2;
        }
    }
    let title = format!("Time ({})", data.clock.label());
    let st = anchored(style(15, TEXT), HPos::Center, VPos::Top);
    root.draw_text(&title, &st, ((f.left + f.right) / 2, f.bottom + 46))
        .map_err(err)?;
    let value_style = anchored(style(14, TEXT), HPos::Right, VPos::Center);
    for (v, label) in axis::value_ticks(f.y.0, f.y.1, data.units, 8) {
        let (_, y) = f.px(0.0, v);
        root.draw_text(&label, &value_style, (f.left - 8, y))
            .map_err(err)?;
    }
    let y_title = format!("Glucose ({})", data.units.label());
    let st = anchored(style(15, TEXT), HPos::Center, VPos::Top).transform(FontTransform::Rotate270);
    root.draw_text(&y_title, &st, (14, (f.top + f.bottom) / 2))
        .map_err(err)?;
    Ok(())
}

/// The legend, to the right of the data area.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    data: &PlotData,
    has_bands: bool,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let x = f.right + 18;
    let mut y = f.top + 14;
    let label = anchored(style(15, TEXT), HPos::Left, VPos::Center);
    let note = anchored(style(13, MUTED), HPos::Left, VPos::Center);
    let text_x = x + 38;
    let line = |root: &DrawingArea<DB, Shift>, y: i32, color: RGBColor, w: u32, r: u32| {
        root.draw(&PathElement::new(
            vec![(x, y), (x + 28, y)],
            color.stroke_width(w),
        ))?;
        root.draw(&Circle::new((x + 14, y), r, color.filled()))
    };
    line(root, y, INK, 2, 3).map_err(err)?;
    root.draw_text("measured", &label, (text_x, y))
        .map_err(err)?;
    y += 28;
    line(root, y, BLUE, 3, 4).map_err(err)?;
    root.draw_text("median forecast", &label, (text_x, y))
        .map_err(err)?;
    y += 28;
    let swatch = |y: i32| [(x, y - 8), (x + 28, y + 8)];
    if has_bands {
        root.draw(&Rectangle::new(swatch(y), BLUE.mix(BAND_90).filled()))
            .map_err(err)?;
        root.draw(&Rectangle::new(swatch(y), BLUE.mix(BAND_50).filled()))
            .map_err(err)?;
        root.draw_text("50% band", &label, (text_x, y))
            .map_err(err)?;
        y += 28;
        root.draw(&Rectangle::new(swatch(y), BLUE.mix(BAND_90).filled()))
            .map_err(err)?;
        root.draw_text("90% band", &label, (text_x, y))
            .map_err(err)?;
        y += 18;
        root.draw_text("of the forecast samples", &note, (text_x, y))
            .map_err(err)?;
    } else {
        root.draw_text("one sample: no band", &note, (text_x, y))
            .map_err(err)?;
    }
    y += 28;
    root.draw(&Rectangle::new(swatch(y), GREEN.mix(TARGET).filled()))
        .map_err(err)?;
    root.draw(&Rectangle::new(swatch(y), GREEN.mix(0.5).stroke_width(1)))
        .map_err(err)?;
    root.draw_text("target range", &label, (text_x, y))
        .map_err(err)?;
    y += 18;
    root.draw_text(&data.units.target_text(), &note, (text_x, y))
        .map_err(err)?;
    y += 28;
    let dash = RGBColor(60, 60, 60).stroke_width(2);
    for k in 0..3 {
        root.draw(&PathElement::new(
            vec![(x + 14, y - 9 + k * 7), (x + 14, y - 5 + k * 7)],
            dash,
        ))
        .map_err(err)?;
    }
    root.draw_text("last reading", &label, (text_x, y))
        .map_err(err)?;
    Ok(())
}

/// The warnings, one line each, below the axis title (cut to the width of the chart).
fn draw_warnings<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    f: &Frame,
    warnings: &[String],
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let st = style(14, WARN);
    let max_width = WIDTH as i32 - PLOT_LEFT - 12;
    for (i, w) in warnings.iter().enumerate() {
        let full = format!("⚠ {w}");
        let too_wide = |t: &str| {
            root.estimate_text_size(t, &st)
                .is_ok_and(|(tw, _)| tw as i32 > max_width)
        };
        let mut text = full.clone();
        let mut keep = full.chars().count();
        while keep > 8 && too_wide(&text) {
            keep -= 1;
            let cut: String = full.chars().take(keep).collect();
            text = format!("{}…", cut.trim_end());
        }
        let y = f.bottom + 70 + WARNING_LINE * i as i32;
        root.draw_text(&text, &st, (PLOT_LEFT - 60, y))
            .map_err(err)?;
    }
    Ok(())
}
