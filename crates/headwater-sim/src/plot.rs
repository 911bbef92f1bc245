//! Plots of a run, as SVG and PNG: the load each policy offered and the tier accepted
//! (as shares of the tier's capacity), and each policy's backlog, over time.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::Series;
use crate::scenario::Scenario;

/// Where a TrueType font is looked for, after `HEADWATER_SIM_FONT`.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Why a plot was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// No font to write the labels with.
    #[error(
        "no TrueType font found for the plots' labels: set HEADWATER_SIM_FONT to a .ttf file (looked in {})",
        FONTS.join(", ")
    )]
    NoFont,
    /// The folder could not be made.
    #[error("cannot make the plot folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Drawing or writing a file failed.
    #[error("cannot write the plot {path}: {reason}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// What plotters said.
        reason: String,
    },
}

/// One policy's line.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The policy's name.
    pub name: &'a str,
    /// Its series.
    pub series: &'a Series,
}

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        let candidates = std::env::var("HEADWATER_SIM_FONT")
            .ok()
            .into_iter()
            .chain(FONTS.iter().map(|path| (*path).to_owned()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // Registered fonts live as long as the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    });
    if registered {
        Ok(())
    } else {
        Err(PlotError::NoFont)
    }
}

/// Averages of `values` over 10 s, as (minutes, value ÷ `scale`) points.
fn averaged(values: &[u64], scale: f64) -> Vec<(f64, f64)> {
    values
        .chunks(10)
        .enumerate()
        .map(|(index, chunk)| {
            let mean = chunk.iter().sum::<u64>() as f64 / chunk.len() as f64;
            ((index * 10) as f64 / 60.0, mean / scale)
        })
        .collect()
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    scenario: &Scenario,
    lines: &[Line<'_>],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let capacity = scenario.capacity();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(360);
    let minutes = lines
        .iter()
        .map(|line| line.series.pending.len())
        .max()
        .unwrap_or(1) as f64
        / 60.0;
    let offered: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|line| averaged(&line.series.offered_events, capacity))
        .collect();
    let accepted: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|line| averaged(&line.series.accepted_events, capacity))
        .collect();
    let top = offered
        .iter()
        .flatten()
        .map(|(_, y)| *y)
        .fold(1.5_f64, f64::max)
        .min(20.0);
    let mut load = ChartBuilder::on(&upper)
        .caption(
            format!(
                "{}: {} clients; load offered (solid) and accepted (dotted) ÷ capacity",
                scenario.name, scenario.clients
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..minutes.max(1.0), 0.0..top * 1.05)?;
    load.configure_mesh()
        .x_desc("minutes")
        .y_desc("events/s ÷ C")
        .draw()?;
    if let Some(line) = lines.first() {
        let capacity_line: Vec<(f64, f64)> = line
            .series
            .capacity
            .iter()
            .enumerate()
            .map(|(second, c)| (second as f64 / 60.0, c / capacity))
            .collect();
        load.draw_series(LineSeries::new(capacity_line, BLACK.stroke_width(1)))?
            .label("capacity")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    for (index, line) in lines.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        load.draw_series(LineSeries::new(
            offered[index].clone(),
            color.stroke_width(2),
        ))?
        .label(line.name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        load.draw_series(
            accepted[index]
                .iter()
                .map(|point| Circle::new(*point, 1, color.filled())),
        )?;
    }
    load.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let backlog_top = lines
        .iter()
        .flat_map(|line| line.series.pending.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut backlog = ChartBuilder::on(&lower)
        .caption("the fleet's backlog (changes waiting)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes.max(1.0), 0.0..backlog_top * 1.05)?;
    backlog
        .configure_mesh()
        .x_desc("minutes")
        .y_desc("changes")
        .draw()?;
    for (index, line) in lines.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points = line
            .series
            .pending
            .iter()
            .enumerate()
            .map(|(second, pending)| (second as f64 / 60.0, *pending as f64));
        backlog
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(line.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    backlog
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Writes `<folder>/<scenario>-<clients>.svg` and `.png`; returns their paths.
pub fn write(
    folder: &Path,
    scenario: &Scenario,
    lines: &[Line<'_>],
) -> Result<Vec<PathBuf>, PlotError> {
    register_font()?;
    std::fs::create_dir_all(folder).map_err(|source| PlotError::Folder {
        path: folder.to_owned(),
        source,
    })?;
    let stem = format!("{}-{}", scenario.name, scenario.clients);
    let size = (1100, 760);
    let svg = folder.join(format!("{stem}.svg"));
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        scenario,
        lines,
    )
    .map_err(|error| PlotError::Draw {
        path: svg.clone(),
        reason: error.to_string(),
    })?;
    let png = folder.join(format!("{stem}.png"));
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        scenario,
        lines,
    )
    .map_err(|error| PlotError::Draw {
        path: png.clone(),
        reason: error.to_string(),
    })?;
    Ok(vec![svg, png])
}
