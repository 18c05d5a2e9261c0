//! Purpose binding: whether a requester may use a purpose at all (role), and on this case
//! (status, relation). Pure: the covenant, the requester and the case in, a decision out. The
//! case register and disclosures both use it, so the relation is checked in one place.

use crate::auth::Requester;
use crate::refusal::Refusal;
use crate::store::CaseRow;
use policy::{Covenant, Level, PurposeRef, Relation, RoleRef};

/// A purpose the requester may use, and the role that allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The purpose.
    pub purpose: PurposeRef,
    /// The requester's role that may use it.
    pub role: RoleRef,
}

/// The requester's role for a case-level purpose (no case needed yet).
pub fn purpose_role(c: &Covenant, req: &Requester, purpose_id: &str) -> Result<Binding, Refusal> {
    let pref = c
        .purpose(purpose_id)
        .ok_or_else(|| Refusal::PurposeUnknown(super::clip(purpose_id, 64)))?;
    let purpose = c.purposes.get(pref.index()).ok_or(Refusal::Internal)?;
    if purpose.level == Level::Aggregate {
        return Err(Refusal::PurposeAggregateOnly(purpose.id.clone()));
    }
    let role = req
        .roles
        .iter()
        .copied()
        .find(|r| purpose.roles.get(r.index()).copied().unwrap_or(false))
        .ok_or_else(|| {
            let open: Vec<&str> = c
                .roles
                .iter()
                .zip(&purpose.roles)
                .filter(|(_, ok)| **ok)
                .map(|(r, _)| r.id.as_str())
                .collect();
            Refusal::PurposeRole(purpose.id.clone(), open.join(", "))
        })?;
    Ok(Binding {
        purpose: pref,
        role,
    })
}

/// Checks the case against a binding: its status and the requester's relation to it. Returns
/// what satisfied the relation (`regisseur`, `uvo`, `role` or `none`), for the log.
pub fn case_binding(
    c: &Covenant,
    req: &Requester,
    b: Binding,
    case: &CaseRow,
) -> Result<&'static str, Refusal> {
    let purpose = c.purposes.get(b.purpose.index()).ok_or(Refusal::Internal)?;
    if !purpose.case_status.contains(&case.status) {
        return Err(Refusal::PurposeCaseStatus(
            purpose.id.clone(),
            case.status.to_string(),
        ));
    }
    relation(c, purpose.relation, req, Some(b.role), case).ok_or_else(|| {
        Refusal::PurposeRelation(
            purpose.id.clone(),
            match purpose.relation {
                Relation::IsRegisseur => "you are this case's own regisseur",
                Relation::OnCase => "your organisation is on this case's UVO",
                Relation::Voorportaal => "you work in the voorportaal",
                Relation::None => "nothing",
            },
        )
    })
}

/// Whether `relation` holds between the requester (acting in `role`) and the case, and what
/// made it hold. The voorportaal's role is the one the covenant names.
pub fn relation(
    c: &Covenant,
    relation: Relation,
    req: &Requester,
    role: Option<RoleRef>,
    case: &CaseRow,
) -> Option<&'static str> {
    let is_regisseur = case
        .regisseur
        .as_ref()
        .is_some_and(|r| r.partner == req.partner_id && r.staff_id == req.staff_id);
    let regisseur_partner = case
        .regisseur
        .as_ref()
        .is_some_and(|r| r.partner == req.partner_id);
    let on_uvo = case.uvo_partners.contains(&req.partner_id);
    match relation {
        Relation::None => Some("none"),
        Relation::IsRegisseur => is_regisseur.then_some("regisseur"),
        Relation::OnCase if on_uvo => Some("uvo"),
        Relation::OnCase => regisseur_partner.then_some("regisseur"),
        Relation::Voorportaal => {
            (role.is_some() && role == c.governance.voorportaal_role).then_some("role")
        }
    }
}

/// Whether the requester may know that `case` exists: a role that reads the whole register
/// (voorportaal, secretaris, the overleggen), or a role in the case (below). To everyone else a
/// case does not exist: every route answers them exactly as for an unknown id, before any other
/// check, so that no later refusal (a subject mismatch, a status) tells what the 404 hides.
pub fn may_know_of(c: &Covenant, req: &Requester, case: &CaseRow) -> bool {
    req.roles
        .iter()
        .any(|r| c.case_register.may_read_classification(*r))
        || has_role_in_case(c, req, case)
}

