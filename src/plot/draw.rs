//! PNG and SVG output of the chart drawn by [`super::chart`], with plotters.
//!
//! Text uses DejaVu Sans, embedded in the binary and registered with plotters' `ab_glyph`
//! renderer, so no system font is needed; the PNG's text is rasterised by
//! [`super::glyphs::GlyphFix`], and the SVG's text is `<text>` elements (in `sans-serif`),
//! so it stays selectable and searchable.

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::chart::{self, FONT};
use super::glyphs::GlyphFix;
use super::{HEIGHT, PlotData, PlotError, WIDTH};

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

/// The chart of `data` as a 1000x600 RGB PNG; data that [`super::validate`] refuses is an
/// error.
pub fn png(data: &PlotData) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let backend = BitMapBackend::<plotters::backend::RGBPixel>::with_buffer_and_format(
            &mut pixels,
            (WIDTH, HEIGHT),
        )
        .map_err(|e| PlotError::Render(e.to_string()))?;
        chart::draw(&GlyphFix { inner: backend }.into_drawing_area(), data)?;
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
/// `sans-serif`); data that [`super::validate`] refuses is an error.
pub fn svg(data: &PlotData) -> Result<String, PlotError> {
    ensure_font()?;
    let mut out = String::with_capacity(64 * 1024);
    {
        let backend = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT));
        chart::draw(&backend.into_drawing_area(), data)?;
    }
    Ok(out)
}
