//! The HTML report: one self-contained page (no scripts, no external files) with the key
//! figures, tables by priority and sub-bureau, and inline SVG charts drawn with `plotters`' SVG
//! backend (its text is SVG `<text>`, so no font files are needed).

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::report::{IncidentRecord, Report, Verdict};
use crate::stats::GroupStats;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 320;

/// The report as an HTML page.
pub fn render(report: &Report, incidents: &[IncidentRecord]) -> String {
    let mut out = String::new();
    let s = &report.scenario;
    let (verdict, colour) = match report.verdict {
        Verdict::Pass => ("PASS".to_string(), "#1a7f37"),
        Verdict::Fail => (
            format!("FAIL: {}", report.verdict_reasons.join("; ")),
            "#cf222e",
        ),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>loadtest {name}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:60em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}\
         .verdict{{font-size:1.4em;font-weight:bold;color:{colour}}}\
         figure{{margin:1.5em 0}} figcaption{{color:#555}}\
         </style></head><body>\n<h1>Load test: {name}</h1>\n\
         <p class=\"verdict\">{verdict}</p>\n",
        name = escape(&s.name),
        verdict = escape(&verdict),
    );
    let i = &report.incidents;
    let l = &report.system_latency_ms;
    let rows = [
        (
            "map, seed, clock".to_string(),
            format!("{} / {} / x{}", s.map, s.seed, s.clock_scale),
        ),
        (
            "calls".to_string(),
            format!(
                "{} planned, {} sent, {} accepted, {} failed at {} per simulated hour",
                report.calls.planned,
                report.calls.sent,
                report.calls.accepted,
                report.calls.failed,
                s.peak_per_hour
            ),
        ),
        (
            "incidents".to_string(),
            format!(
                "{} received, {} dispatched, {} on scene, {} cleared, {} open at end, {} lost",
                i.received, i.dispatched, i.on_scene, i.cleared, i.open_at_end, i.lost
            ),
        ),
        (
            format!("within {} s", report.target_s),
            format!(
                "{:.1}% (target {:.1}%)",
                report.within_target_share * 100.0,
                report.target_share * 100.0
            ),
        ),
        (
            "system latency".to_string(),
            format!(
                "p50 {} ms, p99 {} ms over {} orders (real time, call sent to order on terminal)",
                opt(l.p50, 2),
                opt(l.p99, 2),
                l.count
            ),
        ),
        (
            "officers, cases".to_string(),
            format!(
                "{} on duty of {}; {} cases opened",
                report.officers_on_duty, report.officers_rostered, report.cases_opened
            ),
        ),
        (
            "wall time".to_string(),
            format!("{:.1} s", report.wall_time_s),
        ),
    ];
    let takeover = report
        .takeover
        .as_ref()
        .map(|t| ("takeover".to_string(), t.summary()));
    let rows = rows.into_iter().chain(takeover);
    out.push_str("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td style=\"text-align:left\">{}</td></tr>",
            escape(&k),
            escape(&v)
        );
    }
    out.push_str("</table>\n<h2>Response time by priority (seconds of cluster time)</h2>\n");
    group_table(
        &mut out,
        "priority",
        report
            .response_time_s
            .by_priority
            .iter()
            .map(|(k, g)| (k.clone(), g)),
    );
    out.push_str("<h2>Response time by sub-bureau</h2>\n");
    group_table(
        &mut out,
        "sub-bureau",
        report
            .response_time_s
            .by_sub_bureau
            .iter()
            .map(|(k, g)| (format!("{} ({k})", g.name), &g.stats)),
    );
    let times: Vec<(u8, f64)> = incidents
        .iter()
        .filter_map(|i| Some((i.priority.map_or(0, |p| p.level()), i.response_s()?)))
        .collect();
    figure(
        &mut out,
        histogram_svg(&times, report.target_s),
        &format!(
            "Response times of the {} incidents reached, 30 s bins; the red line is the {} s target.",
            times.len(),
            report.target_s
        ),
    );
    figure(
        &mut out,
        cdf_svg(&times, report.target_s),
        "Share of incidents reached within x seconds, by priority.",
    );
    figure(
        &mut out,
        timeline_svg(report),
        "Open incidents and busy officers over the run (cluster time; the drain follows the calls).",
    );
    out.push_str("</body></html>\n");
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

/// `text` with the HTML special characters escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn group_table<'a>(
    out: &mut String,
    what: &str,
    groups: impl Iterator<Item = (String, &'a GroupStats)>,
) {
    let _ = writeln!(
        out,
        "<table><tr><th>{what}</th><th>received</th><th>on scene</th><th>within target</th>\
         <th>p50</th><th>p90</th><th>p99</th><th>mean</th></tr>"
    );
    for (name, g) in groups {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            g.received,
            g.on_scene,
            g.within_target_share * 100.0,
            opt(g.p50, 0),
            opt(g.p90, 0),
            opt(g.p99, 0),
            opt(g.mean, 1)
        );
    }
    out.push_str("</table>\n");
}