/// Whether the requester has a role in the case: its regisseur, or its partner on the UVO.
/// Roles that do not read the whole register see only such cases.
pub fn has_role_in_case(c: &Covenant, req: &Requester, case: &CaseRow) -> bool {
    relation(c, Relation::IsRegisseur, req, None, case).is_some()
        || relation(c, Relation::OnCase, req, None, case) == Some("uvo")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Regisseur;
    use policy::CaseStatus;

    fn covenant() -> policy::CompiledCovenant {
        policy::compile_toml(include_str!("../../../ops/covenant/ipga-r.toml")).unwrap()
    }

    fn requester(c: &Covenant, partner: &str, staff: &str, roles: &[&str]) -> Requester {
        Requester {
            partner: c.partner(partner).unwrap(),
            partner_id: partner.into(),
            staff_id: staff.into(),
            roles: roles.iter().map(|r| c.role(r).unwrap()).collect(),
            expires: 0,
        }
    }

    fn case(status: CaseStatus) -> CaseRow {
        CaseRow {
            id: "case-1".into(),
            subject_ref: "subj-1".into(),
            subject_pseudonym: "p".into(),
            subject_sealed: vec![],
            status,
            risk_group: None,
            ideology: None,
            regisseur: Some(Regisseur {
                partner: "rn".into(),
                staff_id: "reg.1".into(),
            }),
            uvo_partners: vec!["politie".into()],
            signal_date: None,
            decision_date: None,
            notification_date: None,
            notification_to: None,
            created_at: 0,
            updated_at: 0,
            version: 3,
            sealed_key: None,
            pseudonym_key: None,
        }
    }

    #[test]
    fn the_regisseur_binds_regie_and_another_regisseur_does_not() {
        let cc = covenant();
        let c = cc.covenant();
        let own = requester(c, "rn", "reg.1", &["regisseur"]);
        let b = purpose_role(c, &own, "regie").unwrap();
        assert_eq!(
            case_binding(c, &own, b, &case(CaseStatus::Opgenomen)),
            Ok("regisseur")
        );
        let other = requester(c, "rn", "reg.2", &["regisseur"]);
        assert!(matches!(
            case_binding(c, &other, b, &case(CaseStatus::Opgenomen)),
            Err(Refusal::PurposeRelation(..))
        ));
        // The status binds too.
        assert!(matches!(
            case_binding(c, &own, b, &case(CaseStatus::Melding)),
            Err(Refusal::PurposeCaseStatus(..))
        ));
    }

    #[test]
    fn roles_and_purposes() {
        let cc = covenant();
        let c = cc.covenant();
        let vp = requester(c, "politie", "vp.1", &["voorportaal"]);
        assert!(matches!(
            purpose_role(c, &vp, "regie"),
            Err(Refusal::PurposeRole(..))
        ));
        assert!(matches!(
            purpose_role(c, &vp, "nope"),
            Err(Refusal::PurposeUnknown(_))
        ));
        assert!(matches!(
            purpose_role(c, &vp, "monitor"),
            Err(Refusal::PurposeAggregateOnly(_))
        ));
        let b = purpose_role(c, &vp, "duiding").unwrap();
        assert_eq!(
            case_binding(c, &vp, b, &case(CaseStatus::Duiding)),
            Ok("role")
        );
    }

    #[test]
    fn a_role_in_the_case() {
        let cc = covenant();
        let c = cc.covenant();
        assert!(has_role_in_case(
            c,
            &requester(c, "rn", "reg.1", &["regisseur"]),
            &case(CaseStatus::Plan)
        ));
        assert!(has_role_in_case(
            c,
            &requester(c, "politie", "x", &["interventiepleger"]),
            &case(CaseStatus::Plan)
        ));
        assert!(!has_role_in_case(
            c,
            &requester(c, "rn", "reg.2", &["regisseur"]),
            &case(CaseStatus::Plan)
        ));
        assert!(!has_role_in_case(
            c,
            &requester(c, "ggd", "g", &["interventiepleger"]),
            &case(CaseStatus::Plan)
        ));
    }
}
