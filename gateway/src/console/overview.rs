//! The overview: the gateway's figures per week (`GET /v1/audit/overview`) as server-rendered
//! SVG charts, each with its table beside it (the table is the accessible form: the chart only
//! repeats it). Counts only; nobody is named.

use super::pages::{at, page, s};
use super::{St, failed, signed_in};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;

/// Colour-blind-safe colours (Okabe–Ito), each with 3:1 contrast against white or more.
const COLOURS: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#8A6D00",
];

#[derive(Deserialize)]
pub(super) struct Weeks {
    #[serde(default)]
    weeks: Option<u32>,
}

/// `GET /overview[?weeks=N]`.
pub(super) async fn overview(State(c): St, headers: HeaderMap, Query(w): Query<Weeks>) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(d) => return d.into_response(),
    };
    let weeks = w.weeks.unwrap_or(12).clamp(1, 104);
    match c
        .get("/v1/audit/overview", &[("weeks", weeks.to_string())])
        .await
    {
        Ok((200, b)) => match serde_json::from_str::<Value>(&b) {
            Ok(v) => page_of(&csrf, weeks, &v).into_response(),
            Err(_) => failed(&csrf, Ok((200, "{\"detail\":\"not JSON\"}".into()))),
        },
        other => failed(&csrf, other),
    }
}

/// A series as the gateway gives it: key and count per week.
struct Series {
    key: String,
    counts: Vec<u64>,
}

fn series(v: &Value) -> Vec<Series> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| Series {
                    // `-`: the requests named no purpose (or were refused before one was read).
                    key: match s(x, "key") {
                        "-" => "(geen)".to_owned(),
                        k => k.to_owned(),
                    },
                    counts: at(x, "counts")
                        .as_array()
                        .map(|c| c.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn page_of(csrf: &str, weeks: u32, v: &Value) -> Markup {
    let labels: Vec<String> = at(v, "weeks")
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let charts = [
        (
            "verstrekkingen-partner",
            "Verstrekkingen per week, per aanvragende partner",
            "disclosures_by_partner",
        ),
        (
            "verstrekkingen-doel",
            "Verstrekkingen per week, per doel",
            "disclosures_by_purpose",
        ),
        (
            "weigeringen-partner",
            "Weigeringen per week, per aanvragende partner",
            "refusals_by_partner",
        ),
        (
            "weigeringen-doel",
            "Weigeringen per week, per doel",
            "refusals_by_purpose",
        ),
        (
            "weigeringen-soort",
            "Weigeringen per week, per soort weigering",
            "refusals_by_type",
        ),
        (
            "onbeschikbaar-product",
            "Deels onbeschikbare antwoorden per week, per product waarvan de bron niet antwoordde",
            "unavailable_by_product",
        ),
    ];
    page(
        "Overzicht",
        Some(csrf),
        html! {
            p class="note" { "Aantallen uit het logboek, per week (een week begint op maandag); geen namen of BSN's. Dit overzicht is zelf een logregel." }
            form method="get" action="/overview" {
                label for="weeks" { "Aantal weken" }
                input id="weeks" name="weeks" type="number" min="1" max="104" value=(weeks);
                button type="submit" { "Tonen" }
            }
            @if at(v, "unavailable_truncated").as_bool() == Some(true) {
                p class="note" { "Van de deels onbeschikbare antwoorden is een deel gelezen: de cijfers per product zijn te laag." }
            }
            @if let Some(n) = at(v, "notifications_overdue").as_u64() {
                p id="notificaties" {
                    strong { (n) } " opgenomen casussen zonder verzonden notificatiebrief na de termijn van het convenant (de Handreiking: drie weken na het besluit van het Regieoverleg)."
                }
            }
            @for (id, title, key) in charts {
                section aria-labelledby=(id) {
                    h2 id=(id) { (title) }
                    @let data = series(at(v, key));
                    @if data.is_empty() {
                        p { "Geen in deze periode." }
                    } @else {
                        div class="chart" { (chart(id, title, &labels, &data)) }
                        (table(title, &labels, &data))
                    }
                }
            }
        },
    )
}

/// A stacked bar per week, a legend beside; its text is in the table that follows it.
fn chart(id: &str, title: &str, labels: &[String], data: &[Series]) -> Markup {
    let (w, h, left, bottom, top) = (640.0_f64, 220.0_f64, 40.0_f64, 30.0_f64, 10.0_f64);
    let n = labels.len().max(1);
    let totals: Vec<u64> = (0..n)
        .map(|i| {
            data.iter()
                .map(|s| s.counts.get(i).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_h = h - bottom - top;
    let slot = (w - left) / n as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: u64| top + plot_h - plot_h * (v as f64) / (max as f64);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {}\" width=\"{w}\" height=\"{}\" role=\"img\" aria-labelledby=\"{id}-svg-title\"><title id=\"{id}-svg-title\">{}</title>",
        h + 20.0 * data.len().div_ceil(3) as f64,
        h + 20.0 * data.len().div_ceil(3) as f64,
        maud::html! { (title) }.into_string()
    );
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#767676\"/><line x1=\"{left}\" y1=\"{0}\" x2=\"{w}\" y2=\"{0}\" stroke=\"#767676\"/>",
        top + plot_h
    ));
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{max}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        left - 4.0,
        top + 10.0,
        left - 4.0,
        top + plot_h
    ));
    for i in 0..n {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0u64;
        for (k, s) in data.iter().enumerate() {
            let v = s.counts.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let colour = COLOURS.get(k % COLOURS.len()).copied().unwrap_or("#000000");
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                y(base + v),
                y(base) - y(base + v)
            ));
            base += v;
        }
        // Every other label where there are many weeks.
        if n <= 13 || i % 2 == 0 {
            let label = labels.get(i).and_then(|l| l.get(5..)).unwrap_or("");
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
                x + bar / 2.0,
                top + plot_h + 16.0
            ));
        }
    }
    for (k, s) in data.iter().enumerate() {
        let colour = COLOURS.get(k % COLOURS.len()).copied().unwrap_or("#000000");
        let (lx, ly) = (
            left + 200.0 * (k % 3) as f64,
            h + 20.0 * (k / 3) as f64 - 4.0,
        );
        svg.push_str(&format!(
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{ly}\" font-size=\"12\">{}</text>",
            ly - 10.0,
            lx + 16.0,
            maud::html! { (s.key) }.into_string()
        ));
    }
    svg.push_str("</svg>");
    PreEscaped(svg)
}

fn table(title: &str, labels: &[String], data: &[Series]) -> Markup {
    html! {
        div class="scroll" tabindex="0" role="region" aria-label={"Tabel: " (title)} {
            table {
                caption { "Tabel: " (title) " (kolommen: de maandag van elke week)" }
                thead {
                    tr {
                        th scope="col" { "Wat" }
                        @for l in labels { th scope="col" { abbr title={"week van " (l)} { (l.get(5..).unwrap_or(l)) } } }
                        th scope="col" { "Totaal" }
                    }
                }
                tbody {
                    @for s in data {
                        tr {
                            th scope="row" { (s.key) }
                            @for i in 0..labels.len() { td { (s.counts.get(i).copied().unwrap_or(0)) } }
                            td { (s.counts.iter().sum::<u64>()) }
                        }
                    }
                }
            }
        }
    }
}
