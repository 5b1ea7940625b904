//! The confusion matrix as a heatmap PNG: each cell coloured by its share of
//! the true class (row-normalised, white to dark blue), its count written in
//! it, the class names on both axes.
//!
//! Drawn with plotters on an RGB buffer and encoded with the `image` crate
//! (plotters' own encoder would bring a second, older `image`); text is
//! drawn by ab_glyph with DejaVu Sans carried in the binary, so nothing
//! depends on the fonts or the fontconfig of the machine.

use std::path::Path;
use std::sync::OnceLock;

use image::ImageEncoder;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::DeploymentReport;
use crate::eval::Error;

/// DejaVu Sans 2.37 (see `host/assets/fonts/README.md`: provenance, licence).
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// The name the font is registered under: ours alone, so no other family
/// of that name can stand in for it.
const FAMILY: &str = "wasi-infer-dejavu-sans";

/// The matrix's side in pixels, about (cells are whole pixels).
const MATRIX_SIDE: u32 = 640;
/// Above this many classes only those that occur (as a true or a predicted
/// class, as scikit-learn's `ConfusionMatrixDisplay` shows by default) are
/// drawn: a 1000-class matrix of a small set is a white square otherwise.
const ALL_CLASSES_UP_TO: usize = 30;
/// The lightest and darkest colours (matplotlib's "Blues" ends).
const LIGHT: (f64, f64, f64) = (247.0, 251.0, 255.0);
const DARK: (f64, f64, f64) = (8.0, 48.0, 107.0);

/// Registers the font once; an error says the font could not be read.
fn font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the font carried in the binary cannot be read".to_string())
        })
        .clone()
}

/// The colour of a share (0..=1) of the true class.
fn shade(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(
        mix(LIGHT.0, DARK.0),
        mix(LIGHT.1, DARK.1),
        mix(LIGHT.2, DARK.2),
    )
}

pub fn write(path: &Path, report: &DeploymentReport) -> Result<(), Error> {
    let png = render(report).map_err(|e| Error::write(path, e))?;
    std::fs::write(path, png).map_err(|e| Error::write(path, e))
}

/// The heatmap as PNG bytes.
pub fn render(report: &DeploymentReport) -> Result<Vec<u8>, String> {
    font()?;
    let matrix = &report.confusion_matrix;
    let all = matrix.len();
    let shown: Vec<usize> = if all <= ALL_CLASSES_UP_TO {
        (0..all).collect()
    } else {
        (0..all)
            .filter(|&c| {
                matrix[c].iter().any(|&n| n > 0)
                    || matrix.iter().any(|row| row.get(c).is_some_and(|&n| n > 0))
            })
            .collect()
    };
    let n = shown.len().max(1) as u32;
    let cell = (MATRIX_SIDE / n).clamp(2, 64);
    let side = cell * n;
    // Names only where a row is tall enough to hold one; counts only where
    // a cell is large enough to read them.
    let label_size = f64::from(cell.min(14)).max(1.0);
    let show_names = cell >= 9;
    let count_size = (f64::from(cell) / 2.6).min(14.0);
    let show_counts = count_size >= 7.0;

    let label_font = (FAMILY, label_size).into_font();
    let names: Vec<String> = shown
        .iter()
        .map(|&i| match report.classes.get(i) {
            Some(name) if name != &i.to_string() => format!("{i} {name}"),
            _ => i.to_string(),
        })
        .collect();
    let widest = if show_names {
        names
            .iter()
            .map(|name| label_font.box_size(name).map(|(w, _)| w).unwrap_or(0))
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    let (left, top) = (widest + 48, 56);
    let (right, bottom) = (96, widest + 48);
    let (width, height) = (left + side + right, top + side + bottom);

    let mut pixels = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        let draw_error =
            |e: DrawingAreaErrorKind<_>| format!("cannot draw the confusion matrix: {e}");
        root.fill(&WHITE).map_err(draw_error)?;
        let (left, top, cell) = (left as i32, top as i32, cell as i32);
        let side = side as i32;

        let mut title = format!(
            "{}: {} items, accuracy {:.4}",
            report.deployment.label(),
            report.succeeded,
            report.accuracy
        );
        if shown.len() < all {
            title += &format!(" (the {} of {all} classes that occur)", shown.len());
        }
        let centred = |size: f64| {
            TextStyle::from((FAMILY, size).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        root.draw(&Text::new(title, (left + side / 2, 20), centred(16.0)))
            .map_err(draw_error)?;

        for (i, &true_class) in shown.iter().enumerate() {
            for (j, &predicted) in shown.iter().enumerate() {
                let count = matrix[true_class].get(predicted).copied().unwrap_or(0);
                let share = report
                    .confusion_matrix_normalized
                    .get(true_class)
                    .and_then(|r| r.get(predicted))
                    .copied()
                    .unwrap_or(0.0);
                let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    shade(share).filled(),
                ))
                .map_err(draw_error)?;
                if show_counts && count > 0 {
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        count.to_string(),
                        (x + cell / 2, y + cell / 2),
                        centred(count_size).color(&ink),
                    ))
                    .map_err(draw_error)?;
                }
            }
        }
        root.draw(&Rectangle::new(
            [(left, top), (left + side, top + side)],
            RGBColor(160, 160, 160).stroke_width(1),
        ))
        .map_err(draw_error)?;

        if show_names {
            let row_style = TextStyle::from(label_font.clone())
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            // Column names read downwards, their start under the column.
            let column_style =
                TextStyle::from(label_font.clone().transform(FontTransform::Rotate90))
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Left, VPos::Center));
            for (i, name) in names.iter().enumerate() {
                let middle = i as i32 * cell + cell / 2;
                root.draw(&Text::new(
                    name.clone(),
                    (left - 6, top + middle),
                    row_style.clone(),
                ))
                .map_err(draw_error)?;
                root.draw(&Text::new(
                    name.clone(),
                    (left + middle, top + side + 6),
                    column_style.clone(),
                ))
                .map_err(draw_error)?;
            }
        }
        let axis = centred(14.0);
        root.draw(&Text::new(
            "predicted class",
            (left + side / 2, top + side + bottom as i32 - 18),
            axis.clone(),
        ))
        .map_err(draw_error)?;
        root.draw(&Text::new(
            "true class",
            (14, top + side / 2),
            axis.transform(FontTransform::Rotate270),
        ))
        .map_err(draw_error)?;

        // The colour scale: the share of the true class, 0 to 100%.
        let (bar_x, bar_w) = (left + side + 24, 16);
        for step in 0..side {
            let share = 1.0 - f64::from(step) / f64::from(side.max(1));
            root.draw(&Rectangle::new(
                [(bar_x, top + step), (bar_x + bar_w, top + step + 1)],
                shade(share).filled(),
            ))
            .map_err(draw_error)?;
        }
        let scale_style = TextStyle::from((FAMILY, 12.0).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (text, y) in [("100%", top), ("0%", top + side)] {
            root.draw(&Text::new(
                text,
                (bar_x + bar_w + 4, y),
                scale_style.clone(),
            ))
            .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot encode the PNG: {e}"))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_run_from_light_to_dark() {
        assert_eq!(shade(0.0), RGBColor(247, 251, 255));
        assert_eq!(shade(1.0), RGBColor(8, 48, 107));
        assert_eq!(shade(7.0), shade(1.0));
    }
}
