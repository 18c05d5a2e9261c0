//! Read-outs of a compiled covenant for people: why a field is decided as it is, the whole
//! sharing matrix, and every decision that changes between two versions.

use crate::compile::{CompiledCovenant, DecisionRef, DecisionSource};
use crate::covenant::{ActionKind, FieldRef, PartnerRef, PurposeRef, RoleRef, RuleRef};
use crate::domain::{Category, Level};
use crate::transform::Audience;
use std::collections::{BTreeMap, BTreeSet};

/// Why a rule that covers a field did not decide it for an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyNot {
    /// The receiving partner is not in the rule's `to` (or is in `except_to`).
    PartnerNotCovered,
    /// The requester's role is not in the rule's `roles`.
    RoleNotCovered,
    /// The purpose is not in the rule's `purposes`.
    PurposeNotCovered,
    /// The deciding rule overrides it.
    OverriddenBy(RuleRef),
    /// Same outcome as the deciding rule, which stands earlier in the file.
    SameOutcomeAs(RuleRef),
    /// The combination itself is not permitted; no rule applies.
    NotPermitted(String),
}

/// The decision for one field and the fate of every other rule that covers it.
#[derive(Debug, Clone)]
pub struct FieldExplanation {
    /// The field.
    pub field: FieldRef,
    /// Its decision.
    pub decision: DecisionRef,
    /// Other rules covering this field's data, and why they did not decide.
    pub others: Vec<(RuleRef, WhyNot)>,
}

impl CompiledCovenant {
    /// Explains the decision for one field.
    pub fn explain(&self, a: Audience, field: FieldRef) -> FieldExplanation {
        let c = self.covenant();
        let decision = self.decision_ref(a.partner, a.role, a.purpose, field);
        let decider = match self.decision(decision).source {
            DecisionSource::Rule(r) => Some(r),
            _ => None,
        };
        let unreachable = c.unreachable_reason(a.partner, a.role, a.purpose);
        let mut others = Vec::new();
        for (i, rule) in c.rules.iter().enumerate() {
            let rref = RuleRef(i as u16);
            if Some(rref) == decider || !rule.fields.get(field.index()).copied().unwrap_or(false) {
                continue;
            }
            let why = if let Some(reason) = &unreachable {
                WhyNot::NotPermitted(reason.clone())
            } else if !rule.to.get(a.partner.index()).copied().unwrap_or(false) {
                WhyNot::PartnerNotCovered
            } else if !rule.roles.get(a.role.index()).copied().unwrap_or(false) {
                WhyNot::RoleNotCovered
            } else if !rule
                .purposes
                .get(a.purpose.index())
                .copied()
                .unwrap_or(false)
            {
                WhyNot::PurposeNotCovered
            } else if let Some(d) = decider.filter(|d| self.overrides(*d, rref)) {
                WhyNot::OverriddenBy(d)
            } else if let Some(d) = decider {
                WhyNot::SameOutcomeAs(d)
            } else {
                continue;
            };
            others.push((rref, why));
        }
        FieldExplanation {
            field,
            decision,
            others,
        }
    }
}

/// One cell of the sharing matrix: what one partner receives of one category for one purpose.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatrixCell {
    /// Receiving partner id.
    pub partner: String,
    /// Purpose id.
    pub purpose: String,
    /// Data category.
    pub category: Category,
    /// How many (role, field) combinations end in each action.
    pub actions: BTreeMap<ActionKind, usize>,
    /// Rules that decide them (`default-deny` for uncovered fields).
    pub rules: BTreeSet<String>,
}

impl MatrixCell {
    /// The actions in one word each, most permissive first, e.g. `disclose+withhold`.
    pub fn summary(&self) -> String {
        self.actions
            .keys()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }
}

impl CompiledCovenant {
    /// The sharing matrix: receiving partner x case-level purpose x category, over the roles
    /// the partner may hold for that purpose. Combinations with no such role are left out.
    pub fn matrix(&self) -> Vec<MatrixCell> {
        let c = self.covenant();
        let mut cells = Vec::new();
        for (pi, partner) in c.partners.iter().enumerate() {
            let p = PartnerRef(pi as u16);
            for (ui, purpose) in c.purposes.iter().enumerate() {
                let u = PurposeRef(ui as u16);
                if purpose.level != Level::Case {
                    continue;
                }
                let roles: Vec<RoleRef> = (0..c.roles.len())
                    .map(|r| RoleRef(r as u16))
                    .filter(|r| c.reachable(p, *r, u))
                    .collect();
                if roles.is_empty() {
                    continue;
                }
                for cat in Category::ALL {
                    let mut cell = MatrixCell {
                        partner: partner.id.clone(),
                        purpose: purpose.id.clone(),
                        category: *cat,
                        actions: BTreeMap::new(),
                        rules: BTreeSet::new(),
                    };
                    for (fi, field) in c.fields.iter().enumerate() {
                        if field.category != *cat {
                            continue;
                        }
                        for r in &roles {
                            let d = self.decide(p, *r, u, FieldRef(fi as u16));
                            *cell.actions.entry(d.action.kind()).or_default() += 1;
                            cell.rules.insert(d.rule_id.clone());
                        }
                    }
                    if !cell.actions.is_empty() {
                        cells.push(cell);
                    }
                }
            }
        }
        cells
    }
}

/// One decision that differs between two covenant versions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct DecisionChange {
    /// Receiving partner id.
    pub partner: String,
    /// Purpose id.
    pub purpose: String,
    /// Role id.
    pub role: String,
    /// Qualified field.
    pub field: String,
    /// Before, e.g. `disclose [regie-basis]`; `None` where the combination did not exist.
    pub before: Option<String>,
    /// After.
    pub after: Option<String>,
}

