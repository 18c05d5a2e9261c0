//! The authorization matrix (issue 41): for every route that names a case, every role that may
//! use it, the requester's standing towards the case and the case's status, the answer the
//! covenant gives. Generated from the covenant alone, never written by hand: `gateway policy
//! access` prints it, docs/api.md shows it (a test keeps the two equal), and the matrix test in
//! `tests/e2e/matrix.rs` walks every cell through the API on SQLite and PostgreSQL.
//!
//! The rule it states: whoever has no standing in a case meets a case that does not exist,
//! before any check of subject, status or transition.

use policy::{CaseStatus, Covenant, Level, PurposeRef, Relation, RoleRef};
use std::fmt::Write as _;

/// A route that names a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/cases/{id}`.
    ReadCase,
    /// `PATCH /v1/cases/{id}` with a change of a case field (`notification_date`).
    ChangeCase,
    /// `POST /v1/disclosures` for a case-level purpose, the subject given as the case's own.
    Disclose(PurposeRef),
}

/// The requester's standing towards the case asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standing {
    /// The case's own regisseur (the person appointed).
    OwnRegisseur,
    /// Its partner is on the case's UVO (and is not the regisseur's partner).
    Team,
    /// Its partner is neither on the UVO nor the regisseur's: no role in this case, perhaps a
    /// role in another.
    Outside,
    /// No case has the id asked for.
    NoSuchCase,
}

impl Standing {
    /// Every standing, in the matrix's order.
    pub const ALL: [Standing; 4] = [
        Standing::OwnRegisseur,
        Standing::Team,
        Standing::Outside,
        Standing::NoSuchCase,
    ];

    /// Its name in the matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::OwnRegisseur => "own regisseur",
            Standing::Team => "on the UVO",
            Standing::Outside => "no role in it",
            Standing::NoSuchCase => "no such case",
        }
    }
}

/// The answer a cell expects: its HTTP status and problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 (a disclosure, the case, the changed case).
    Answered,
    /// 404 `case-not-found`: the same bytes as for an id that does not exist.
    CaseNotFound,
    /// 403 `case-permission`: none of the requester's roles may do this on the register.
    CasePermission,
    /// 403 `purpose-role`: the role may not use the purpose (before any lookup).
    PurposeRole,
    /// 409 `purpose-case-status`: not in the case's current status.
    PurposeCaseStatus,
    /// 403 `purpose-relation`: the purpose's relation does not hold.
    PurposeRelation,
}

impl Answer {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Answer::Answered => 200,
            Answer::CaseNotFound => 404,
            Answer::PurposeCaseStatus => 409,
            _ => 403,
        }
    }

    /// The problem type's slug (`None` for an answer).
    pub fn slug(self) -> Option<&'static str> {
        match self {
            Answer::Answered => None,
            Answer::CaseNotFound => Some("case-not-found"),
            Answer::CasePermission => Some("case-permission"),
            Answer::PurposeRole => Some("purpose-role"),
            Answer::PurposeCaseStatus => Some("purpose-case-status"),
            Answer::PurposeRelation => Some("purpose-relation"),
        }
    }

    /// Short form for the tables.
    fn short(self) -> &'static str {
        match self {
            Answer::Answered => "200",
            Answer::CaseNotFound => "404",
            Answer::CasePermission => "403 perm",
            Answer::PurposeRole => "403 role",
            Answer::PurposeCaseStatus => "409 status",
            Answer::PurposeRelation => "403 rel",
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The route.
    pub route: Route,
    /// The requester's role.
    pub role: RoleRef,
    /// Its standing towards the case.
    pub standing: Standing,
    /// The case's status (`None` for [`Standing::NoSuchCase`]).
    pub status: Option<CaseStatus>,
    /// What the covenant answers.
    pub answer: Answer,
}

/// Whether a case in `status` can have a regisseur and a UVO: from its inclusion on (a case
/// gets its team when the Regieoverleg includes it).
pub fn has_team(status: CaseStatus) -> bool {
    !matches!(
        status,
        CaseStatus::Melding | CaseStatus::Duiding | CaseStatus::NietOpgenomen
    )
}

/// Every route that names a case, for this covenant.
pub fn routes(c: &Covenant) -> Vec<Route> {
    let mut out = vec![Route::ReadCase, Route::ChangeCase];
    out.extend(
        c.purposes
            .iter()
            .enumerate()
            .filter(|(_, p)| p.level == Level::Case)
            .filter_map(|(i, _)| {
                u16::try_from(i)
                    .ok()
                    .map(|i| Route::Disclose(PurposeRef(i)))
            }),
    );
    out
}

