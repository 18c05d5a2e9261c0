//! The edge: the partner API over mutual TLS and the plain health listener. Routes, the one
//! request pipeline, handlers, and the listeners; the rules are in `crate::service`.

pub mod handlers;
pub mod listener;
pub mod pipeline;
pub mod problem;

use crate::app::App;
use axum::Router;
use axum::routing::{get, post, put};
use std::sync::Arc;

/// The partner API router.
pub fn router(app: Arc<App>) -> Router {
    use handlers as h;
    Router::new()
        .route("/v1/cases", post(h::create_case))
        .route("/v1/cases/{id}", get(h::read_case).patch(h::update_case))
        .route("/v1/records/{product}/{subject_ref}", put(h::put_records))
        .route("/v1/disclosures", post(h::disclose))
        .route("/v1/checks", post(h::check))
        .route("/v1/aggregates/{view}", get(h::aggregate))
        .route("/v1/audit/disclosures", get(h::search))
        .route("/v1/audit/subjects/{bsn}", get(h::subject))
        .route("/v1/audit/checkpoint", get(h::checkpoint))
        .route("/v1/audit/proof/{seq}", get(h::proof))
        .route("/v1/audit/consistency", get(h::consistency))
        .route("/v1/policy", get(h::policy_status))
        .route("/v1/policy/versions", get(h::policy_versions))
        .route("/v1/policy/versions/{id}/rollback", post(h::rollback))
        .route(
            "/v1/policy/drafts",
            post(h::create_draft).get(h::list_drafts),
        )
        .route("/v1/policy/drafts/{id}", get(h::show_draft))
        .route("/v1/policy/drafts/{id}/simulate", post(h::simulate))
        .route("/v1/policy/drafts/{id}/approve", post(h::approve))
        .route("/v1/policy/drafts/{id}/activate", post(h::activate))
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            pipeline::pipeline,
        ))
        .layer(axum::middleware::from_fn(pipeline::request_context))
        .with_state(app)
}
