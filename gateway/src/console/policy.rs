//! The administrators' pages: the active covenant version and who made it so, every version
//! and draft with its text, a new draft with its validation errors (line and column), a draft's
//! simulation on the logged history, approval, activation and rollback — each a call of the
//! gateway's policy API, so its four-eyes rule and its log hold as they do for `gateway policy`.
//! The console only hints (the author's approve button says why it cannot be used); the gateway
//! decides.

use super::pages::{at, page, s};
use super::{Console, Me, St, failed, posted, problem, signed_in};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// A draft id or version hash as it may stand in a gateway path (letters, digits, `-`, `_`).
fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn json(body: &str) -> Option<Value> {
    serde_json::from_str(body).ok()
}

fn person(v: &Value) -> String {
    if v.is_null() {
        return "—".into();
    }
    let partner = s(v, "partner");
    // The bootstrap version's author is the configuration file, not a person.
    if partner.starts_with('(') {
        return format!("{partner} {}", s(v, "staff_id"));
    }
    format!("{partner}/{}", s(v, "staff_id"))
}

fn short(version: &str) -> &str {
    version.get(..16).unwrap_or(version)
}

/// `GET /policy`: the active version, the versions, the drafts.
pub(super) async fn home(State(c): St, headers: HeaderMap) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let status = match c.get("/v1/policy", &[]).await {
        Ok((200, b)) => json(&b),
        other => return failed(&csrf, other),
    };
    let versions = match c.get("/v1/policy/versions", &[]).await {
        Ok((200, b)) => json(&b),
        other => return failed(&csrf, other),
    };
    let drafts = match c.get("/v1/policy/drafts", &[]).await {
        Ok((200, b)) => json(&b),
        other => return failed(&csrf, other),
    };
    let (Some(status), Some(versions), Some(drafts)) = (status, versions, drafts) else {
        return failed(
            &csrf,
            Ok((200, "{\"detail\":\"an answer that is not JSON\"}".into())),
        );
    };
    home_page(&csrf, &status, &versions, &drafts).into_response()
}