/// The whole matrix for this covenant: every route, role, standing that can occur and status.
pub fn matrix(c: &Covenant) -> Vec<Cell> {
    let mut cells = Vec::new();
    for route in routes(c) {
        for (i, _) in c.roles.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { continue };
            let role = RoleRef(i);
            for standing in Standing::ALL {
                if standing == Standing::OwnRegisseur && Some(role) != c.governance.regisseur_role {
                    continue;
                }
                if standing == Standing::NoSuchCase {
                    let answer = answer(c, route, role, standing, CaseStatus::INITIAL);
                    cells.push(Cell {
                        route,
                        role,
                        standing,
                        status: None,
                        answer,
                    });
                    continue;
                }
                for status in CaseStatus::ALL.iter().copied() {
                    if standing != Standing::Outside && !has_team(status) {
                        continue;
                    }
                    let answer = answer(c, route, role, standing, status);
                    cells.push(Cell {
                        route,
                        role,
                        standing,
                        status: Some(status),
                        answer,
                    });
                }
            }
        }
    }
    cells
}

/// The covenant's answer for one cell. This is the specification the services are tested
/// against, written from the covenant's declarations: which roles a route or purpose admits
/// (checked before any lookup), then whether the requester may know of the case at all, then
/// the purpose's statuses and relation.
pub fn answer(
    c: &Covenant,
    route: Route,
    role: RoleRef,
    standing: Standing,
    status: CaseStatus,
) -> Answer {
    let reg = &c.case_register;
    let on = |set: &[bool]| set.get(role.index()).copied().unwrap_or(false);
    // A role in this case, or a role that reads the whole register.
    let in_case = matches!(standing, Standing::OwnRegisseur | Standing::Team);
    let knows = standing != Standing::NoSuchCase && (in_case || reg.may_read_classification(role));
    match route {
        Route::ReadCase => {
            if !reg.may_read(role) {
                Answer::CasePermission
            } else if !knows {
                Answer::CaseNotFound
            } else {
                Answer::Answered
            }
        }
        Route::ChangeCase => {
            let changes_something = reg.may_update(role)
                || reg.appoint_regisseur.by(role)
                || reg.compose_uvo.by(role)
                || reg.transitions.iter().any(|(_, _, roles)| on(roles));
            if !changes_something {
                Answer::CasePermission
            } else if !knows {
                Answer::CaseNotFound
            } else if !reg.may_update(role) {
                Answer::CasePermission
            } else {
                Answer::Answered
            }
        }
        Route::Disclose(p) => {
            let Some(purpose) = c.purposes.get(p.index()) else {
                return Answer::PurposeRole;
            };
            if !on(&purpose.roles) {
                return Answer::PurposeRole;
            }
            if standing == Standing::NoSuchCase {
                return Answer::CaseNotFound;
            }
            let relation_holds = match purpose.relation {
                Relation::None => true,
                Relation::Voorportaal => Some(role) == c.governance.voorportaal_role,
                Relation::IsRegisseur => standing == Standing::OwnRegisseur,
                Relation::OnCase => in_case,
            };
            if !knows && !relation_holds {
                Answer::CaseNotFound
            } else if !purpose.case_status.contains(&status) {
                Answer::PurposeCaseStatus
            } else if !relation_holds {
                Answer::PurposeRelation
            } else {
                Answer::Answered
            }
        }
    }
}

/// The route's name in the tables.
pub fn route_name(c: &Covenant, route: Route) -> String {
    match route {
        Route::ReadCase => "`GET /v1/cases/{id}`".to_owned(),
        Route::ChangeCase => "`PATCH /v1/cases/{id}` (a case field)".to_owned(),
        Route::Disclose(p) => format!(
            "`POST /v1/disclosures`, purpose `{}`",
            c.purposes.get(p.index()).map_or("?", |p| p.id.as_str())
        ),
    }
}

