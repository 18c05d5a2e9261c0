//! The edge: the partner API over mutual TLS and the plain health listener. Routes, the one
//! request pipeline, handlers, and the listeners; the rules are in `crate::service`.

pub mod handlers;
pub mod listener;
pub mod openapi;
pub mod pipeline;
pub mod problem;

use crate::app::App;
use axum::Router;
use std::sync::Arc;

/// Declares the routes once: the router adds them, and `ROUTES` lists them so tests can hold
/// the OpenAPI document and the pipeline's classification to exactly this set.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every route of the partner API: method (lower case) and path.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn add_routes(r: Router<Arc<App>>) -> Router<Arc<App>> {
            r$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

routes! {
    post "/v1/cases" => handlers::create_case,
    get "/v1/cases/{id}" => handlers::read_case,
    patch "/v1/cases/{id}" => handlers::update_case,
    put "/v1/records/{product}/{subject_ref}" => handlers::put_records,
    post "/v1/disclosures" => handlers::disclose,
    post "/v1/checks" => handlers::check,
    get "/v1/checks/set" => handlers::check_set,
    post "/v1/checks/evaluate" => handlers::check_evaluate,
    get "/v1/aggregates/{view}" => handlers::aggregate,
    get "/v1/audit/disclosures" => handlers::search,
    post "/v1/audit/disclosures/search" => handlers::search_post,
    post "/v1/audit/subjects/report" => handlers::subject,
    get "/v1/audit/overview" => handlers::overview,
    get "/v1/audit/checkpoint" => handlers::checkpoint,
    get "/v1/audit/proof/{seq}" => handlers::proof,
    get "/v1/audit/consistency" => handlers::consistency,
    get "/v1/policy" => handlers::policy_status,
    get "/v1/policy/versions" => handlers::policy_versions,
    post "/v1/policy/versions/{id}/rollback" => handlers::rollback,
    post "/v1/policy/drafts" => handlers::create_draft,
    get "/v1/policy/drafts" => handlers::list_drafts,
    get "/v1/policy/drafts/{id}" => handlers::show_draft,
    post "/v1/policy/drafts/{id}/simulate" => handlers::simulate,
    post "/v1/policy/drafts/{id}/approve" => handlers::approve,
    post "/v1/policy/drafts/{id}/activate" => handlers::activate,
    post "/v1/policy/drafts/{id}/signatures" => handlers::add_signature,
    post "/v1/policy/drafts/{id}/signatures/{partner}/withdraw" => handlers::withdraw_signature,
    get "/v1/openapi.json" => handlers::openapi,
}

/// The partner API router.
pub fn router(app: Arc<App>) -> Router {
    add_routes(Router::new())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            pipeline::pipeline,
        ))
        .layer(axum::middleware::from_fn(pipeline::request_context))
        .with_state(app)
}
