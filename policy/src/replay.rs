//! Replaying past requests under a draft covenant: which decisions would have come out
//! differently, for whom, and how often. The gateway reads the requests from the disclosure log;
//! this module only compares decisions, so it is pure and testable on its own.
//!
//! What is replayed: the role and purpose binding (may this partner's role use this purpose at
//! all?) and every field decision of every product the request was answered from. What is not:
//! case status and relation (they depend on the case as it was then), and the values themselves
//! (the log holds none).

use crate::compile::{CompiledCovenant, OutcomeClass};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How many sequence numbers a report lists per group before it only counts.
pub const MAX_LISTED: usize = 100;

/// One past request as the disclosure log recorded it.
#[derive(Debug, Clone, Default)]
pub struct PastRequest {
    /// Sequence number in the log.
    pub seq: i64,
    /// Subject pseudonym, if the request named a case.
    pub subject: Option<String>,
    /// Requesting partner.
    pub partner: String,
    /// Role acted in (absent when refused before the role was known).
    pub role: Option<String>,
    /// Purpose named.
    pub purpose: Option<String>,
    /// Whether the request was answered (with or without unavailable sources).
    pub answered: bool,
    /// Problem type of a refusal.
    pub problem: Option<String>,
    /// Per product id, per field name: the recorded outcome and rule.
    pub fields: BTreeMap<String, BTreeMap<String, (OutcomeClass, String)>>,
}

/// A field whose outcome would change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldFlip {
    /// `product.field`.
    pub field: String,
    /// Recorded outcome.
    pub from: OutcomeClass,
    /// Outcome under the draft (`None`: the field is no longer in the catalogue).
    pub to: Option<OutcomeClass>,
    /// Rule that decided then.
    pub rule_before: String,
    /// Rule that would decide now.
    pub rule_after: Option<String>,
    /// Past requests affected.
    pub requests: usize,
    /// Distinct subjects affected.
    pub subjects: usize,
}

/// Changes for one receiving partner and purpose.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupChanges {
    /// Receiving partner.
    pub partner: String,
    /// Purpose.
    pub purpose: String,
    /// Past requests with at least one change.
    pub requests: usize,
    /// Distinct subjects of those requests.
    pub subjects: usize,
    /// Sequence numbers of those requests (the first [`MAX_LISTED`]).
    pub sequence_numbers: Vec<i64>,
    /// The field changes.
    pub fields: Vec<FieldFlip>,
}

/// A change in whether a role may use a purpose at all.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessChange {
    /// Requesting partner.
    pub partner: String,
    /// Role.
    pub role: String,
    /// Purpose.
    pub purpose: String,
    /// `answered` or `refused`.
    pub then: &'static str,
    /// `would be refused: …` or `would pass role and purpose binding`.
    pub now: String,
    /// Past requests affected.
    pub requests: usize,
    /// Distinct subjects.
    pub subjects: usize,
    /// Sequence numbers (the first [`MAX_LISTED`]).
    pub sequence_numbers: Vec<i64>,
}

/// What a draft would have changed in the replayed requests.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct SimulationReport {
    /// Requests read from the log.
    pub replayed: usize,
    /// Requests with at least one change.
    pub affected_requests: usize,
    /// Distinct subjects of those requests.
    pub affected_subjects: usize,
    /// Field changes per receiving partner and purpose.
    pub changes: Vec<GroupChanges>,
    /// Changes in role and purpose binding.
    pub access: Vec<AccessChange>,
}

/// Field, outcome then, outcome now, rule then, rule now.
type FlipKey = (
    String,
    OutcomeClass,
    Option<OutcomeClass>,
    String,
    Option<String>,
);

/// Requests and subjects touched by one kind of change. Requests arrive in log order, so a
/// request seen twice in a row is counted once.
#[derive(Default)]
struct Tally {
    requests: usize,
    last: Option<i64>,
    listed: Vec<i64>,
    subjects: BTreeSet<String>,
}

impl Tally {
    fn add(&mut self, r: &PastRequest) {
        if self.last == Some(r.seq) {
            return;
        }
        self.last = Some(r.seq);
        self.requests += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push(r.seq);
        }
        if let Some(s) = &r.subject {
            self.subjects.insert(s.clone());
        }
    }
}