fn figure(out: &mut String, svg: Result<String, String>, caption: &str) {
    let body = svg.unwrap_or_else(|e| format!("<p>chart could not be drawn: {}</p>", escape(&e)));
    let _ = writeln!(
        out,
        "<figure>{body}<figcaption>{}</figcaption></figure>",
        escape(caption)
    );
}

/// Upper end of the response-time axis: past the slowest incident and twice the target.
fn x_max(times: &[(u8, f64)], target_s: f64) -> f64 {
    let slowest = times.iter().map(|t| t.1).fold(0.0, f64::max);
    (slowest.max(target_s * 2.0) / 60.0).ceil() * 60.0
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One chart of [`WIDTH`] x [`HEIGHT`] pixels on white, drawn by `draw`, as an SVG string.
fn svg_chart(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn histogram_svg(times: &[(u8, f64)], target_s: f64) -> Result<String, String> {
    const BIN_S: f64 = 30.0;
    let max = x_max(times, target_s);
    let bins = (max / BIN_S) as usize;
    let mut counts = vec![0u32; bins.max(1)];
    for (_, t) in times {
        let b = ((t / BIN_S) as usize).min(counts.len() - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    svg_chart(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max, 0u32..top + top / 10 + 1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("response time, s")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("incidents")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(b, c)| {
                let x0 = b as f64 * BIN_S;
                Rectangle::new([(x0, 0), (x0 + BIN_S, *c)], BLUE.mix(0.5).filled())
            }))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(target_s, 0), (target_s, top + top / 10 + 1)],
                RED.stroke_width(2),
            ))
            .map_err(err)?;
        Ok(())
    })
}

fn cdf_svg(times: &[(u8, f64)], target_s: f64) -> Result<String, String> {
    let max = x_max(times, target_s);
    svg_chart(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("response time, s")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("share reached")
            .draw()
            .map_err(err)?;
        let colours = [RED, MAGENTA, BLUE, GREEN];
        for level in 1..=4u8 {
            let mut t: Vec<f64> = times
                .iter()
                .filter(|(p, _)| *p == level)
                .map(|x| x.1)
                .collect();
            if t.is_empty() {
                continue;
            }
            t.sort_by(f64::total_cmp);
            let n = t.len() as f64;
            let colour = colours[usize::from(level - 1)];
            chart
                .draw_series(LineSeries::new(
                    t.iter().enumerate().map(|(k, x)| (*x, (k + 1) as f64 / n)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("P{level}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
        }
        chart
            .draw_series(LineSeries::new(
                [(target_s, 0.0), (target_s, 1.0)],
                BLACK.mix(0.4),
            ))
            .map_err(err)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

fn timeline_svg(report: &Report) -> Result<String, String> {
    let points = &report.timeline;
    let t_max = points.iter().map(|p| p.t_s / 60.0).fold(1.0, f64::max);
    let y_max = points
        .iter()
        .map(|p| p.open.max(p.busy_officers))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    svg_chart(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max * 1.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("cluster time, min")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("count")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.t_s / 60.0, p.open as f64)),
                RED.stroke_width(2),
            ))
            .map_err(err)?
            .label("open incidents")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .map(|p| (p.t_s / 60.0, p.busy_officers as f64)),
                BLUE.stroke_width(2),
            ))
            .map_err(err)?
            .label("busy officers")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn charts_are_svg_with_text_labels() {
        let times = vec![(1, 60.0), (1, 120.0), (2, 250.0), (3, 400.0), (4, 700.0)];
        let h = histogram_svg(&times, 300.0).expect("histogram");
        assert!(h.starts_with("<svg") && h.contains("response time, s"));
        // 700 s is the slowest: the axis runs to 720 s (ceil to the minute of max(700, 600)).
        assert_eq!(x_max(&times, 300.0), 720.0);
        let c = cdf_svg(&times, 300.0).expect("cdf");
        assert!(c.contains("P1") && c.contains("P4"));
    }
}
