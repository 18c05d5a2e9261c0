//! The handlers: each extracts its inputs, calls its service, and responds. No rules here.

use super::pipeline::{ApiPath, ApiQuery, Body, OptionalBody, TomlBody, respond};
use crate::app::App;
use crate::refusal::Refusal;
use crate::service::audit::{SearchAnswer, SearchQuery, SubjectQuery};
use crate::service::cases::{CasePatch, NewCase};
use crate::service::checks::CheckRequest;
use crate::service::disclose::DisclosureRequest;
use crate::service::signatures::SignatureIn;
use crate::service::{self, Call};
use crate::sources::RecordsBody;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

type St = State<Arc<App>>;

pub(super) async fn disclose(
    State(app): St,
    mut call: Call,
    Body(body): Body<DisclosureRequest>,
) -> Response {
    let r = async { service::disclose::disclose(&app, &mut call, body?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn check(
    State(app): St,
    mut call: Call,
    Body(body): Body<CheckRequest>,
) -> Response {
    let r = async { service::checks::check(&app, &mut call, body?).await }.await;
    respond(call, r.map(Json))
}

/// `GET /v1/checks/set?approach=…` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproachQuery {
    approach: String,
}

pub(super) async fn check_set(
    State(app): St,
    mut call: Call,
    ApiQuery(q): ApiQuery<ApproachQuery>,
) -> Response {
    let r = async { service::checks::published_set(&app, &mut call, &q?.approach).await }.await;
    respond(
        call,
        r.map(|note| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note)),
    )
}

pub(super) async fn check_evaluate(
    State(app): St,
    mut call: Call,
    Body(body): Body<service::checks::EvaluateRequest>,
) -> Response {
    let r = async { service::checks::evaluate(&app, &mut call, body?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn put_records(
    State(app): St,
    mut call: Call,
    ApiPath(path): ApiPath<(String, String)>,
    Body(body): Body<RecordsBody>,
) -> Response {
    let r = async {
        let (product, subject_ref) = path?;
        service::records::deposit(&app, &mut call, &product, &subject_ref, body?).await
    }
    .await;
    respond(call, r.map(Json))
}

pub(super) async fn create_case(
    State(app): St,
    mut call: Call,
    Body(body): Body<NewCase>,
) -> Response {
    let r = async { service::cases::create(&app, &mut call, body?).await }.await;
    respond(
        call,
        r.map(|v| {
            let location = HeaderValue::from_str(&format!("/v1/cases/{}", v.id)).ok();
            let mut resp = (StatusCode::CREATED, Json(v)).into_response();
            if let Some(l) = location {
                resp.headers_mut().insert(header::LOCATION, l);
            }
            resp
        }),
    )
}

pub(super) async fn read_case(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let r = async { service::cases::read(&app, &mut call, &id?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn update_case(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
    Body(patch): Body<CasePatch>,
) -> Response {
    let r = async { service::cases::update(&app, &mut call, &id?, patch?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn aggregate(
    State(app): St,
    mut call: Call,
    ApiPath(view): ApiPath<String>,
) -> Response {
    let r = async { service::aggregates::aggregate(&app, &mut call, &view?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn search(
    State(app): St,
    call: Call,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Response {
    // A search by person is a POST: its BSN never goes in a URL.
    let q = q.and_then(|q| match q.subject {
        Some(_) => Err(Refusal::BsnInUrl),
        None => Ok(q),
    });
    search_with(app, call, q).await
}

pub(super) async fn search_post(
    State(app): St,
    call: Call,
    Body(q): Body<SearchQuery>,
) -> Response {
    search_with(app, call, q).await
}

async fn search_with(app: Arc<App>, mut call: Call, q: Result<SearchQuery, Refusal>) -> Response {
    let r = async { service::audit::search(&app, &mut call, q?).await }.await;
    respond(
        call,
        r.map(|a| match a {
            SearchAnswer::Csv(text) => {
                ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
            }
            SearchAnswer::Json(items, next) => {
                Json(serde_json::json!({"items": items, "next_after": next})).into_response()
            }
        }),
    )
}

pub(super) async fn overview(
    State(app): St,
    mut call: Call,
    ApiQuery(q): ApiQuery<service::audit::OverviewQuery>,
) -> Response {
    let r = async { service::audit::overview(&app, &mut call, q?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn subject(
    State(app): St,
    mut call: Call,
    Body(q): Body<SubjectQuery>,
) -> Response {
    let r = async { service::audit::subject(&app, &mut call, q?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn checkpoint(State(app): St, call: Call) -> Response {
    let r = service::audit::cosigned_checkpoint(&app)
        .await
        .map_err(log_problem);
    respond(
        call,
        r.map(|note| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note)),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SizeQuery {
    #[serde(default)]
    size: Option<i64>,
}

pub(super) async fn proof(
    State(app): St,
    call: Call,
    ApiPath(seq): ApiPath<i64>,
    ApiQuery(q): ApiQuery<SizeQuery>,
) -> Response {
    let r = async {
        let (seq, q) = (seq?, q?);
        app.log
            .inclusion(seq, q.size, app.clock.now())
            .await
            .map_err(log_problem)
    }
    .await;
    respond(call, r.map(Json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyQuery {
    from: i64,
    to: i64,
}

pub(super) async fn consistency(
    State(app): St,
    call: Call,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Response {
    let r = async {
        let q = q?;
        app.log.consistency(q.from, q.to).await.map_err(log_problem)
    }
    .await;
    respond(call, r.map(Json))
}

/// A log failure as the partner sees it: a range it asked wrongly, or the log unavailable.
fn log_problem(e: crate::log::LogError) -> Refusal {
    match e {
        crate::log::LogError::Range(why) => Refusal::InvalidBody(why),
        e => {
            tracing::error!(error = %e, "the disclosure log could not answer");
            Refusal::DisclosureLogUnavailable
        }
    }
}

pub(super) async fn policy_status(State(app): St, mut call: Call) -> Response {
    let r = service::policy_admin::status(&app, &mut call).await;
    respond(call, r.map(Json))
}

pub(super) async fn policy_versions(State(app): St, mut call: Call) -> Response {
    let r = service::policy_admin::versions(&app, &mut call).await;
    respond(call, r.map(Json))
}

pub(super) async fn list_drafts(State(app): St, mut call: Call) -> Response {
    let r = service::policy_admin::list_drafts(&app, &mut call).await;
    respond(call, r.map(Json))
}

pub(super) async fn show_draft(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let r = async { service::policy_admin::show_draft(&app, &mut call, &id?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn create_draft(
    State(app): St,
    mut call: Call,
    TomlBody(text): TomlBody,
) -> Response {
    let r = service::policy_admin::create_draft(&app, &mut call, text).await;
    respond(call, r.map(|v| (StatusCode::CREATED, Json(v))))
}

pub(super) async fn rollback(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let r = async { service::policy_admin::rollback(&app, &mut call, &id?).await }.await;
    respond(call, r.map(|v| (StatusCode::CREATED, Json(v))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SimulateBody {
    #[serde(default)]
    days: Option<i64>,
}

pub(super) async fn simulate(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
    OptionalBody(body): OptionalBody<SimulateBody>,
) -> Response {
    let r = async {
        let days = body?.and_then(|b| b.days);
        service::policy_admin::simulate(&app, &mut call, &id?, days).await
    }
    .await;
    respond(call, r.map(Json))
}

pub(super) async fn approve(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let r = async { service::policy_admin::approve(&app, &mut call, &id?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn activate(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let r = async { service::policy_admin::activate(&app, &mut call, &id?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn add_signature(
    State(app): St,
    mut call: Call,
    ApiPath(id): ApiPath<String>,
    Body(note): Body<SignatureIn>,
) -> Response {
    let r = async { service::signatures::add(&app, &mut call, &id?, note?).await }.await;
    respond(call, r.map(Json))
}

pub(super) async fn withdraw_signature(
    State(app): St,
    mut call: Call,
    ApiPath(path): ApiPath<(String, String)>,
) -> Response {
    let r = async {
        let (id, partner) = path?;
        service::signatures::withdraw(&app, &mut call, &id, &partner).await
    }
    .await;
    respond(call, r.map(Json))
}

/// No route: a 404, except where the art. 15 report used to be (its URL carried the BSN).
pub(super) async fn not_found(uri: axum::http::Uri) -> Refusal {
    if uri.path().starts_with("/v1/audit/subjects/") && uri.path() != "/v1/audit/subjects/report" {
        Refusal::SubjectReportMoved
    } else {
        Refusal::NotFound
    }
}

pub(super) async fn method_not_allowed() -> Refusal {
    Refusal::MethodNotAllowed
}

/// The OpenAPI document: the connection's certificate suffices, no token (it holds no data).
pub(super) async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document().clone())
}