/// Why the draft would refuse role and purpose binding, or `None` if it would pass.
fn binding_refusal(
    draft: &CompiledCovenant,
    partner: &str,
    role: &str,
    purpose: &str,
) -> Option<String> {
    let c = draft.covenant();
    let Some(p) = c.partner(partner) else {
        return Some(format!("partner {partner} is not in the draft"));
    };
    let Some(r) = c.role(role) else {
        return Some(format!("role {role} is not in the draft"));
    };
    let Some(u) = c.purpose(purpose) else {
        return Some(format!("purpose {purpose} is not in the draft"));
    };
    let held = c
        .roles
        .get(r.index())
        .and_then(|x| x.held_by.get(p.index()).copied())
        .unwrap_or(false);
    if !held {
        return Some(format!("{partner} may not hold role {role}"));
    }
    let open = c
        .purposes
        .get(u.index())
        .and_then(|x| x.roles.get(r.index()).copied())
        .unwrap_or(false);
    if !open {
        return Some(format!("purpose {purpose} is not open to role {role}"));
    }
    None
}

/// Replays `requests` under `draft`.
pub fn simulate(draft: &CompiledCovenant, requests: &[PastRequest]) -> SimulationReport {
    let mut sim = Simulation::new(draft);
    for r in requests {
        sim.add(r);
    }
    sim.finish()
}

/// A replay fed one request at a time (in log order), so that months of log need not be held in
/// memory at once.
pub struct Simulation<'a> {
    draft: &'a CompiledCovenant,
    replayed: usize,
    affected: Tally,
    groups: BTreeMap<(String, String), (Tally, BTreeMap<FlipKey, Tally>)>,
    access: BTreeMap<(String, String, String, &'static str, String), Tally>,
}

impl<'a> Simulation<'a> {
    /// An empty replay under `draft`.
    pub fn new(draft: &'a CompiledCovenant) -> Self {
        Simulation {
            draft,
            replayed: 0,
            affected: Tally::default(),
            groups: BTreeMap::new(),
            access: BTreeMap::new(),
        }
    }

    /// Replays one request.
    pub fn add(&mut self, r: &PastRequest) {
        self.replayed += 1;
        let (draft, c) = (self.draft, self.draft.covenant());
        let (Some(role), Some(purpose)) = (&r.role, &r.purpose) else {
            return;
        };
        let refusal = binding_refusal(draft, &r.partner, role, purpose);
        // Access: answered then but refused now, or refused then for role/purpose reasons but
        // admitted now.
        let access_change = match (&refusal, r.answered) {
            (Some(why), true) => Some(("answered", format!("would be refused: {why}"))),
            (None, false) if r.problem.as_deref() == Some("purpose-role") => Some((
                "refused",
                "would pass role and purpose binding (case status and relation are checked at request time)".to_owned(),
            )),
            _ => None,
        };
        if let Some((then, now)) = access_change {
            self.access
                .entry((r.partner.clone(), role.clone(), purpose.clone(), then, now))
                .or_default()
                .add(r);
            self.affected.add(r);
            return;
        }
        if !r.answered || refusal.is_some() {
            return;
        }
        let (Some(p), Some(ro), Some(u)) =
            (c.partner(&r.partner), c.role(role), c.purpose(purpose))
        else {
            return;
        };
        let mut changed = false;
        for (product, fields) in &r.fields {
            for (name, (from, rule_before)) in fields {
                let qualified = format!("{product}.{name}");
                let now = c.field(&qualified).map(|f| draft.decide(p, ro, u, f));
                let (to, rule_after) = match now {
                    Some(d) => (Some(d.class()), Some(d.rule_id.clone())),
                    None => (None, None),
                };
                if to == Some(*from) {
                    continue;
                }
                changed = true;
                let g = self
                    .groups
                    .entry((r.partner.clone(), purpose.clone()))
                    .or_default();
                g.0.add(r);
                g.1.entry((qualified, *from, to, rule_before.clone(), rule_after))
                    .or_default()
                    .add(r);
            }
        }
        if changed {
            self.affected.add(r);
        }
    }