fn home_page(csrf: &str, status: &Value, versions: &Value, drafts: &Value) -> Markup {
    let cov = at(status, "covenant");
    page(
        "Convenantbeheer",
        Some(csrf),
        html! {
            h2 { "Actieve versie" }
            table {
                caption { "De versie die nu beslist" }
                tbody {
                    tr { th scope="row" { "Convenant" } td { (s(cov, "title")) " (" (s(cov, "id")) ", " (s(cov, "version_label")) ")" } }
                    tr { th scope="row" { "Versie (hash)" } td { a href={"/policy/drafts/" (s(status, "draft"))} { code { (s(status, "version")) } } } }
                    tr { th scope="row" { "Auteur" } td { (person(at(status, "author"))) } }
                    tr { th scope="row" { "Goedgekeurd door" } td { (person(at(status, "approver"))) " " (s(status, "approved_at")) } }
                    tr { th scope="row" { "Geactiveerd door" } td { (person(at(status, "activated_by"))) " " (s(status, "activated_at")) } }
                }
            }
            p { a href="/policy/new" { "Nieuw concept maken (beheerders)" } }
            h2 { "Concepten" }
            @let list = at(drafts, "drafts").as_array().cloned().unwrap_or_default();
            @let open: Vec<&Value> = list.iter().filter(|d| matches!(s(d, "status"), "draft" | "approved")).collect();
            @if open.is_empty() { p { "Er staan geen concepten open." } }
            @else {
                table {
                    caption { "Concepten die op goedkeuring of activering wachten" }
                    thead { tr { th scope="col" { "Concept" } th scope="col" { "Soort" } th scope="col" { "Status" } th scope="col" { "Auteur" } th scope="col" { "Gemaakt" } th scope="col" { "Goedgekeurd door" } } }
                    tbody {
                        @for d in open {
                            tr {
                                td { a href={"/policy/drafts/" (s(d, "id"))} { (s(d, "id")) } }
                                td { (s(d, "kind")) }
                                td { (status_nl(s(d, "status"))) }
                                td { (person(at(d, "author"))) }
                                td { (s(d, "created_at")) }
                                td { (person(at(d, "approver"))) }
                            }
                        }
                    }
                }
            }
            h2 { "Versies" }
            table {
                caption { "Elke geactiveerde versie, nieuwste eerst" }
                thead { tr { th scope="col" { "Versie" } th scope="col" { "Soort" } th scope="col" { "Auteur" } th scope="col" { "Goedgekeurd door" } th scope="col" { "Geactiveerd" } th scope="col" { "Terugdraaien" } } }
                tbody {
                    @for v in at(versions, "versions").as_array().cloned().unwrap_or_default() {
                        tr {
                            td { a href={"/policy/drafts/" (s(&v, "id"))} { code { (short(s(&v, "version"))) } } @if at(&v, "active").as_bool() == Some(true) { " (actief)" } }
                            td { (s(&v, "kind")) }
                            td { (person(at(&v, "author"))) }
                            td { (person(at(&v, "approver"))) }
                            td { (person(at(&v, "activated_by"))) " " (s(&v, "activated_at")) }
                            td {
                                @if at(&v, "active").as_bool() != Some(true) {
                                    form method="post" action={"/policy/versions/" (s(&v, "id")) "/rollback"} {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" aria-label={"Als concept terugzetten: versie " (short(s(&v, "version")))} { "Als concept terugzetten" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p class="note" { "Een terugdraaiing wordt een nieuw concept: ook dat keurt een tweede beheerder goed voordat het actief wordt." }
        },
    )
}

fn status_nl(status: &str) -> &'static str {
    match status {
        "draft" => "concept (wacht op goedkeuring)",
        "approved" => "goedgekeurd (wacht op activering)",
        "active" => "actief",
        "superseded" => "vervangen",
        _ => "onbekend",
    }
}

/// `GET /policy/new`: a new draft, starting from the active version's text.
pub(super) async fn new_form(State(c): St, headers: HeaderMap) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let draft = match c.get("/v1/policy", &[]).await {
        Ok((200, b)) => json(&b).map(|v| s(&v, "draft").to_owned()),
        other => return failed(&csrf, other),
    };
    let Some(draft) = draft.filter(|d| id_ok(d)) else {
        return failed(
            &csrf,
            Ok((200, "{\"detail\":\"no active draft id\"}".into())),
        );
    };
    match c.get(&format!("/v1/policy/drafts/{draft}"), &[]).await {
        // An answer without the text is the gateway's failure, not an empty covenant to edit.
        Ok((200, b)) => match json(&b).and_then(|v| v.get("source")?.as_str().map(str::to_owned)) {
            Some(source) => new_page(&csrf, &source, &[]).into_response(),
            None => failed(
                &csrf,
                Ok((200, "{\"detail\":\"a draft without its text\"}".into())),
            ),
        },
        other => failed(&csrf, other),
    }
}

fn new_page(csrf: &str, source: &str, errors: &[String]) -> Markup {
    page(
        "Nieuw concept",
        Some(csrf),
        html! {
            @if !errors.is_empty() {
                div role="alert" {
                    p class="bad" { "De gateway weigerde het concept: " (errors.len()) " probleem" @if errors.len() != 1 { "en" } " (regel:kolom)." }
                    ul id="errors" { @for e in errors { li { code { (e) } } } }
                }
            }
            p { "De tekst van de actieve versie staat hieronder; pas hem aan en dien hem in. De gateway controleert hem en bewaart hem als concept; een tweede beheerder keurt het goed." }
            form method="post" action="/policy/new" {
                input type="hidden" name="csrf" value=(csrf);
                label for="source" { "Convenanttekst (TOML)" }
                textarea id="source" name="source" rows="30" cols="100" spellcheck="false" { (source) }
                br;
                button type="submit" { "Indienen als concept" }
            }
        },
    )
}

#[derive(Deserialize)]
pub(super) struct NewDraft {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    source: String,
}

/// `POST /policy/new`: the text to the gateway; its draft, or its errors beside the text.
pub(super) async fn new_submit(
    State(c): St,
    headers: HeaderMap,
    Form(f): Form<NewDraft>,
) -> Response {
    let csrf = match posted(&c, &headers, &f.csrf) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    // Browsers send text areas with CR LF line ends.
    let source = f.source.replace("\r\n", "\n");
    match c
        .post(
            "/v1/policy/drafts",
            Some(("application/toml", source.clone())),
        )
        .await
    {
        Ok((201, b)) => match json(&b).map(|v| s(&v, "id").to_owned()) {
            Some(id) if id_ok(&id) => Redirect::to(&format!("/policy/drafts/{id}")).into_response(),
            _ => failed(&csrf, Ok((201, b))),
        },
        Ok((422, b)) => {
            let p = problem(&b);
            let mut errors = p.errors;
            if errors.is_empty() {
                errors.push(p.detail);
            }
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                new_page(&csrf, &source, &errors),
            )
                .into_response()
        }
        other => failed(&csrf, other),
    }
}

/// `GET /policy/drafts/{id}`: a draft or version, its text, its approval, and the steps left.
pub(super) async fn draft(State(c): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if !id_ok(&id) {
        return (StatusCode::NOT_FOUND, super::pages::not_found(&csrf)).into_response();
    }
    match c.get(&format!("/v1/policy/drafts/{id}"), &[]).await {
        Ok((200, b)) => match json(&b) {
            Some(d) => draft_page(&csrf, &d, c.me().await.as_ref()).into_response(),
            None => failed(&csrf, Ok((200, "{\"detail\":\"not JSON\"}".into()))),
        },
        other => failed(&csrf, other),
    }
}

fn draft_page(csrf: &str, d: &Value, me: Option<&Me>) -> Markup {
    let id = s(d, "id");
    let status = s(d, "status");
    let author = at(d, "author");
    let mine = me.is_some_and(|m| m.iss == s(author, "partner") && m.sub == s(author, "staff_id"));
    page(
        &format!("Concept {id}"),
        Some(csrf),
        html! {
            table {
                caption { "Het concept en zijn goedkeuring" }
                tbody {
                    tr { th scope="row" { "Versie (hash)" } td { code { (s(d, "version")) } } }
                    tr { th scope="row" { "Soort" } td { (s(d, "kind")) } }
                    tr { th scope="row" { "Status" } td { (status_nl(status)) } }
                    tr { th scope="row" { "Gemaakt tegen versie" } td { code { (s(d, "base_version")) } } }
                    tr { th scope="row" { "Auteur" } td { (person(author)) " " (s(d, "created_at")) } }
                    tr { th scope="row" { "Goedgekeurd door" } td { (person(at(d, "approver"))) " " (s(d, "approved_at")) } }
                    tr { th scope="row" { "Geactiveerd door" } td { (person(at(d, "activated_by"))) " " (s(d, "activated_at")) } }
                }
            }
            @if matches!(status, "draft" | "approved") {
                h2 { "Stappen" }
                form method="post" action={"/policy/drafts/" (id) "/simulate"} {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="days" { "Simuleren op het logboek van de laatste dagen" }
                    input id="days" name="days" type="number" min="1" max="3650" value="90";
                    button type="submit" { "Simuleren" }
                }
                @if status == "draft" {
                    form method="post" action={"/policy/drafts/" (id) "/approve"} {
                        input type="hidden" name="csrf" value=(csrf);
                        @if mine {
                            p id="four-eyes" class="note" { "U bent de auteur van dit concept: een tweede beheerder moet het goedkeuren (vier ogen). De gateway weigert uw goedkeuring." }
                            button type="submit" disabled aria-describedby="four-eyes" { "Goedkeuren" }
                        } @else {
                            button type="submit" { "Goedkeuren" }
                        }
                    }
                }
                form method="post" action={"/policy/drafts/" (id) "/signature"} {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="note" { "Ondertekende goedkeuring van een partner (de notitie die " code { "gateway policy sign" } " met de sleutel van de partner maakte)" }
                    textarea id="note" name="note" rows="9" cols="80" spellcheck="false" {}
                    button type="submit" { "Handtekening toevoegen" }
                }
                @if status == "approved" {
                    form method="post" action={"/policy/drafts/" (id) "/activate"} {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Activeren" }
                    }
                }
            }
            h2 { "Tekst" }
            pre class="source" tabindex="0" aria-label="Convenanttekst" { (s(d, "source")) }
        },
    )
}

#[derive(Deserialize)]
pub(super) struct SignatureForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// `POST /policy/drafts/{id}/signature`: a partner's signed approval note, added to the draft
/// (the gateway checks it against the partner's governance key).
pub(super) async fn add_signature(
    State(c): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<SignatureForm>,
) -> Response {
    let csrf = match posted(&c, &headers, &f.csrf) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if !id_ok(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    // Forms send CRLF line ends; the note is signed with LF.
    let note = f.note.replace("\r\n", "\n");
    let body = serde_json::json!({ "note": note }).to_string();
    match c
        .post(
            &format!("/v1/policy/drafts/{id}/signatures"),
            Some(("application/json", body)),
        )
        .await
    {
        Ok((200, _)) => Redirect::to(&format!("/policy/drafts/{id}")).into_response(),
        other => failed(&csrf, other),
    }
}

#[derive(Deserialize)]
pub(super) struct Step {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    days: Option<String>,
}

/// `POST /policy/drafts/{id}/simulate`: the draft replayed on the logged history.
pub(super) async fn simulate(
    State(c): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Step>,
) -> Response {
    let csrf = match posted(&c, &headers, &f.csrf) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if !id_ok(&id) {
        return (StatusCode::NOT_FOUND, super::pages::not_found(&csrf)).into_response();
    }
    let days = f
        .days
        .as_deref()
        .and_then(|d| d.trim().parse::<i64>().ok())
        .unwrap_or(90);
    let body = serde_json::json!({ "days": days }).to_string();
    match c
        .post(
            &format!("/v1/policy/drafts/{id}/simulate"),
            Some(("application/json", body)),
        )
        .await
    {
        Ok((200, b)) => match json(&b) {
            Some(v) => simulation_page(&csrf, &id, &v).into_response(),
            None => failed(&csrf, Ok((200, "{\"detail\":\"not JSON\"}".into()))),
        },
        other => failed(&csrf, other),
    }
}

fn class_nl(v: &Value) -> String {
    match v.as_str() {
        Some("disclosed") => "verstrekt".into(),
        Some("transformed") => "bewerkt".into(),
        Some("withheld") => "achtergehouden".into(),
        Some("omitted") => "weggelaten".into(),
        Some(other) => other.to_owned(),
        None => "niet meer in de catalogus".into(),
    }
}

/// Every change of the text and whose signature it needs (issue 37).
fn review_table(review: &Value) -> Markup {
    let lines = at(review, "lines").as_array().cloned().unwrap_or_default();
    html! {
        h2 { "Alle wijzigingen in de tekst" }
        @if lines.is_empty() {
            p { "De tekst is gelijk aan de actieve versie." }
        } @else {
            table {
                caption { "Per onderdeel: wat verandert, en wiens handtekening dat vraagt" }
                thead { tr { th scope="col" { "Onderdeel" } th scope="col" { "Item" } th scope="col" { "Wijziging" } th scope="col" { "Wat" } th scope="col" { "Handtekening van" } } }
                tbody {
                    @for l in lines.iter().take(500) {
                        @let needs = at(l, "needs");
                        tr {
                            td { (s(l, "section")) }
                            td { (s(l, "item")) }
                            td { (match s(l, "change") { "added" => "toegevoegd", "removed" => "verwijderd", _ => "gewijzigd" }) }
                            td { (s(l, "detail")) }
                            td {
                                @if s(needs, "by") == "threshold" { "drempel van de kernpartners" }
                                @else { (at(needs, "partners").as_array().map(|p| p.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn simulation_page(csrf: &str, id: &str, v: &Value) -> Markup {
    let r = at(v, "report");
    let st = at(v, "static");
    page(
        &format!("Simulatie van concept {id}"),
        Some(csrf),
        html! {
            p { "Tegen de actieve versie " code { (short(s(v, "against"))) } ", op het logboek sinds " (s(v, "from")) " (" (at(v, "days")) " dagen)." }
            p { strong { (at(r, "replayed")) } " verstrekkingen opnieuw beslist; " strong { (at(r, "affected_requests")) } " zouden anders uitvallen, over " strong { (at(r, "affected_subjects")) } " betrokkenen." }
            @if at(v, "truncated").as_bool() == Some(true) { p class="note" { "Niet alles is herhaald: de simulatie stopt bij het maximum aantal regels." } }
            p class="note" { "Niet herhaald: de casusstatus en de relatie tot de casus (die hangen af van de casus zoals die toen was), en producten die een verzoek toen niet ontving." }
            @for g in at(r, "changes").as_array().cloned().unwrap_or_default() {
                h2 { (s(&g, "partner")) " — doel " (s(&g, "purpose")) }
                p { (at(&g, "requests")) " verzoeken, " (at(&g, "subjects")) " betrokkenen. Logregels: "
                    @for n in at(&g, "sequence_numbers").as_array().cloned().unwrap_or_default() { a href={"/entry/" (n)} { (n) } " " }
                }
                table {
                    caption { "Velden die omslaan" }
                    thead { tr { th scope="col" { "Veld" } th scope="col" { "Toen" } th scope="col" { "Nu" } th scope="col" { "Regel toen" } th scope="col" { "Regel nu" } th scope="col" { "Verzoeken" } th scope="col" { "Betrokkenen" } } }
                    tbody {
                        @for f in at(&g, "fields").as_array().cloned().unwrap_or_default() {
                            tr {
                                th scope="row" { (s(&f, "field")) }
                                td { (class_nl(at(&f, "from"))) }
                                td { (class_nl(at(&f, "to"))) }
                                td { (s(&f, "rule_before")) }
                                td { (s(&f, "rule_after")) }
                                td { (at(&f, "requests")) }
                                td { (at(&f, "subjects")) }
                            }
                        }
                    }
                }
            }
            @let access = at(r, "access").as_array().cloned().unwrap_or_default();
            @if !access.is_empty() {
                h2 { "Toegang tot doelen" }
                table {
                    caption { "Rollen en doelen waarvan de binding verandert" }
                    thead { tr { th scope="col" { "Partner" } th scope="col" { "Rol" } th scope="col" { "Doel" } th scope="col" { "Toen" } th scope="col" { "Nu" } th scope="col" { "Verzoeken" } } }
                    tbody {
                        @for a in access {
                            tr { td { (s(&a, "partner")) } td { (s(&a, "role")) } td { (s(&a, "purpose")) } td { (s(&a, "then")) } td { (s(&a, "now")) } td { (at(&a, "requests")) } }
                        }
                    }
                }
            }
            h2 { "Statisch verschil" }
            p { (at(st, "decision_changes")) " beslissingen veranderen." }
            @let changes = at(st, "changes").as_array().cloned().unwrap_or_default();
            @if !changes.is_empty() {
                table {
                    caption { "Beslissingen per ontvanger, rol, doel en veld" }
                    thead { tr { th scope="col" { "Partner" } th scope="col" { "Rol" } th scope="col" { "Doel" } th scope="col" { "Veld" } th scope="col" { "Was" } th scope="col" { "Wordt" } } }
                    tbody {
                        @for ch in changes.iter().take(500) {
                            tr { td { (s(ch, "partner")) } td { (s(ch, "role")) } td { (s(ch, "purpose")) } td { (s(ch, "field")) } td { (s(ch, "before")) } td { (s(ch, "after")) } }
                        }
                    }
                }
            }
            @for line in at(st, "registry_changes").as_array().cloned().unwrap_or_default() {
                p { "Register: " (line.as_str().unwrap_or("")) }
            }
            (review_table(at(st, "review")))
            p { a href={"/policy/drafts/" (id)} { "Terug naar het concept" } }
        },
    )
}

/// The approve, activate and rollback steps: posted to the gateway, then back to the draft.
async fn step(
    c: Arc<Console>,
    headers: HeaderMap,
    offered: &str,
    path: String,
    back: Option<&str>,
) -> Response {
    let csrf = match posted(&c, &headers, offered) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    match c.post(&path, None).await {
        Ok((200 | 201, b)) => {
            let id = back
                .map(str::to_owned)
                .or_else(|| json(&b).map(|v| s(&v, "id").to_owned()))
                .filter(|id| id_ok(id));
            match id {
                Some(id) => Redirect::to(&format!("/policy/drafts/{id}")).into_response(),
                None => Redirect::to("/policy").into_response(),
            }
        }
        other => failed(&csrf, other),
    }
}

/// `POST /policy/drafts/{id}/approve` and `…/activate`.
pub(super) async fn draft_step(
    State(c): St,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Step>,
) -> Response {
    if !id_ok(&id) || !matches!(action.as_str(), "approve" | "activate") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = format!("/v1/policy/drafts/{id}/{action}");
    step(c, headers, &f.csrf, path, Some(&id)).await
}

/// `POST /policy/versions/{id}/rollback`: an earlier version as a new draft (to the new draft).
pub(super) async fn rollback(
    State(c): St,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Step>,
) -> Response {
    if !id_ok(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    step(
        c,
        headers,
        &f.csrf,
        format!("/v1/policy/versions/{id}/rollback"),
        None,
    )
    .await
}

/// `GET /policy/version/{hash}`: the version an entry names, as its draft (text and approval).
pub(super) async fn version(
    State(c): St,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    let csrf = match signed_in(&c, &headers) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let found = match c.get("/v1/policy/versions", &[]).await {
        Ok((200, b)) => json(&b).and_then(|v| {
            at(&v, "versions").as_array().and_then(|a| {
                a.iter()
                    .find(|x| s(x, "version") == hash)
                    .map(|x| s(x, "id").to_owned())
            })
        }),
        other => return failed(&csrf, other),
    };
    match found.filter(|id| id_ok(id)) {
        Some(id) => Redirect::to(&format!("/policy/drafts/{id}")).into_response(),
        None => (StatusCode::NOT_FOUND, super::pages::not_found(&csrf)).into_response(),
    }
}
