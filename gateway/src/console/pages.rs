//! The console's pages: server-rendered HTML (maud escapes every value), Dutch text, no
//! script, one embedded stylesheet; labels, landmarks and table headers for screen readers.

use super::{Proven, SearchForm};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// The one stylesheet (high contrast, visible focus).
pub const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fff;line-height:1.5}\
header,main,footer{padding:0 1.5rem}header{background:#01689b;color:#fff;display:flex;gap:1.5rem;align-items:center}\
header a{color:#fff}a{color:#01689b}a:focus,button:focus,input:focus,select:focus{outline:3px solid #ffb612;outline-offset:2px}\
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #767676;padding:.25rem .5rem;text-align:left}\
label{display:block;margin-top:.5rem}input,select{font-size:1rem;padding:.25rem}button{font-size:1rem;padding:.35rem .9rem;margin-top:.75rem}\
.scroll{overflow-x:auto}.chart svg{max-width:100%;height:auto}pre.source{background:#f3f3f3;padding:.5rem;overflow-x:auto;max-height:30rem}\
textarea{font-family:monospace;font-size:.9rem;width:100%}.ok{color:#0b6b0b;font-weight:bold}.bad{color:#b00020;font-weight:bold}.note{background:#f3f3f3;padding:.5rem}\
@media print{header,nav,form{display:none}}";

/// A member of a JSON object, `null` when absent.
pub(super) fn at<'a>(v: &'a serde_json::Value, k: &str) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    v.get(k).unwrap_or(&NULL)
}

pub(super) fn page(title: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="nl" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — iPGA-R console" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    p { strong { "iPGA-R console" } }
                    @if let Some(csrf) = csrf {
                        nav aria-label="Hoofdmenu" {
                            a href="/" { "Zoeken in het logboek" }
                            " · "
                            a href="/report" { "Inzageverzoek (AVG art. 15)" }
                            " · "
                            a href="/overview" { "Overzicht" }
                            " · "
                            a href="/log" { "Staat van het logboek" }
                            " · "
                            a href="/policy" { "Convenantbeheer" }
                        }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Uitloggen" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
                footer { p { small { "Alle zoekopdrachten worden gelogd in het logboek van de gateway." } } }
            }
        }
    }
}

/// No (live) session.
pub fn login_needed() -> Markup {
    page(
        "Inloggen",
        None,
        html! { p { "U bent niet (meer) ingelogd. Open de eenmalige inloglink die de console bij het starten toonde, of start de console opnieuw voor een nieuwe link." } },
    )
}

/// A login link that is wrong or used.
pub fn login_used() -> Markup {
    page(
        "Inloglink ongeldig",
        None,
        html! { p { "Deze inloglink is ongeldig of al gebruikt. Een link werkt één keer; start de console opnieuw voor een nieuwe." } },
    )
}

/// Logged out.
pub fn logged_out() -> Markup {
    page("Uitgelogd", None, html! { p { "U bent uitgelogd." } })
}

/// A form posted without the right CSRF token.
pub fn csrf_refused() -> Markup {
    page(
        "Geweigerd",
        None,
        html! { p { "Dit formulier kwam niet van deze console (het CSRF-token ontbreekt of klopt niet). Er is niets gedaan." } },
    )
}

/// Nothing at that sequence number for this officer.
pub fn not_found(csrf: &str) -> Markup {
    page(
        "Niet gevonden",
        Some(csrf),
        html! { p { "Deze logregel bestaat niet, is door de bewaartermijn verwijderd, of valt buiten wat u mag zien." } },
    )
}

/// The gateway refused or failed: its problem's title, detail and errors.
pub fn gateway_refused(csrf: &str, status: u16, p: &super::Problem) -> Markup {
    page(
        "De gateway weigerde",
        Some(csrf),
        html! {
            div role="alert" {
                p { "De gateway antwoordde " (status) ": " strong { (p.title) } }
                p id="detail" { (p.detail) }
                @if !p.errors.is_empty() { ul { @for e in &p.errors { li { code { (e) } } } } }
            }
        },
    )
}

