//! The OpenAPI 3.1 document of the partner API, served at `GET /v1/openapi.json`. Built from
//! the code where the code knows: every problem type comes from the refusal enum, every status
//! from the one mapping; tests check that every route of the router is here and every
//! problem type here is in `docs/problems.md`.

use super::problem::{TYPE_BASE, status};
use crate::refusal::Refusal;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Every documented operation: method, path, operation id, summary.
pub const OPERATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "post",
        "/v1/cases",
        "createCase",
        "Register a signal: a new case",
    ),
    (
        "get",
        "/v1/cases/{id}",
        "readCase",
        "Read a case (recorded; the classification only for the roles that may read it)",
    ),
    (
        "patch",
        "/v1/cases/{id}",
        "updateCase",
        "Change a case: status by the work process, fields",
    ),
    (
        "put",
        "/v1/records/{product}/{subject_ref}",
        "depositRecords",
        "Deposit a partner's own records for one of its products",
    ),
    (
        "post",
        "/v1/disclosures",
        "disclose",
        "Disclose for a purpose: each field by the covenant, encrypted to the requester",
    ),
    (
        "post",
        "/v1/checks",
        "check",
        "Is the person known in the approach? No content",
    ),
    (
        "get",
        "/v1/checks/set",
        "checkSet",
        "Another approach's register: iPGA-R's signed set of its open cases for that approach (oblivious check)",
    ),
    (
        "post",
        "/v1/checks/evaluate",
        "checkEvaluate",
        "Another approach's register: one blinded element evaluated with its proof (oblivious check)",
    ),
    (
        "get",
        "/v1/aggregates/{view}",
        "aggregate",
        "Phenomenon-level figures of one of the covenant's views",
    ),
    (
        "get",
        "/v1/audit/disclosures",
        "searchLog",
        "Search the disclosure log (privacy officers)",
    ),
    (
        "post",
        "/v1/audit/disclosures/search",
        "searchLogByPerson",
        "Search the disclosure log, also by person: the filters in the body, so that a BSN never goes in a URL (privacy officers)",
    ),
    (
        "post",
        "/v1/audit/subjects/report",
        "subjectReport",
        "The GDPR art. 15 report of one person, the BSN in the body (privacy officers); the old GET /v1/audit/subjects/{bsn} answers 410",
    ),
    (
        "get",
        "/v1/audit/overview",
        "auditOverview",
        "The log's figures per week: disclosures, refusals and unavailable sources (privacy officers)",
    ),
    (
        "get",
        "/v1/audit/checkpoint",
        "checkpoint",
        "The signed checkpoint of the log",
    ),
    (
        "get",
        "/v1/audit/proof/{seq}",
        "inclusionProof",
        "The inclusion proof of an entry",
    ),
    (
        "get",
        "/v1/audit/consistency",
        "consistencyProof",
        "The consistency proof between two sizes of the log",
    ),
    (
        "get",
        "/v1/policy",
        "policyStatus",
        "The active covenant version",
    ),
    (
        "get",
        "/v1/policy/versions",
        "policyVersions",
        "Every activated version",
    ),
    (
        "post",
        "/v1/policy/versions/{id}/rollback",
        "rollback",
        "An earlier version as a new draft (administrators)",
    ),
    (
        "post",
        "/v1/policy/drafts",
        "createDraft",
        "Submit a covenant draft (administrators)",
    ),
    (
        "get",
        "/v1/policy/drafts",
        "listDrafts",
        "The drafts (administrators, privacy officers)",
    ),
    (
        "get",
        "/v1/policy/drafts/{id}",
        "showDraft",
        "One draft with its text (administrators, privacy officers)",
    ),
    (
        "post",
        "/v1/policy/drafts/{id}/simulate",
        "simulate",
        "Replay the logged disclosures under a draft (administrators)",
    ),
    (
        "post",
        "/v1/policy/drafts/{id}/approve",
        "approve",
        "Approve a draft: a second administrator (four eyes)",
    ),
    (
        "post",
        "/v1/policy/drafts/{id}/activate",
        "activate",
        "Make an approved draft the active version",
    ),
    (
        "post",
        "/v1/policy/drafts/{id}/signatures",
        "addSignature",
        "Add a partner's signed approval of a draft (administrators)",
    ),
    (
        "post",
        "/v1/policy/drafts/{id}/signatures/{partner}/withdraw",
        "withdrawSignature",
        "Withdraw a partner's signed approval of a draft (administrators)",
    ),
    ("get", "/v1/openapi.json", "openapi", "This document"),
];