    /// The report.
    pub fn finish(self) -> SimulationReport {
        SimulationReport {
            replayed: self.replayed,
            affected_requests: self.affected.requests,
            affected_subjects: self.affected.subjects.len(),
            changes: self
                .groups
                .into_iter()
                .map(|((partner, purpose), (t, flips))| GroupChanges {
                    partner,
                    purpose,
                    requests: t.requests,
                    subjects: t.subjects.len(),
                    sequence_numbers: t.listed,
                    fields: flips
                        .into_iter()
                        .map(
                            |((field, from, to, rule_before, rule_after), t)| FieldFlip {
                                field,
                                from,
                                to,
                                rule_before,
                                rule_after,
                                requests: t.requests,
                                subjects: t.subjects.len(),
                            },
                        )
                        .collect(),
                })
                .collect(),
            access: self
                .access
                .into_iter()
                .map(|((partner, role, purpose, then, now), t)| AccessChange {
                    partner,
                    role,
                    purpose,
                    then,
                    now,
                    requests: t.requests,
                    subjects: t.subjects.len(),
                    sequence_numbers: t.listed,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile_toml;

    const EXAMPLE: &str = include_str!("../../ops/covenant/ipga-r.toml");

    /// A `regie` request by the gemeente's regisseur as the active covenant answered it.
    fn past(active: &CompiledCovenant, seq: i64, subject: &str) -> PastRequest {
        let c = active.covenant();
        let (p, r, u) = (
            c.partner("oov").unwrap_or(crate::PartnerRef(0)),
            c.role("regisseur").unwrap_or(crate::RoleRef(0)),
            c.purpose("regie").unwrap_or(crate::PurposeRef(0)),
        );
        let mut fields: BTreeMap<String, BTreeMap<String, (OutcomeClass, String)>> =
            BTreeMap::new();
        for f in &c.fields {
            let (product, name) = f.qualified.split_once('.').unwrap_or(("", ""));
            let fr = c.field(&f.qualified).unwrap_or(crate::FieldRef(0));
            let d = active.decide(p, r, u, fr);
            fields
                .entry(product.to_owned())
                .or_default()
                .insert(name.to_owned(), (d.class(), d.rule_id.clone()));
        }
        PastRequest {
            seq,
            subject: Some(subject.into()),
            partner: "oov".into(),
            role: Some("regisseur".into()),
            purpose: Some("regie".into()),
            answered: true,
            problem: None,
            fields,
        }
    }

    #[test]
    fn the_same_covenant_changes_nothing() {
        let cc = compile_toml(EXAMPLE).unwrap();
        let reqs = vec![past(&cc, 1, "a"), past(&cc, 2, "b")];
        let r = simulate(&cc, &reqs);
        assert_eq!(r.replayed, 2);
        assert_eq!(r.affected_requests, 0);
        assert!(r.changes.is_empty() && r.access.is_empty());
    }

    #[test]
    fn a_field_withheld_by_the_draft_is_reported_with_its_requests_and_subjects() {
        let cc = compile_toml(EXAMPLE).unwrap();
        let c = cc.covenant();
        let p = c.partner("oov").unwrap();
        let r = c.role("regisseur").unwrap();
        let u = c.purpose("regie").unwrap();
        // A field the active covenant discloses (not withheld or omitted) to the regisseur.
        let (target, deciding) = c
            .fields
            .iter()
            .find_map(|f| {
                let d = cc.decide(p, r, u, c.field(&f.qualified).unwrap());
                (d.class() == OutcomeClass::Disclosed)
                    .then(|| (f.qualified.clone(), d.rule_id.clone()))
            })
            .unwrap();
        let rule = format!(
            "\n[[rule]]\nid = \"sim-test\"\nto = [\"oov\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"{target}\"]\naction = \"withhold\"\ncode = \"5.1.2.e\"\nground = \"test\"\noverrides = [\"{deciding}\"]\n"
        );
        let draft = match compile_toml(&format!("{EXAMPLE}{rule}")) {
            Ok(d) => d,
            Err(e) => panic!("{}", e.render("draft", &format!("{EXAMPLE}{rule}"))),
        };
        let reqs = vec![past(&cc, 1, "a"), past(&cc, 2, "b"), past(&cc, 3, "a")];
        let rep = simulate(&draft, &reqs);
        assert_eq!(rep.affected_requests, 3);
        assert_eq!(rep.affected_subjects, 2);
        assert_eq!(rep.changes.len(), 1);
        let g = &rep.changes[0];
        assert_eq!((g.partner.as_str(), g.purpose.as_str()), ("oov", "regie"));
        assert_eq!(g.sequence_numbers, vec![1, 2, 3]);
        assert_eq!(g.fields.len(), 1);
        assert_eq!(g.fields[0].field, target);
        assert_eq!(g.fields[0].from, OutcomeClass::Disclosed);
        assert_eq!(g.fields[0].to, Some(OutcomeClass::Withheld));
        assert_eq!(g.fields[0].rule_after.as_deref(), Some("sim-test"));
    }

    #[test]
    fn purpose_binding_changes_are_reported_both_ways() {
        let cc = compile_toml(EXAMPLE).unwrap();
        let mut gone = past(&cc, 7, "a");
        gone.purpose = Some("verdwenen-doel".into());
        let refused = PastRequest {
            seq: 8,
            partner: "oov".into(),
            role: Some("regisseur".into()),
            purpose: Some("regie".into()),
            problem: Some("purpose-role".into()),
            ..Default::default()
        };
        let rep = simulate(&cc, &[gone, refused]);
        assert_eq!(rep.access.len(), 2);
        assert!(
            rep.access
                .iter()
                .any(|a| a.then == "answered" && a.now.contains("not in the draft"))
        );
        assert!(
            rep.access
                .iter()
                .any(|a| a.then == "refused" && a.sequence_numbers == vec![8])
        );
    }
}

#[cfg(test)]
mod counting {
    use super::*;
    use crate::compile::compile_toml;

    #[test]
    fn a_request_with_several_flipped_fields_counts_once() {
        let src = include_str!("../../ops/covenant/ipga-r.toml");
        let cc = compile_toml(src).unwrap();
        let c = cc.covenant();
        let (p, r, u) = (
            c.partner("oov").unwrap(),
            c.role("regisseur").unwrap(),
            c.purpose("regie").unwrap(),
        );
        // Two fields the same rule discloses.
        let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &c.fields {
            let d = cc.decide(p, r, u, c.field(&f.qualified).unwrap());
            if d.class() == OutcomeClass::Disclosed {
                by_rule
                    .entry(d.rule_id.clone())
                    .or_default()
                    .push(f.qualified.clone());
            }
        }
        let (rule, fields) = by_rule.into_iter().find(|(_, f)| f.len() >= 2).unwrap();
        let draft_src = format!(
            "{src}\n[[rule]]\nid = \"two\"\nto = [\"oov\"]\nroles = [\"regisseur\"]\npurposes = [\"regie\"]\nfields = [\"{}\", \"{}\"]\naction = \"withhold\"\ncode = \"5.1.2.e\"\nground = \"t\"\noverrides = [\"{rule}\"]\n",
            fields[0], fields[1]
        );
        let draft = compile_toml(&draft_src).unwrap();
        let past = |seq: i64| {
            let mut m: BTreeMap<String, BTreeMap<String, (OutcomeClass, String)>> = BTreeMap::new();
            for f in &fields[..2] {
                let (prod, name) = f.rsplit_once('.').unwrap();
                m.entry(prod.into())
                    .or_default()
                    .insert(name.into(), (OutcomeClass::Disclosed, rule.clone()));
            }
            PastRequest {
                seq,
                subject: Some("s".into()),
                partner: "oov".into(),
                role: Some("regisseur".into()),
                purpose: Some("regie".into()),
                answered: true,
                problem: None,
                fields: m,
            }
        };
        let rep = simulate(&draft, &[past(1), past(2)]);
        assert_eq!(rep.affected_requests, 2);
        assert_eq!(rep.changes[0].requests, 2, "not one per field");
        assert_eq!(rep.changes[0].sequence_numbers, vec![1, 2]);
        assert_eq!(rep.changes[0].fields.len(), 2);
        assert!(rep.changes[0].fields.iter().all(|f| f.requests == 2));
    }
}