fn field(label: &str, name: &str, value: &str, hint: Option<&str>) -> Markup {
    html! {
        label for=(name) { (label) }
        @if let Some(h) = hint { small id={(name) "-hint"} { (h) } br; }
        input id=(name) name=(name) value=(value) autocomplete="off" aria-describedby=[hint.map(|_| format!("{name}-hint"))];
    }
}

/// The search form.
pub fn search_form(csrf: &str, f: &SearchForm) -> Markup {
    page(
        "Zoeken in het logboek",
        Some(csrf),
        html! {
            p class="note" { "Uw zoekopdrachten worden gelogd: het logboek toont wie naar wie zocht." }
            (form(csrf, f, false))
        },
    )
}

fn form(csrf: &str, f: &SearchForm, by_subject: bool) -> Markup {
    html! {
        form method="post" action="/search" {
            input type="hidden" name="csrf" value=(csrf);
            @if by_subject {
                input type="hidden" name="same_subject" value="1";
                (field("BSN", "bsn", "", Some("Leeg laten: hetzelfde BSN als bij de vorige zoekopdracht (ook voor de CSV). Het BSN wordt nergens teruggetoond of gelogd.")))
            } @else {
                (field("BSN", "bsn", &f.bsn, Some("De gateway zet het om in een pseudoniem; het BSN wordt nergens teruggetoond of gelogd.")))
            }
            (field("Partner (aanvrager)", "partner", &f.partner, None))
            (field("Medewerker (staff id)", "staff_id", &f.staff_id, None))
            (field("Doel", "purpose", &f.purpose, None))
            (field("Casus", "case", &f.case, None))
            (field("Product (bijvoorbeeld ggd.screening)", "product", &f.product, None))
            label for="outcome" { "Uitkomst" }
            select id="outcome" name="outcome" {
                @for (v, t) in [("", "alle"), ("answered", "beantwoord"), ("partly-unavailable", "deels onbeschikbaar"), ("refused", "geweigerd")] {
                    option value=(v) selected[f.outcome == v] { (t) }
                }
            }
            (field("Soort (disclosure, check, case-read, audit-query voor wie naar wie zocht, …)", "kind", &f.kind, None))
            label for="from" { "Vanaf (datum)" }
            input id="from" name="from" type="date" value=(f.from);
            label for="to" { "Tot (datum, niet inbegrepen)" }
            input id="to" name="to" type="date" value=(f.to);
            br;
            button type="submit" { "Zoeken" }
            " "
            button type="submit" formaction="/search.csv" { "Download als CSV" }
        }
    }
}

/// The hidden fields that repeat a search (without its BSN) for its next page.
fn repeat(csrf: &str, f: &SearchForm, by_subject: bool, after: i64) -> Markup {
    html! {
        form method="post" action="/search" {
            input type="hidden" name="csrf" value=(csrf);
            @if by_subject { input type="hidden" name="same_subject" value="1"; }
            @for (k, v) in [("partner", &f.partner), ("staff_id", &f.staff_id), ("purpose", &f.purpose), ("case", &f.case), ("product", &f.product), ("outcome", &f.outcome), ("kind", &f.kind), ("from", &f.from), ("to", &f.to)] {
                @if !v.is_empty() { input type="hidden" name=(k) value=(v); }
            }
            input type="hidden" name="after" value=(after);
            button type="submit" { "Volgende pagina" }
        }
    }
}