fn describe(cc: &CompiledCovenant, p: &str, r: &str, u: &str, f: &str) -> Option<(bool, String)> {
    let c = cc.covenant();
    let (pr, rr, ur, fr) = (c.partner(p)?, c.role(r)?, c.purpose(u)?, c.field(f)?);
    let reachable = c.reachable(pr, rr, ur);
    let d = cc.decide(pr, rr, ur, fr);
    let mut s = format!("{} [{}", d.action.describe(), d.rule_id);
    if let Some(code) = &d.code {
        s.push_str(&format!(", code {code}"));
    }
    s.push(']');
    if d.action.kind() != ActionKind::Omit && !d.ground.is_empty() {
        s.push_str(&format!(" ground: {}", d.ground));
    }
    Some((reachable, s))
}

/// Every decision that changes from `old` to `new`, over the union of both covenants' partners,
/// roles, purposes and fields, sorted by partner, purpose, role and field. Combinations that are
/// not permitted in either version are left out.
pub fn diff(old: &CompiledCovenant, new: &CompiledCovenant) -> Vec<DecisionChange> {
    fn union<'a>(
        a: impl Iterator<Item = &'a String>,
        b: impl Iterator<Item = &'a String>,
    ) -> BTreeSet<&'a String> {
        a.chain(b).collect()
    }
    let (o, n) = (old.covenant(), new.covenant());
    let partners = union(
        o.partners.iter().map(|x| &x.id),
        n.partners.iter().map(|x| &x.id),
    );
    let roles = union(o.roles.iter().map(|x| &x.id), n.roles.iter().map(|x| &x.id));
    let purposes = union(
        o.purposes.iter().map(|x| &x.id),
        n.purposes.iter().map(|x| &x.id),
    );
    let fields = union(
        o.fields.iter().map(|x| &x.qualified),
        n.fields.iter().map(|x| &x.qualified),
    );
    let mut changes = Vec::new();
    for p in &partners {
        for u in &purposes {
            for r in &roles {
                for f in &fields {
                    let before = describe(old, p, r, u, f);
                    let after = describe(new, p, r, u, f);
                    let reachable =
                        before.as_ref().is_some_and(|b| b.0) || after.as_ref().is_some_and(|a| a.0);
                    let (before, after) = (before.map(|b| b.1), after.map(|a| a.1));
                    if reachable && before != after {
                        changes.push(DecisionChange {
                            partner: (*p).clone(),
                            purpose: (*u).clone(),
                            role: (*r).clone(),
                            field: (*f).clone(),
                            before,
                            after,
                        });
                    }
                }
            }
        }
    }
    changes
}

/// Changes to the partner registry between two versions: certificate identity (OIN, pinned
/// fingerprints), payload recipient and token keys, one readable line each. Keys compare by
/// content, so a rotated key file shows up here once the gateway has resolved it.
pub fn registry_diff(old: &CompiledCovenant, new: &CompiledCovenant) -> Vec<String> {
    use crate::covenant::KeyRef;
    fn key(k: &KeyRef) -> String {
        match k {
            KeyRef::Inline(s) => {
                let d = sha2::Sha256::digest(s.trim().as_bytes());
                format!("sha256:{}", &hex::encode(d)[..12])
            }
            KeyRef::File(p) => format!("file:{p}"),
        }
    }
    use sha2::Digest;
    let (o, n) = (old.covenant(), new.covenant());
    let mut out = Vec::new();
    for p in &o.partners {
        if n.partner(&p.id).is_none() {
            out.push(format!("partner {}: removed", p.id));
        }
    }
    for q in &n.partners {
        let Some(p) = o.partner(&q.id).and_then(|r| o.partner_at(r)) else {
            out.push(format!("partner {}: added", q.id));
            continue;
        };
        if p.oin != q.oin {
            out.push(format!(
                "partner {}: OIN {} -> {}",
                q.id,
                p.oin.as_deref().unwrap_or("(none)"),
                q.oin.as_deref().unwrap_or("(none)")
            ));
        }
        for fp in q.cert_sha256.iter().filter(|f| !p.cert_sha256.contains(f)) {
            out.push(format!("partner {}: certificate pinned {fp}", q.id));
        }
        for fp in p.cert_sha256.iter().filter(|f| !q.cert_sha256.contains(f)) {
            out.push(format!("partner {}: certificate unpinned {fp}", q.id));
        }
        if key(&p.recipient) != key(&q.recipient) {
            out.push(format!(
                "partner {}: age recipient {} -> {}",
                q.id,
                key(&p.recipient),
                key(&q.recipient)
            ));
        }
        let kids = |x: &crate::covenant::Partner| -> BTreeMap<String, String> {
            x.token_keys
                .iter()
                .map(|k| (k.kid.clone(), format!("{:?} {}", k.alg, key(&k.key))))
                .collect()
        };
        let (before, after) = (kids(p), kids(q));
        for (kid, k) in &after {
            match before.get(kid) {
                None => out.push(format!("partner {}: token key {kid} added ({k})", q.id)),
                Some(b) if b != k => {
                    out.push(format!("partner {}: token key {kid} {b} -> {k}", q.id))
                }
                Some(_) => {}
            }
        }
        for kid in before.keys().filter(|k| !after.contains_key(*k)) {
            out.push(format!("partner {}: token key {kid} removed", q.id));
        }
    }
    out
}