fn s(t: &str) -> Value {
    json!({"type": t})
}
/// An identifier as `crate::service::Ident` takes it.
fn ident() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9._~:-]{1,128}$"})
}
fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}
fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
fn object(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}
/// A request body object: unknown fields are refused by the gateway, so here too.
fn strict(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props, "additionalProperties": false})
}

fn schemas() -> Value {
    let statuses: Vec<&str> = policy::CaseStatus::ALL.iter().map(|c| c.as_str()).collect();
    let ideologies: Vec<&str> = policy::domain::Ideology::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let problem_types: Vec<String> = {
        let mut v: Vec<String> = Refusal::examples()
            .iter()
            .map(|r| format!("{TYPE_BASE}{}", r.slug()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let date =
        json!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
    let bsn = json!({"type": "string", "pattern": "^[0-9]{9}$", "description": "nine digits passing the 11-proef"});
    let search_request = strict(
        &[],
        json!({
            "subject": bsn, "partner": s("string"), "staff_id": s("string"), "purpose": s("string"),
            "case": s("string"), "product": s("string"), "outcome": s("string"), "kind": s("string"),
            "from": s("string"), "to": s("string"), "after": s("integer"),
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "format": {"enum": ["json", "csv"]},
        }),
    );
    let subject_report_request = strict(
        &["subject"],
        json!({
            "subject": strict(&["bsn"], json!({"bsn": bsn})),
            "confidential": {"enum": ["include", "exclude"]},
            "prove": {"type": "boolean", "description": "also the proof that the report is complete (docs/audit.md)"},
        }),
    );
    let regisseur = strict(
        &["partner", "staff_id"],
        json!({"partner": s("string"), "staff_id": s("string")}),
    );
    let draft = object(
        &["id", "version", "kind", "status", "author", "created_at"],
        json!({
            "id": s("string"), "version": s("string"),
            "kind": {"enum": ["change", "rollback", "bootstrap"]},
            "status": {"enum": ["draft", "approved", "active", "superseded"]},
            "base_version": nullable("string"),
            "author": reference("Person"), "created_at": s("string"),
            "approver": {"oneOf": [reference("Person"), s("null")]}, "approved_at": nullable("string"),
            "activated_by": {"oneOf": [reference("Person"), s("null")]}, "activated_at": nullable("string"),
            "source": s("string"), "audit_seq": s("integer"), "diff": s("object"),
            "restores": s("string"), "previous_version": s("string"), "active": s("boolean"),
        }),
    );
    json!({
        "Problem": object(&["type", "title", "status", "detail"], json!({
            "type": {"type": "string", "enum": problem_types, "description": "stable URI of the problem; docs/problems.md explains each"},
            "title": s("string"), "status": s("integer"), "detail": s("string"),
            "errors": {"type": "array", "items": s("string")},
        })),
        "Person": object(&["partner", "staff_id"], json!({"partner": s("string"), "staff_id": s("string")})),
        "Regisseur": regisseur,
        "NewCase": strict(&["subject"], json!({
            "subject": strict(&["bsn"], json!({"bsn": bsn})),
            "signal_date": date, "risk_group": {"type": "integer", "minimum": 1, "maximum": 5},
            "ideology": {"enum": ideologies},
        })),
        "CasePatch": strict(&[], json!({
            "status": {"enum": statuses}, "risk_group": {"type": "integer", "minimum": 1, "maximum": 5},
            "ideology": {"enum": ideologies}, "regisseur": reference("Regisseur"),
            "uvo_partners": {"type": "array", "items": s("string")},
            "signal_date": date, "decision_date": date, "notification_date": date,
            "notification_to": {"enum": policy::NotificationTo::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()},
            "decision": reference("BodyDecision"),
            "review": reference("BodyDecision"),
            "check_override": {"type": "string", "minLength": 1, "maxLength": 500},
        })),
        "BodyDecision": strict(&["reference", "date", "members"], json!({
            "reference": {"type": "string", "minLength": 1, "maxLength": 80},
            "date": date,
            "members": {"type": "array", "items": reference("Regisseur")},
        })),
        "Case": object(&["id", "subject_ref", "status", "uvo_partners", "dates", "version", "created_at", "updated_at", "history", "audit_seq"], json!({
            "id": s("string"), "subject_ref": s("string"), "status": {"enum": statuses},
            "regisseur": {"oneOf": [reference("Regisseur"), s("null")]},
            "uvo_partners": {"type": "array", "items": s("string")},
            "dates": object(&[], json!({"signal": nullable("string"), "decision": nullable("string"), "notification_letter": nullable("string"), "notification_to": {"enum": policy::NotificationTo::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()}})),
            "classification": object(&[], json!({"risk_group": nullable("integer"), "ideology": {"type": ["string", "null"]}})),
            "version": s("integer"), "created_at": s("string"), "updated_at": s("string"),
            "history": {"type": "array", "items": object(&["version", "at", "partner", "staff_id", "role", "action", "fields"], json!({
                "version": s("integer"), "at": s("string"), "partner": s("string"), "staff_id": s("string"), "role": s("string"),
                "action": {"enum": ["created", "updated"]}, "fields": {"type": "array", "items": s("string")},
                "status": {"enum": statuses},
            }))},
            "audit_seq": s("integer"),
        })),
        "Records": strict(&["records"], json!({"records": {"type": "array", "items": s("object")}})),
        "Deposited": object(&["product", "subject_ref", "records", "audit_seq"], json!({
            "product": s("string"), "subject_ref": s("string"), "records": s("integer"), "audit_seq": s("integer"),
        })),
        "Subject": {"oneOf": [
            strict(&["bsn"], json!({"bsn": bsn})),
            strict(&["ref"], json!({"ref": ident()})),
        ]},
        "DisclosureRequest": strict(&["purpose", "case"], json!({
            "subject": reference("Subject"), "purpose": s("string"), "case": ident(),
            "products": {"type": "array", "items": ident()},
        })),
        "Disclosure": object(&["disclosure_id", "audit_seq", "audit_leaf_hash", "policy_version", "recipient", "payload"], json!({
            "disclosure_id": s("string"), "audit_seq": s("integer"), "audit_leaf_hash": s("string"),
            "audit_receipt": {"type": "string", "description": "the gateway's signed receipt (C2SP signed note): this record is leaf audit_seq and will be in a checkpoint by its due time"},
            "policy_version": s("string"), "recipient": s("string"),
            "payload": {"type": "string", "description": "ASCII-armored age file; decrypted, the JSON answer"},
        })),
        "CheckRequest": strict(&["subject", "purpose"], json!({"subject": strict(&["bsn"], json!({"bsn": bsn})), "purpose": s("string")})),
        "EvaluateRequest": strict(&["approach", "epoch", "blinded"], json!({
            "approach": s("string"),
            "epoch": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            "blinded": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        })),
        "Evaluation": strict(&["evaluated", "proof"], json!({
            "evaluated": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "proof": {"type": "string", "pattern": "^[0-9a-f]{128}$"},
        })),
        "Check": object(&["known", "approaches", "across", "complete", "contact_partner", "audit_seq"], json!({
            "known": s("boolean"), "approaches": {"type": "array", "items": s("string")},
            "across": {"type": "array", "items": object(&["approach", "name", "status"], json!({
                "approach": s("string"), "name": s("string"),
                "status": {"type": "string", "enum": ["known", "not-known", "unavailable"]},
                "contact": s("string"),
            }))},
            "complete": {"type": "boolean", "description": "false when an approach did not answer: then known = false is not the whole answer"},
            "contact_partner": nullable("string"), "audit_seq": s("integer"),
            "audit_receipt": s("string"),
        })),
        "Aggregate": object(&["disclosure_id", "audit_seq", "audit_leaf_hash", "view", "period", "policy_version", "recipient", "payload"], json!({
            "disclosure_id": s("string"), "audit_seq": s("integer"), "audit_leaf_hash": s("string"),
            "audit_receipt": nullable("string"),
            "view": s("string"), "period": s("string"), "policy_version": s("string"),
            "recipient": s("string"), "payload": s("string"),
        })),
        "LogEntry": object(&["seq", "leaf_hash", "id", "at", "trace_id", "kind", "partner", "products", "policy_version", "outcome"], json!({
            "seq": s("integer"), "leaf_hash": s("string"), "purpose_name": nullable("string"),
            "id": s("string"), "at": s("string"), "trace_id": s("string"),
            "kind": {"enum": crate::log::entry::Kind::ALL.map(crate::log::entry::Kind::as_str)},
            "partner": s("string"), "staff_id": nullable("string"), "role": nullable("string"),
            "processing_activity": nullable("string"), "case_id": nullable("string"),
            "data_subject": nullable("string"), "products": s("object"), "policy_version": s("string"),
            "ciphertext_sha256": nullable("string"),
            "outcome": {"enum": ["answered", "partly-unavailable", "refused"]}, "problem": nullable("string"),
        })),
        "Search": object(&["items", "next_after"], json!({
            "items": {"type": "array", "items": reference("LogEntry")}, "next_after": nullable("integer"),
        })),
        "SubjectReport": object(&["data_subject", "confidential_purposes_left_out", "disclosures"], json!({
            "data_subject": s("string"), "proof": s("object"),
            "confidential_purposes_left_out": {"type": "array", "items": s("string")},
            "confidential_grounds": {"type": "object", "additionalProperties": s("string")},
            "disclosures": {"type": "array", "items": object(&["seq", "at", "to", "kind", "data_received", "legal_grounds", "policy_version", "version_known"], json!({
                "seq": s("integer"), "at": s("string"), "to": s("string"), "role": nullable("string"),
                "purpose": nullable("string"), "purpose_name": nullable("string"), "kind": s("string"),
                "data_received": s("object"), "legal_grounds": s("object"),
                "policy_version": s("string"), "version_known": s("boolean"),
            }))},
        })),
        "Overview": object(&["weeks", "disclosures_by_partner", "disclosures_by_purpose", "refusals_by_partner", "refusals_by_purpose", "refusals_by_type", "unavailable_by_product", "unavailable_truncated"], {
            let series = json!({"type": "array", "items": object(&["key", "counts"], json!({
                "key": s("string"), "counts": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            }))});
            json!({
                "weeks": {"type": "array", "items": s("string")},
                "disclosures_by_partner": series, "disclosures_by_purpose": series,
                "refusals_by_partner": series, "refusals_by_purpose": series,
                "refusals_by_type": series, "unavailable_by_product": series,
                "unavailable_truncated": s("boolean"),
                "notifications_overdue": {"type": "integer", "minimum": 0},
            })
        }),
        "InclusionProof": object(&["seq", "leaf_index", "leaf_hash", "tree_size", "root", "proof", "checkpoint"], json!({
            "seq": s("integer"), "leaf_index": s("integer"), "leaf_hash": s("string"),
            "tree_size": s("integer"), "root": s("string"), "proof": {"type": "array", "items": s("string")},
            "checkpoint": nullable("string"),
        })),
        "ConsistencyProof": object(&["from", "to", "from_root", "to_root", "proof"], json!({
            "from": s("integer"), "to": s("integer"), "from_root": s("string"), "to_root": s("string"),
            "proof": {"type": "array", "items": s("string")},
        })),
        "PolicyStatus": object(&["version", "covenant", "draft", "revoked_certificates"], json!({
            "version": s("string"), "draft": s("string"), "revoked_certificates": s("integer"),
            "covenant": object(&["id", "title"], json!({"id": s("string"), "title": s("string"), "version_label": nullable("string")})),
        })),
        "Draft": draft,
        "Versions": object(&["active", "versions"], json!({"active": s("string"), "versions": {"type": "array", "items": reference("Draft")}})),
        "Drafts": object(&["drafts"], json!({"drafts": {"type": "array", "items": reference("Draft")}})),
        "Simulation": object(&["draft", "version", "against", "days", "report"], json!({
            "draft": s("string"), "version": s("string"), "against": s("string"), "days": s("integer"),
            "report": s("object"), "static": s("object"), "truncated": s("boolean"), "audit_seq": s("integer"),
        })),
        "SearchRequest": search_request,
        "SubjectReportRequest": subject_report_request,
        "SimulateRequest": strict(&[], json!({"days": {"type": "integer", "minimum": 1, "maximum": 366}})),
        "SignatureRequest": strict(&["note"], json!({"note": {"type": "string", "maxLength": 4096}})),
        "Signature": object(&["draft", "partner", "audit_seq"], json!({
            "draft": s("string"), "partner": s("string"), "expires": nullable("string"),
            "withdrawn": s("boolean"), "audit_seq": s("integer"),
        })),
    })
}

/// The problem responses every operation can meet (authentication, rate limits, bounds).
fn problem_responses() -> Map<String, Value> {
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for r in Refusal::examples() {
        by_status
            .entry(status(&r).as_u16())
            .or_default()
            .push(r.slug().to_owned());
    }
    let mut out = Map::new();
    for (code, mut slugs) in by_status {
        slugs.sort();
        slugs.dedup();
        out.insert(
            code.to_string(),
            json!({
                "description": format!("refused: {}", slugs.join(", ")),
                "content": {"application/problem+json": {"schema": reference("Problem")}},
            }),
        );
    }
    out
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn path_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}
fn query_param(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

fn operation(method: &str, path: &str) -> (Vec<Value>, Option<Value>, (u16, Value)) {
    let ok = |schema: &str| {
        (
            200u16,
            json!({"description": "answered", "content": json_content(reference(schema))}),
        )
    };
    let created = |schema: &str| {
        (
            201u16,
            json!({"description": "created", "content": json_content(reference(schema))}),
        )
    };
    let body =
        |schema: &str| Some(json!({"required": true, "content": json_content(reference(schema))}));
    let id = || path_param("id", ident());
    match (method, path) {
        ("post", "/v1/cases") => (vec![], body("NewCase"), created("Case")),
        ("get", "/v1/cases/{id}") => (vec![id()], None, ok("Case")),
        ("patch", "/v1/cases/{id}") => (vec![id()], body("CasePatch"), ok("Case")),
        ("put", "/v1/records/{product}/{subject_ref}") => (
            vec![
                path_param("product", ident()),
                path_param("subject_ref", ident()),
            ],
            body("Records"),
            ok("Deposited"),
        ),
        ("post", "/v1/disclosures") => (vec![], body("DisclosureRequest"), ok("Disclosure")),
        ("post", "/v1/checks") => (vec![], body("CheckRequest"), ok("Check")),
        ("get", "/v1/checks/set") => (
            vec![query_param("approach", s("string"))],
            None,
            (
                200,
                json!({"description": "iPGA-R's published set for that approach (a signed note)", "content": {"text/plain": {"schema": s("string")}}}),
            ),
        ),
        ("post", "/v1/checks/evaluate") => (vec![], body("EvaluateRequest"), ok("Evaluation")),
        ("get", "/v1/aggregates/{view}") => {
            (vec![path_param("view", ident())], None, ok("Aggregate"))
        }
        ("get", "/v1/audit/disclosures") => (
            [
                "partner", "staff_id", "purpose", "case", "product", "outcome", "kind", "from",
                "to",
            ]
            .iter()
            .map(|n| query_param(n, s("string")))
            .chain([
                query_param("after", s("integer")),
                query_param(
                    "limit",
                    json!({"type": "integer", "minimum": 1, "maximum": 1000}),
                ),
                query_param("format", json!({"enum": ["json", "csv"]})),
            ])
            .collect(),
            None,
            (
                200,
                json!({"description": "a page of entries", "content": {
                    "application/json": {"schema": reference("Search")},
                    "text/csv": {"schema": s("string")},
                }}),
            ),
        ),
        ("post", "/v1/audit/disclosures/search") => (
            vec![],
            body("SearchRequest"),
            (
                200,
                json!({"description": "a page of entries", "content": {
                    "application/json": {"schema": reference("Search")},
                    "text/csv": {"schema": s("string")},
                }}),
            ),
        ),
        ("post", "/v1/audit/subjects/report") => {
            (vec![], body("SubjectReportRequest"), ok("SubjectReport"))
        }
        ("get", "/v1/audit/overview") => (
            vec![query_param(
                "weeks",
                json!({"type": "integer", "minimum": 1, "maximum": 104}),
            )],
            None,
            ok("Overview"),
        ),
        ("get", "/v1/audit/checkpoint") => (
            vec![],
            None,
            (
                200,
                json!({"description": "a C2SP signed note", "content": {"text/plain": {"schema": s("string")}}}),
            ),
        ),
        ("get", "/v1/audit/proof/{seq}") => (
            vec![
                path_param("seq", s("integer")),
                query_param("size", s("integer")),
            ],
            None,
            ok("InclusionProof"),
        ),
        ("get", "/v1/audit/consistency") => (
            vec![
                json!({"name": "from", "in": "query", "required": true, "schema": s("integer")}),
                json!({"name": "to", "in": "query", "required": true, "schema": s("integer")}),
            ],
            None,
            ok("ConsistencyProof"),
        ),
        ("get", "/v1/policy") => (vec![], None, ok("PolicyStatus")),
        ("get", "/v1/policy/versions") => (vec![], None, ok("Versions")),
        ("post", "/v1/policy/versions/{id}/rollback") => (vec![id()], None, created("Draft")),
        ("post", "/v1/policy/drafts") => (
            vec![],
            Some(json!({"required": true, "content": {
                "application/toml": {"schema": s("string")},
                "text/plain": {"schema": s("string")},
            }})),
            created("Draft"),
        ),
        ("get", "/v1/policy/drafts") => (vec![], None, ok("Drafts")),
        ("get", "/v1/policy/drafts/{id}") => (vec![id()], None, ok("Draft")),
        ("post", "/v1/policy/drafts/{id}/simulate") => (
            vec![id()],
            Some(json!({"required": false, "content": json_content(reference("SimulateRequest"))})),
            ok("Simulation"),
        ),
        ("post", "/v1/policy/drafts/{id}/approve") => (vec![id()], None, ok("Draft")),
        ("post", "/v1/policy/drafts/{id}/activate") => (vec![id()], None, ok("Draft")),
        ("post", "/v1/policy/drafts/{id}/signatures") => (
            vec![id()],
            Some(json!({"required": true, "content": json_content(reference("SignatureRequest"))})),
            ok("Signature"),
        ),
        ("post", "/v1/policy/drafts/{id}/signatures/{partner}/withdraw") => (
            vec![id(), path_param("partner", ident())],
            None,
            ok("Signature"),
        ),
        ("get", "/v1/openapi.json") => (
            vec![],
            None,
            (
                200,
                json!({"description": "this document", "content": json_content(s("object"))}),
            ),
        ),
        _ => (vec![], None, (200, json!({"description": "answered"}))),
    }
}

/// The whole document, built once.
pub fn document() -> &'static Value {
    static DOC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(build);
    &DOC
}

fn build() -> Value {
    let problems = problem_responses();
    let mut paths = Map::new();
    for (method, path, op_id, summary) in OPERATIONS {
        let (params, body, (code, ok)) = operation(method, path);
        let mut responses = problems.clone();
        responses.insert(code.to_string(), ok);
        let mut op = json!({
            "operationId": op_id,
            "summary": summary,
            "parameters": params,
            "responses": responses,
        });
        if let (Some(b), Some(o)) = (body, op.as_object_mut()) {
            o.insert("requestBody".into(), b);
        }
        if *path == "/v1/openapi.json"
            && let Some(o) = op.as_object_mut()
        {
            // The document itself needs the connection's certificate, not a token.
            o.insert("security".into(), json!([{"mutualTLS": []}]));
        }
        if let Some(entry) = paths
            .entry((*path).to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            entry.insert((*method).to_owned(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "iPGA-R information-sharing gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The partner API: mutual TLS with a covenant partner's certificate, and per request a JWT of that partner's identity provider bound to the certificate (RFC 8705). Every refusal is an RFC 9457 problem whose `type` docs/problems.md explains; every answer that carries personal data, every change and every refusal is an entry of the tamper-evident log.",
        },
        "security": [{"mutualTLS": [], "bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "mutualTLS": {"type": "mutualTLS", "description": "a client certificate of the covenant CA, of a registered partner"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "ES256, EdDSA or RS256; iss = the certificate's partner, aud = the gateway id, lifetime at most 15 minutes, cnf.x5t#S256 = the certificate's thumbprint"},
            },
            "schemas": schemas(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_is_in_the_document_and_in_docs_problems_md() {
        let doc = document();
        let in_doc: Vec<String> =
            doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().trim_start_matches(TYPE_BASE).to_owned())
                .collect();
        let mut from_enum: Vec<String> = Refusal::examples()
            .iter()
            .map(|r| r.slug().to_owned())
            .collect();
        from_enum.sort();
        from_enum.dedup();
        assert_eq!(in_doc, from_enum);
        let md = include_str!("../../../docs/problems.md");
        let mut in_md: Vec<String> = md
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(slug, _)| slug.to_owned()))
            .collect();
        in_md.sort();
        in_md.dedup();
        assert_eq!(
            in_md, from_enum,
            "docs/problems.md lists exactly the problem types"
        );
    }

    #[test]
    fn the_document_has_exactly_the_routes_of_the_router() {
        let mut documented: Vec<(&str, &str)> =
            OPERATIONS.iter().map(|(m, p, _, _)| (*m, *p)).collect();
        let mut routed = super::super::ROUTES.to_vec();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
        let mut ids: Vec<&str> = OPERATIONS.iter().map(|o| o.2).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), OPERATIONS.len(), "operation ids are unique");
    }

    /// Issue 28: no BSN in any URL. Every parameter of every operation, in its path or its
    /// query: none is named for a person, and none has the BSN's form.
    #[test]
    fn no_path_or_query_parameter_can_carry_a_bsn() {
        let doc = document();
        let mut seen = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            assert!(!path.contains("bsn"), "{path}");
            for (method, op) in ops.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    seen += 1;
                    let name = p["name"].as_str().unwrap();
                    let schema = p["schema"].to_string();
                    assert!(
                        !["bsn", "subject", "burgerservicenummer", "person"].contains(&name),
                        "{method} {path}: parameter `{name}`"
                    );
                    assert!(
                        !schema.contains("[0-9]{9}") && !schema.contains("11-proef"),
                        "{method} {path}: parameter `{name}` has a BSN's form: {schema}"
                    );
                }
            }
        }
        assert!(seen > 10, "the walk reached the parameters ({seen})");
        // The person's search and report take the BSN in their bodies.
        for path in ["/v1/audit/disclosures/search", "/v1/audit/subjects/report"] {
            assert!(
                doc["paths"][path]["post"]["requestBody"].is_object(),
                "{path}"
            );
        }
    }

    #[test]
    fn every_status_a_refusal_has_is_a_documented_response() {
        let doc = document();
        for r in Refusal::examples() {
            let code = status(&r).as_u16().to_string();
            assert!(
                doc["paths"]["/v1/disclosures"]["post"]["responses"]
                    .get(&code)
                    .is_some(),
                "{code}"
            );
        }
    }
}
