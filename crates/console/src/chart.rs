//! Charts as inline SVG, drawn on the server: no script, no network, and
//! the CSP stays strict (presentation attributes, classes from app.css).

use maud::{html, Markup};

const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 58.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

fn plot_height() -> f64 {
    HEIGHT - BOTTOM - TOP
}

/// A round upper bound for an axis (1, 2, 2.5 or 5 times a power of ten).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * power)
}

/// One bar per day (labels are `YYYY-MM-DD`), each with a tooltip.
pub fn daily_bars(days: &[String], values: &[f64], format: impl Fn(f64) -> String) -> Markup {
    let top = nice_max(values.iter().cloned().fold(0.0, f64::max));
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    // Label about 5 days whatever the range.
    let every = days.len().div_ceil(5).max(1);
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" {
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" { (format(top)) }
            text x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
            @for (i, (day, value)) in days.iter().zip(values).enumerate() {
                @let h = value / top * plot_height();
                @let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
                rect.bar x=(format!("{x:.1}")) y=(format!("{:.1}", HEIGHT - BOTTOM - h)) width=(format!("{bar:.1}")) height=(format!("{h:.1}")) {
                    title { (day) ": " (format(*value)) }
                }
                @if i % every == 0 {
                    text x=(format!("{:.1}", x + bar / 2.0)) y=(HEIGHT - 6.0) text-anchor="middle" { (day.get(5..).unwrap_or(day)) }
                }
            }
        }
    }
}

/// A score over time: points (unix ms, score), with the policy's
/// thresholds as dashed lines.
pub fn score_line(points: &[(u64, f32)], thresholds: &[(&str, Option<f32>)]) -> Markup {
    let max_score = points
        .iter()
        .map(|p| p.1)
        .chain(thresholds.iter().filter_map(|t| t.1))
        .fold(0.0f32, f32::max) as f64;
    let top = nice_max(max_score * 1.1);
    let (first, last) = match (points.first(), points.last()) {
        (Some(f), Some(l)) => (f.0, l.0.max(f.0 + 1)),
        _ => (0, 1),
    };
    let x_of = |t: u64| LEFT + (t - first) as f64 / (last - first) as f64 * (WIDTH - LEFT - 8.0);
    let y_of = |s: f64| HEIGHT - BOTTOM - s / top * plot_height();
    let path: String = points
        .iter()
        .enumerate()
        .map(|(i, (t, s))| {
            let verb = if i == 0 { 'M' } else { 'L' };
            format!("{verb}{:.1},{:.1} ", x_of(*t), y_of(*s as f64))
        })
        .collect();
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" {
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
            text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" { (format!("{top:.1}")) }
            text x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
            @for (name, value) in thresholds.iter().filter_map(|(n, v)| Some((n, (*v)?))) {
                @let y = y_of(value as f64);
                line.limit x1=(LEFT) y1=(format!("{y:.1}")) x2=(WIDTH) y2=(format!("{y:.1}")) {}
                text x=(LEFT + 4.0) y=(format!("{:.1}", y - 3.0)) { (name) " at " (value) }
            }
            @if !points.is_empty() {
                path.line d=(path) {}
                @for (t, s) in points {
                    circle.dot cx=(format!("{:.1}", x_of(*t))) cy=(format!("{:.1}", y_of(*s as f64))) r="2.5" {
                        title { (format!("{s:.2}")) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(2.2), 2.5);
        assert_eq!(nice_max(0.3), 0.5);
    }

    #[test]
    fn a_bar_per_day_with_its_value() {
        let days = vec!["2026-11-01".to_string(), "2026-11-02".to_string()];
        let svg = daily_bars(&days, &[1.0, 3.0], |v| format!("{v}")).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("2026-11-02: 3"));
    }
}