pub(super) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Search results: a page of up to 200 entries, and a button for the next.
pub fn results(
    csrf: &str,
    f: &SearchForm,
    by_subject: bool,
    items: &[Value],
    next: Option<i64>,
) -> Markup {
    page(
        "Zoekresultaat",
        Some(csrf),
        html! {
            p class="note" { "Uw zoekopdrachten worden gelogd." }
            @if by_subject { p { "Gezocht op een BSN (als pseudoniem; het BSN wordt niet teruggetoond)." } }
            (form(csrf, &f.without_bsn(), by_subject))
            p { (items.len()) " logregels" @if !f.after.is_empty() { " na regel " (f.after) } }
            @if !items.is_empty() {
                table {
                    caption { "Logregels, oudste eerst" }
                    thead { tr { th scope="col" { "Nr." } th scope="col" { "Tijd" } th scope="col" { "Soort" } th scope="col" { "Aanvrager" } th scope="col" { "Doel" } th scope="col" { "Uitkomst" } th scope="col" { "Weigering" } } }
                    tbody {
                        @for i in items {
                            tr {
                                td { a href={"/entry/" (at(i, "seq"))} { (at(i, "seq")) } }
                                td { (s(i, "at")) }
                                td { (s(i, "kind")) }
                                td { (s(i, "partner")) " " (s(i, "staff_id")) }
                                td { (s(i, "purpose_name")) }
                                td { (s(i, "outcome")) }
                                td { (s(i, "problem")) }
                            }
                        }
                    }
                }
            }
            @if let Some(after) = next { (repeat(csrf, f, by_subject, after)) }
        },
    )
}