/// The matrix as Markdown: one table per route, a row per role and standing, a column per
/// status. A role the route does not admit at all is one row (`any`), since it is refused
/// before anything about the case is looked up.
pub fn markdown(c: &Covenant) -> String {
    let cells = matrix(c);
    let mut out = String::new();
    let statuses: Vec<&str> = CaseStatus::ALL.iter().map(|s| s.as_str()).collect();
    for route in routes(c) {
        let _ = writeln!(out, "#### {}\n", route_name(c, route));
        let _ = writeln!(
            out,
            "| role | standing | no such case | {} |",
            statuses.join(" | ")
        );
        let _ = writeln!(out, "|---|---|---|{}", "---|".repeat(statuses.len()));
        for (i, r) in c.roles.iter().enumerate() {
            let Ok(i) = u16::try_from(i) else { continue };
            let role = RoleRef(i);
            let of_role: Vec<&Cell> = cells
                .iter()
                .filter(|x| x.route == route && x.role == role)
                .collect();
            let missing = of_role
                .iter()
                .find(|x| x.standing == Standing::NoSuchCase)
                .map(|x| x.answer);
            // Refused before the lookup, the same in every cell: one row.
            if let Some(first) = of_role.first()
                && of_role.iter().all(|x| x.answer == first.answer)
                && first.answer != Answer::Answered
                && first.answer != Answer::CaseNotFound
            {
                let _ = writeln!(
                    out,
                    "| `{}` | any | {} |",
                    r.id,
                    vec![first.answer.short(); statuses.len() + 1].join(" | ")
                );
                continue;
            }
            for standing in Standing::ALL {
                if standing == Standing::NoSuchCase
                    || !of_role.iter().any(|x| x.standing == standing)
                {
                    continue;
                }
                let row: Vec<&str> = CaseStatus::ALL
                    .iter()
                    .map(|s| {
                        of_role
                            .iter()
                            .find(|x| x.standing == standing && x.status == Some(*s))
                            .map_or("–", |x| x.answer.short())
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    r.id,
                    standing.as_str(),
                    missing.map_or("–", Answer::short),
                    row.join(" | ")
                );
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covenant() -> policy::CompiledCovenant {
        policy::compile_toml(include_str!("../../../ops/covenant/ipga-r.toml")).unwrap()
    }

    #[test]
    fn no_standing_is_no_case_in_every_route() {
        let cc = covenant();
        let c = cc.covenant();
        let cells = matrix(c);
        assert!(cells.len() > 500, "{}", cells.len());
        for cell in &cells {
            let missing = answer(
                c,
                cell.route,
                cell.role,
                Standing::NoSuchCase,
                CaseStatus::INITIAL,
            );
            // Whoever does not know of the case gets what a missing case gets, whatever its
            // status; and a refusal before the lookup does not depend on the case either.
            if missing != Answer::CaseNotFound {
                assert_eq!(cell.answer, missing, "{cell:?}");
            }
            if cell.answer == Answer::CaseNotFound {
                assert_ne!(cell.standing, Standing::OwnRegisseur, "{cell:?}");
            }
        }
    }

    #[test]
    fn the_example_covenant_reads_as_its_comments_say() {
        let cc = covenant();
        let c = cc.covenant();
        let role = |id: &str| c.role(id).unwrap();
        let regie = Route::Disclose(c.purpose("regie").unwrap());
        // The own regisseur gets the dossier from inclusion on; another regisseur never learns
        // the case exists.
        assert_eq!(
            answer(
                c,
                regie,
                role("regisseur"),
                Standing::OwnRegisseur,
                CaseStatus::Plan
            ),
            Answer::Answered
        );
        assert_eq!(
            answer(
                c,
                regie,
                role("regisseur"),
                Standing::Outside,
                CaseStatus::Plan
            ),
            Answer::CaseNotFound
        );
        assert_eq!(
            answer(
                c,
                regie,
                role("regisseur"),
                Standing::Team,
                CaseStatus::Plan
            ),
            Answer::PurposeRelation
        );
        assert_eq!(
            answer(
                c,
                regie,
                role("regisseur"),
                Standing::OwnRegisseur,
                CaseStatus::Afgesloten
            ),
            Answer::PurposeCaseStatus
        );
        // A change by someone outside the case meets no case; an interventiepleger on the UVO
        // may read it but not change it.
        assert_eq!(
            answer(
                c,
                Route::ChangeCase,
                role("regisseur"),
                Standing::Outside,
                CaseStatus::Opgenomen
            ),
            Answer::CaseNotFound
        );
        assert_eq!(
            answer(
                c,
                Route::ReadCase,
                role("interventiepleger"),
                Standing::Team,
                CaseStatus::Plan
            ),
            Answer::Answered
        );
        assert_eq!(
            answer(
                c,
                Route::ChangeCase,
                role("interventiepleger"),
                Standing::Team,
                CaseStatus::Plan
            ),
            Answer::CasePermission
        );
        // The ITAT-R reviews any case in `plan`, by the covenant's relation `none`.
        let toetsing = Route::Disclose(c.purpose("toetsing").unwrap());
        assert_eq!(
            answer(
                c,
                toetsing,
                role("itat-lid"),
                Standing::Outside,
                CaseStatus::Plan
            ),
            Answer::Answered
        );
        assert_eq!(
            answer(
                c,
                toetsing,
                role("regisseur"),
                Standing::OwnRegisseur,
                CaseStatus::Plan
            ),
            Answer::PurposeRole
        );
    }

    /// docs/api.md shows the matrix as this module generates it from the example covenant.
    #[test]
    fn the_docs_show_the_generated_matrix() {
        let cc = covenant();
        let generated = markdown(cc.covenant());
        let docs = include_str!("../../../docs/api.md");
        let begin = "<!-- access-matrix:begin (generated: gateway policy access ops/covenant/ipga-r.toml) -->\n";
        let end = "<!-- access-matrix:end -->";
        let start = docs
            .find(begin)
            .expect("docs/api.md has the matrix's begin marker")
            + begin.len();
        let stop = docs
            .find(end)
            .expect("docs/api.md has the matrix's end marker");
        assert!(
            docs.get(start..stop) == Some(generated.as_str()),
            "docs/api.md's matrix is stale: regenerate it with `gateway policy access \
             ops/covenant/ipga-r.toml` between the markers"
        );
    }
}
