//! The run as a Gantt chart: the report view's timeline drawn as a self-contained SVG for the
//! HTML report, one row per step with a bar for its forward run and one for its compensation.
//! A phase that never started has no bar.

use std::fmt::Write;

use super::escape::escape_html;
use super::view::ReportView;

const LABEL_WIDTH: f64 = 210.0;
const CHART_WIDTH: f64 = 720.0;
const WIDTH: f64 = LABEL_WIDTH + CHART_WIDTH + 40.0;
const TOP: f64 = 34.0;
const ROW: f64 = 30.0;
const BAR: f64 = 18.0;
const LEGEND: f64 = 44.0;

/// A tick interval that puts at most eight ticks on an axis of `span` milliseconds.
fn tick_interval(span: u64) -> u64 {
    const NICE: [u64; 20] = [
        10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
        300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
    ];
    NICE.into_iter()
        .find(|interval| span / interval <= 8)
        .unwrap_or_else(|| span.div_ceil(8 * 3_600_000) * 3_600_000)
}

fn tick_label(milliseconds: u64, interval: u64) -> String {
    let value = milliseconds as f64 / 1000.0;
    match interval {
        0..100 => format!("{value:.2}s"),
        100..1000 => format!("{value:.1}s"),
        _ => format!("{value:.0}s"),
    }
}

/// Shortens a row label that would run into the chart.
fn label(text: &str) -> String {
    const MOST: usize = 26;
    if text.chars().count() <= MOST {
        text.to_string()
    } else {
        let kept: String = text.chars().take(MOST - 1).collect();
        format!("{kept}…")
    }
}

/// The SVG Gantt chart of a run: one row per step, a bar for its forward run and one in a
/// second colour for its compensation, seconds from the run start on the axis, and a legend.
pub(super) fn gantt_svg(view: &ReportView) -> String {
    let rows = view.chart.len().max(1);
    let chart_bottom = TOP + rows as f64 * ROW;
    let height = chart_bottom + LEGEND;
    let span = view.span_ms as f64;
    let x_of = |milliseconds: u64| LABEL_WIDTH + milliseconds as f64 / span * CHART_WIDTH;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg class="gantt" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="system-ui, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        "<title>timeline of run {}: forward steps and compensations</title>",
        escape_html(view.run_id)
    );
    for index in 0..rows {
        if index % 2 == 1 {
            let _ = writeln!(
                svg,
                r#"<rect class="row" x="0" y="{}" width="{WIDTH}" height="{ROW}"/>"#,
                TOP + index as f64 * ROW
            );
        }
    }
    let interval = tick_interval(view.span_ms);
    let mut tick = 0;
    while tick <= view.span_ms {
        let x = x_of(tick);
        let _ = writeln!(
            svg,
            r#"<line class="grid" x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{chart_bottom}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            TOP - 6.0,
            TOP - 12.0,
            tick_label(tick, interval)
        );
        tick += interval;
    }
    if view.chart.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{LABEL_WIDTH}" y="{}">no step started</text>"#,
            TOP + ROW / 2.0 + 4.0
        );
    }
    for (index, step) in view.chart.iter().enumerate() {
        let top = TOP + index as f64 * ROW;
        let _ = writeln!(
            svg,
            r#"<text class="label" x="8" y="{:.1}">{}<title>{}</title></text>"#,
            top + ROW / 2.0 + 4.0,
            escape_html(&label(step.id)),
            escape_html(&step.title)
        );
        if let Some(status) = &step.not_started {
            let _ = writeln!(
                svg,
                r#"<text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
                LABEL_WIDTH + 6.0,
                top + ROW / 2.0 + 4.0,
                escape_html(status)
            );
        }
        for bar in &step.bars {
            let phase = bar.phase;
            let x = x_of(bar.offset_ms);
            // A phase still running when the journal ends reaches the edge of the chart.
            let end = bar
                .duration_ms
                .map_or(LABEL_WIDTH + CHART_WIDTH, |duration| {
                    x_of(bar.offset_ms + duration)
                });
            let mut classes = format!("bar {phase}");
            if bar.went_wrong {
                classes.push_str(" wrong");
            }
            if bar.duration_ms.is_none() {
                classes.push_str(" unfinished");
            }
            let _ = writeln!(
                svg,
                r#"<rect class="{classes}" data-step="{}" data-phase="{phase}" data-status="{}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{BAR}" rx="3"><title>{}</title></rect>"#,
                escape_html(step.id),
                escape_html(bar.status),
                top + (ROW - BAR) / 2.0,
                (end - x).max(2.0),
                escape_html(&bar.tooltip)
            );
        }
    }
    let legend = chart_bottom + 24.0;
    for (index, (class, text)) in [
        ("forward", "forward step"),
        ("compensation", "compensation"),
        ("wrong", "failed, cancelled or blocked"),
        ("unfinished", "still running when the journal ends"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = 8.0 + index as f64 * 230.0;
        let _ = writeln!(
            svg,
            r#"<rect class="key {class}" x="{x}" y="{:.1}" width="22" height="12" rx="3"/><text x="{:.1}" y="{legend:.1}">{text}</text>"#,
            legend - 10.0,
            x + 28.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