fn fields(list: &Value) -> String {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!(
                        "{} ({})",
                        p.get(0).and_then(Value::as_str).unwrap_or(""),
                        p.get(1).and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// One entry: what went how to whom, the decision's inputs, and whether its proof holds.
pub fn entry(csrf: &str, item: &Value, proven: &Proven) -> Markup {
    page(
        &format!("Logregel {}", at(item, "seq")),
        Some(csrf),
        html! {
            @match proven {
                Proven::Verified(size) => p class="ok" { "Bewijs van opname geverifieerd door deze console: de regel zit in het logboek dat het checkpoint van grootte " (size) " vastlegt (ondertekend met de logsleutel)." },
                Proven::Partial(size) => p class="ok" { "Deze regel is van een andere partner; u ziet alleen wat uw eigen organisatie betreft. Geverifieerd door deze console: de regel zit in het logboek dat het checkpoint van grootte " (size) " vastlegt; de getoonde delen kunnen niet tegen de regel worden gecontroleerd (alleen de functionaris van de partner zelf of van het programma ziet de hele regel)." },
                Proven::Failed(why) => p class="bad" { "Bewijs van opname NIET geverifieerd: " (why) },
            }
            table {
                caption { "Gegevens van de regel" }
                tbody {
                    @for (k, label) in [("at", "Tijd"), ("kind", "Soort"), ("partner", "Aanvrager (partner)"), ("staff_id", "Medewerker"), ("role", "Rol"), ("processing_activity", "Doel"), ("purpose_name", "Naam van het doel"), ("case_id", "Casus"), ("outcome", "Uitkomst"), ("problem", "Weigering"), ("query", "Zoekopdracht (wie zocht naar wie)")] {
                        tr { th scope="row" { (label) } td { (s(item, k)) } }
                    }
                    tr { th scope="row" { "Convenantversie die besliste" } td { a href={"/policy/version/" (s(item, "policy_version"))} { code { (s(item, "policy_version")) } } " (tekst en goedkeuring)" } }
                }
            }
            @if let Some(d) = item.get("decision").filter(|d| !d.is_null()) {
                h2 { "Invoer van het besluit" }
                p { "Casusversie " (at(d, "case_version")) ", status " (s(d, "case_status")) ", relatie " (s(d, "relation")) " (voldaan door " (s(d, "satisfied_by")) ")" }
            }
            @if let Some(products) = item.get("products").and_then(Value::as_object).filter(|p| !p.is_empty()) {
                h2 { "Per product" }
                table {
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Status" } th scope="col" { "Verstrekt" } th scope="col" { "Bewerkt" } th scope="col" { "Achtergehouden" } th scope="col" { "Weggelaten" } } }
                    tbody {
                        @for (p, v) in products {
                            tr {
                                th scope="row" { (p) }
                                td { (s(v, "status")) }
                                td { (fields(at(v, "disclosed"))) }
                                td { (fields(at(v, "transformed"))) }
                                td { (fields(at(v, "withheld"))) }
                                td { (fields(at(v, "omitted"))) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The art. 15 request form.
pub fn report_form(csrf: &str) -> Markup {
    page(
        "Inzageverzoek (AVG art. 15)",
        Some(csrf),
        html! {
            p class="note" { "Het overzicht is zelf een logregel: het logboek toont wie het opvroeg." }
            form method="post" action="/report" {
                input type="hidden" name="csrf" value=(csrf);
                (field("BSN van de betrokkene", "bsn", "", Some("Het BSN wordt niet teruggetoond; de gateway zoekt op het pseudoniem onder elke sleutel in gebruik.")))
                label for="confidential" {
                    input type="checkbox" id="confidential" name="confidential" value="include";
                    " Ook doelen die het convenant vertrouwelijk houdt voor de betrokkene (niet voor de brief aan de betrokkene)"
                }
                button type="submit" { "Overzicht maken" }
            }
        },
    )
}

/// The art. 15 report as a printable letter.
pub fn letter(
    csrf: &str,
    report: &Value,
    today: time::Date,
    proven: &Result<crate::log::subjects::Proven, String>,
) -> Markup {
    let items = at(report, "disclosures")
        .as_array()
        .cloned()
        .unwrap_or_default();
    let grounds = at(report, "confidential_grounds");
    let left_out: Vec<String> = at(report, "confidential_purposes_left_out")
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|u| match grounds.get(u).and_then(Value::as_str) {
                    Some(g) => format!("{u}, op grond van {g}"),
                    None => u.to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let removed = at(report, "removed_under_retention")
        .as_array()
        .cloned()
        .unwrap_or_default();
    page(
        "Overzicht van verstrekkingen (AVG art. 15)",
        Some(csrf),
        html! {
            p { "Datum: " (today) }
            p { "U vroeg welke gegevens over u de iPGA-R-gateway aan wie heeft verstrekt. Hieronder staat elke verstrekking: wanneer, aan wie, voor welk doel, welke gegevens en op welke grondslag." }
            @if items.is_empty() { p { "Er zijn geen verstrekkingen over u vastgelegd." } }
            @for d in &items {
                section {
                    h2 { (s(d, "at")) " — " (s(d, "to")) }
                    p { "Doel: " (s(d, "purpose_name")) " (" (s(d, "purpose")) "), rol van de ontvanger: " (s(d, "role")) }
                    @if let Some(data) = at(d, "data_received").as_object() {
                        ul {
                            @for (product, fields) in data {
                                li { (product) ": "
                                    (fields.as_array().map(|f| f.iter().map(|x| s(x, "field").to_owned()).collect::<Vec<_>>().join(", ")).unwrap_or_default())
                                }
                            }
                        }
                    }
                    @if let Some(grounds) = at(d, "legal_grounds").as_object() {
                        @for (rule, ground) in grounds {
                            p { small { "Grondslag (" (rule) "): " (ground.as_str().unwrap_or("")) } }
                        }
                    }
                }
            }
            @if !left_out.is_empty() {
                p class="note" { "Niet in dit overzicht: verstrekkingen voor doelen die het convenant vertrouwelijk houdt (" (left_out.join("; ")) ")." }
            }
            @for n in &removed {
                p class="note" { "Verwijderd volgens de bewaartermijn " (s(n, "rule")) " (" (s(n, "ground")) "): vastleggingen van vóór " (s(n, "removed_before")) "; die staan niet meer in dit overzicht." }
            }
            @match proven {
                Ok(p) => p class="proven" { "Volledig bewezen tegen checkpoint " (p.size) ", medeondertekend door " (if p.witnesses.is_empty() { "geen getuige".to_owned() } else { p.witnesses.join(", ") }) ": het logboek bevat tot dat punt " (p.entries) " vastleggingen over u (waarvan " (p.removed) " verwijderd na hun bewaartermijn), en dit overzicht laat er geen weg." },
                Err(why) => p class="note" { "Niet bewezen dat dit overzicht volledig is: " (why) "." },
            }
            @if let Ok(p) = proven {
                @for k in &p.not_covered {
                    p class="note" { "Niet gedekt door dit bewijs: vastleggingen onder pseudoniemsleutel " (k.key) ", buiten gebruik gesteld op " (k.at) " (vastlegging " (k.seq) "); die sleutel is weg, dus zulke vastleggingen zijn niet meer op BSN te vinden." }
                }
            }
        },
    )
}

/// How long ago, in words.
fn ago(now: i64, then: i64) -> String {
    let d = (now - then).max(0);
    match d {
        0..=119 => format!("{d} seconden geleden"),
        120..=7_199 => format!("{} minuten geleden", d / 60),
        7_200..=172_799 => format!("{} uur geleden", d / 3600),
        _ => format!("{} dagen geleden", d / 86_400),
    }
}

fn when(t: i64) -> String {
    crate::log::entry::rfc3339::format(t).unwrap_or_default()
}

/// The log's state: the checkpoint, the witnesses, the latest entries, consistency.
pub fn log_health(csrf: &str, h: &super::Health) -> Markup {
    page(
        "Staat van het logboek",
        Some(csrf),
        html! {
            p class="note" { "Alles op deze pagina controleert de console zelf, met de logsleutel en de sleutels van de getuigen uit haar configuratie; de gateway wordt niet op zijn woord geloofd." }
            @match &h.checkpoint {
                Ok((size, root)) => {
                    p class="ok" { "Het laatste checkpoint is ondertekend met de logsleutel." }
                    table {
                        caption { "Laatste checkpoint" }
                        tbody {
                            tr { th scope="row" { "Aantal regels" } td { (size) } }
                            tr { th scope="row" { "Wortel van de boom" } td { code { (root) } } }
                            tr { th scope="row" { "Laatste regel" } td {
                                @match h.latest_entry { Some(t) => { (when(t)) " (" (ago(h.now, t)) ")" }, None => "niet gelezen" }
                            } }
                            @for (name, t) in &h.cosigned {
                                tr { th scope="row" { "Medeondertekend door " (name) } td { (when(i64::try_from(*t).unwrap_or(0))) " (" (ago(h.now, i64::try_from(*t).unwrap_or(0))) ")" } }
                            }
                            @if h.cosigned.is_empty() { tr { th scope="row" { "Medeondertekeningen" } td { "nog geen van de bekende getuigen: dit checkpoint is nieuwer dan hun laatste ronde (ook uw eigen zoekopdrachten laten het logboek groeien); " code { "gateway monitor" } " bewaakt of ze bijblijven" } } }
                            @if h.unknown_cosignatures > 0 { tr { th scope="row" { "Andere medeondertekeningen" } td { (h.unknown_cosignatures) " (van getuigen die deze console niet kent)" } } }
                        }
                    }
                    @let (ok, read) = h.recent;
                    @if read > 0 && ok == read && h.recent_failure.is_none() {
                        p class="ok" { "De laatste " (read) " regels zijn opgenomen in dit checkpoint (bewijs van opname per regel geverifieerd)." }
                    } @else if read == 0 && h.recent_failure.is_none() {
                        p { "Geen recente regels die u mag zien." }
                    } @else {
                        p class="bad" { (ok) " van de " (read) " recente regels geverifieerd. " (h.recent_failure.clone().unwrap_or_default()) }
                    }
                    @match &h.since {
                        None => p { "Bij een volgend bezoek bewijst de console dat het logboek sinds nu alleen is aangevuld." },
                        Some((old, Ok(()))) => p class="ok" { "Sinds uw vorige bezoek (" (old) " regels) is het logboek alleen aangevuld: consistentiebewijs geverifieerd." },
                        Some((old, Err(why))) => p class="bad" { "Het logboek is NIET consistent met uw vorige bezoek (" (old) " regels): " (why) },
                    }
                }
                Err(why) => p class="bad" { "Het checkpoint is NIET te verifiëren met de logsleutel: " (why) },
            }
        },
    )
}
