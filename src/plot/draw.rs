//! PNG and SVG charts drawn with plotters: the reference's figure as an image.
//!
//! The x axis is in minutes relative to the last history time and labelled with the wall
//! clock (`HH:MM`) every ten minutes from that time, as the Plotly figure's `tick0` and
//! `dtick` place them. Text uses DejaVu Sans, embedded in the binary and registered with
//! plotters' `ab_glyph` renderer, so no system font is needed; the PNG's text is rasterised
//! by [`super::glyphs::GlyphFix`] (SVG text is `<text>` elements).

use std::sync::OnceLock;

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::glyphs::GlyphFix;
use super::pyfmt::datetime_from_micros;
use super::{
    HEIGHT, PlotData, PlotError, TIME_STEP_MINUTES, WIDTH, fan_color, kde_fan, median_line,
    step_samples, true_values,
};

/// The font family name the embedded font is registered under.
const FONT: &str = "sans-serif";

/// Registers the embedded font once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "DejaVu Sans regular".to_string())?;
            register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
                .map_err(|_| "DejaVu Sans bold".to_string())
        })
        .clone()
        .map_err(PlotError::Font)
}

/// The chart of `data` as a 1000x600 RGB PNG. Does not validate (see [`super::validate`]).
pub fn png(data: &PlotData) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let backend = BitMapBackend::<plotters::backend::RGBPixel>::with_buffer_and_format(
            &mut pixels,
            (WIDTH, HEIGHT),
        )
        .map_err(|e| PlotError::Render(e.to_string()))?;
        draw_chart(GlyphFix { inner: backend }.into_drawing_area(), data)?;
    }
    let mut out = Vec::with_capacity(64 * 1024);
    {
        let mut encoder = ::png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(::png::ColorType::Rgb);
        encoder.set_depth(::png::BitDepth::Eight);
        encoder.set_compression(::png::Compression::Fast);
        let mut writer = encoder
            .write_header()
            .map_err(|e| PlotError::Encode(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| PlotError::Encode(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| PlotError::Encode(e.to_string()))?;
    }
    Ok(out)
}

/// The chart of `data` as a 1000x600 SVG document (text as `<text>` elements in
/// `sans-serif`). Does not validate (see [`super::validate`]).
pub fn svg(data: &PlotData) -> Result<String, PlotError> {
    ensure_font()?;
    let mut out = String::with_capacity(256 * 1024);
    {
        let backend = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT));
        draw_chart(backend.into_drawing_area(), data)?;
    }
    Ok(out)
}

fn render_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Render(e.to_string())
}

/// Minutes from `t0` (ms) to `t` (ms).
fn minutes(t: i64, t0: i64) -> f64 {
    (t as f64 - t0 as f64) / 60_000.0
}

/// The time axis: minutes from the last history time, with ticks where the caller puts
/// them (every ten minutes from that time, like the Plotly figure's `tick0` and `dtick`).
struct MinuteAxis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for MinuteAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// One fan polygon in chart coordinates: the step's time going up the grid, then the
/// time moved left by `density * 4.5` minutes coming back down (as the reference's trace).
struct Fan {
    points: Vec<(f64, f64)>,
    alpha: f64,
}

fn draw_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &PlotData,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let t0 = data.history_times.last().copied().unwrap_or(0);
    let horizon = data.forecast_times.len();
    let fans: Vec<Fan> = data
        .forecast_times
        .iter()
        .enumerate()
        .filter_map(|(p, &t)| {
            let (grid, density) = kde_fan(&step_samples(data, p))?;
            let x = minutes(t, t0);
            let width = 0.9 * TIME_STEP_MINUTES;
            let mut points: Vec<(f64, f64)> = grid.iter().map(|&y| (x, y)).collect();
            points.extend(
                grid.iter()
                    .zip(&density)
                    .rev()
                    .map(|(&y, &d)| (x - d * width, y)),
            );
            Some(Fan {
                points,
                alpha: fan_color(p, horizon).1,
            })
        })
        .collect();
    let to_points = |(times, values): (Vec<i64>, Vec<f64>)| -> Vec<(f64, f64)> {
        times
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&t, &v)| (minutes(t, t0), v))
            .collect()
    };
    let truth = to_points(true_values(data));
    let median = to_points(median_line(data));

    // autorange over everything drawn, as plotly does, plus a small margin
    let all = || {
        truth
            .iter()
            .chain(&median)
            .chain(fans.iter().flat_map(|f| f.points.iter()))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = all().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if !(x0.is_finite() && x1.is_finite() && y0.is_finite() && y1.is_finite()) {
        (x0, x1, y0, y1) = (-60.0, 60.0, 0.0, 400.0);
    }
    let (xpad, ypad) = (((x1 - x0) * 0.02).max(1.0), ((y1 - y0) * 0.05).max(1.0));
    let (x0, x1, y0, y1) = (x0 - xpad, x1 + xpad, y0 - ypad, y1 + ypad);
    // ticks every 10 minutes from the last history time (Plotly's tick0 and dtick)
    // (coarser, still aligned to that time, if the range is unusually long)
    let mut tick = 10.0;
    while (x1 - x0) / tick > 16.0 {
        tick *= 2.0;
    }
    let first = (x0 / tick).ceil() as i64;
    let last = (x1 / tick).floor() as i64;
    let ticks: Vec<f64> = (first..=last).map(|k| k as f64 * tick).collect();
    let label = |m: &f64| -> String {
        let us = t0 as f64 * 1000.0 + m * 60_000_000.0;
        datetime_from_micros(us.round() as i64)
            .map(|t| t.format("%H:%M").to_string())
            .unwrap_or_default()
    };

    root.fill(&WHITE).map_err(render_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Gluformer Prediction", (FONT, 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            MinuteAxis {
                linear: (x0..x1).into(),
                ticks,
            },
            y0..y1,
        )
        .map_err(render_err)?;
    let grid_color = RGBColor(211, 211, 211); // plotly "lightgray"
    chart
        .configure_mesh()
        .x_desc("Time")
        .y_desc("Glucose (mg/dL)")
        .axis_desc_style((FONT, 18))
        .label_style((FONT, 14))
        .x_label_formatter(&label)
        .y_label_formatter(&|y: &f64| format!("{y:.0}"))
        .bold_line_style(grid_color.stroke_width(1))
        .max_light_lines(0)
        .draw()
        .map_err(render_err)?;

    for fan in &fans {
        let color = RGBAColor(53, 138, 217, fan.alpha);
        chart
            .draw_series(std::iter::once(Polygon::new(
                fan.points.clone(),
                color.filled(),
            )))
            .map_err(render_err)?;
    }
    for (points, color, radius, name) in [
        (&truth, BLUE, 3, "True Values"),
        (&median, RED, 4, "Median Forecast"),
    ] {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(render_err)?
            .label(name)
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(-2, 0), (16, 0)], color.stroke_width(2))
                    + Circle::new((7, 0), radius, color.filled())
            });
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, radius, color.filled())),
            )
            .map_err(render_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(68, 68, 68))
        .draw()
        .map_err(render_err)?;
    root.present().map_err(render_err)?;
    Ok(())
}
