//! The compiled covenant: a dense decision table over partner x role x purpose x field, built
//! once at load time. Compilation resolves precedence, rejects rules that can never apply and
//! proves every prohibition by enumerating the whole table.

use crate::covenant::{
    Action, ActionKind, Covenant, FieldRef, NO_RULE_CODE, NOT_PERMITTED_CODE, PartnerRef,
    PurposeRef, RoleRef, RuleRef,
};
use crate::diag::{Diagnostic, Diagnostics};
use crate::raw::RawCovenant;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Identifies a covenant version: SHA-256 of its canonical form (the parsed covenant
/// re-serialised as JSON), so comments and layout do not change it but any content does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion(String);

impl PolicyVersion {
    /// `sha256:<64 hex digits>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        self.0.get(7..19).unwrap_or(&self.0)
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a decision comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    /// A rule of the covenant.
    Rule(RuleRef),
    /// No rule covers the field: default deny.
    NoRule,
    /// The partner may not hold the role, the purpose is not open to the role, or the purpose is
    /// aggregate-level: nothing flows whatever the rules say.
    NotPermitted,
}

/// How a decision is recorded in the disclosure log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeClass {
    /// Sent as is.
    Disclosed,
    /// Sent masked, generalised, pseudonymised or as exists.
    Transformed,
    /// Replaced by a redaction marker.
    Withheld,
    /// Left out.
    Omitted,
}

/// What happens to one field for one audience.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The action.
    pub action: Action,
    /// Rule or default.
    pub source: DecisionSource,
    /// The id shown in markers and logs: the rule id, `default-deny` or `not-permitted`.
    pub rule_id: String,
    /// Redaction code (withheld fields only).
    pub code: Option<String>,
    /// Legal ground.
    pub ground: String,
    marker: Option<Value>,
}

impl Decision {
    /// The redaction marker `{"redacted", "rule", "ground"}` for withheld fields.
    pub fn marker(&self) -> Option<&Value> {
        self.marker.as_ref()
    }

    /// How the log records it.
    pub fn class(&self) -> OutcomeClass {
        match self.action {
            Action::Disclose => OutcomeClass::Disclosed,
            Action::Withhold => OutcomeClass::Withheld,
            Action::Omit => OutcomeClass::Omitted,
            _ => OutcomeClass::Transformed,
        }
    }
}

/// Index of a decision in the compiled covenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionRef(pub u16);

/// Counts from compilation, for `policy check`.
#[derive(Debug, Clone, Default)]
pub struct ProofSummary {
    /// Partner x role x purpose x field combinations enumerated.
    pub cells: usize,
    /// Of which reachable (role held by partner, purpose open to role, case level).
    pub reachable_cells: usize,
    /// Per prohibition: how many combinations it constrains.
    pub prohibition_cells: Vec<(String, usize)>,
}

/// The covenant compiled into a decision table. Cheap to share (wrap in `Arc`), immutable.
#[derive(Debug, Clone)]
pub struct CompiledCovenant {
    covenant: Covenant,
    version: PolicyVersion,
    n_roles: usize,
    n_purposes: usize,
    n_fields: usize,
    table: Vec<u16>,
    decisions: Vec<Decision>,
    proof: ProofSummary,
    dominates: Vec<Vec<bool>>,
}

const NO_RULE: u16 = 0;
const NOT_PERMITTED: u16 = 1;
const FIRST_RULE: u16 = 2;

/// What a reference outside the table decides (never met: the table only holds indices it
/// made): not permitted, fail closed.
static NOT_PERMITTED_DECISION: std::sync::LazyLock<Decision> =
    std::sync::LazyLock::new(|| Decision {
        action: Action::Withhold,
        source: DecisionSource::NotPermitted,
        rule_id: NOT_PERMITTED_CODE.into(),
        code: Some(NOT_PERMITTED_CODE.into()),
        ground: NOT_PERMITTED_GROUND.into(),
        marker: Some(marker(
            NOT_PERMITTED_CODE,
            NOT_PERMITTED_CODE,
            NOT_PERMITTED_GROUND,
        )),
    });

/// Reads, validates and compiles a covenant file. All problems are returned together.
pub fn compile_toml(source: &str) -> Result<CompiledCovenant, Diagnostics> {
    CompiledCovenant::compile(&parse_toml(source)?)
}

/// Like [`compile_toml`], but every `file:PATH` key (age recipients, token keys) is first replaced
/// by what `resolve` returns for PATH. The version hash then covers the key material itself, so a
/// rotated key is a new version that goes through review like any other change.
pub fn compile_toml_resolving(
    source: &str,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<CompiledCovenant, Diagnostics> {
    let mut raw = parse_toml(source)?;
    let mut diags = Vec::new();
    let mut inline = |s: &mut crate::raw::S| {
        let Some(path) = s.get_ref().trim().strip_prefix("file:").map(str::to_owned) else {
            return;
        };
        match resolve(&path) {
            Ok(text) => *s = toml::Spanned::new(s.span(), text.trim().to_owned()),
            Err(e) => diags.push(
                Diagnostic::at(s.span(), format!("cannot read key file {path}: {e}"))
                    .help("put the file in the gateway's key directory, or write the key inline"),
            ),
        }
    };
    for p in &mut raw.partners {
        let p = p.get_mut();
        inline(&mut p.recipient);
        for k in &mut p.token_keys {
            inline(&mut k.get_mut().key);
        }
        if let Some(g) = p.governance_vkey.as_mut() {
            inline(g);
        }
    }
    if !diags.is_empty() {
        return Err(sorted(diags));
    }
    CompiledCovenant::compile(&raw)
}

fn parse_toml(source: &str) -> Result<RawCovenant, Diagnostics> {
    toml::from_str(source).map_err(|e| {
        let msg = e.message().trim_end().to_owned();
        let (msg, help) = toml_help(&msg);
        let d = match e.span() {
            Some(span) => Diagnostic::at(span, msg),
            None => Diagnostic::global(msg),
        };
        Diagnostics(vec![d.help(help)])
    })
}

fn toml_help(msg: &str) -> (String, String) {
    let help = if msg.starts_with("unknown field") {
        "remove or rename the key; the accepted keys are listed above"
    } else if msg.starts_with("missing field") {
        "add the missing key to this table"
    } else if msg.starts_with("invalid type") {
        "check the value's type: lists are written [\"a\", \"b\"], texts in quotes"
    } else {
        "fix the TOML syntax at this position"
    };
    (msg.replace('\n', " "), help.to_owned())
}

impl CompiledCovenant {
    /// Compiles an already-parsed file.
    pub fn compile(raw: &RawCovenant) -> Result<Self, Diagnostics> {
        let covenant = Covenant::from_raw(raw).map_err(sorted)?;
        let version = {
            // Serialising the parsed model cannot fail: it holds only strings, numbers and lists.
            let canonical = serde_json::to_vec(raw).unwrap_or_default();
            PolicyVersion(format!(
                "sha256:{}",
                hex::encode(Sha256::digest(&canonical))
            ))
        };
        let mut c = Compiler::new(&covenant);
        c.run();
        if !c.diags.is_empty() {
            return Err(sorted(c.diags));
        }
        let Compiler {
            table,
            decisions,
            proof,
            dominates,
            ..
        } = c;
        Ok(CompiledCovenant {
            n_roles: covenant.roles.len(),
            n_purposes: covenant.purposes.len(),
            n_fields: covenant.fields.len(),
            covenant,
            version,
            table,
            decisions,
            proof,
            dominates,
        })
    }

    /// Whether rule `a` takes precedence over rule `b` (directly or through other rules).
    pub fn overrides(&self, a: RuleRef, b: RuleRef) -> bool {
        self.dominates
            .get(a.index())
            .and_then(|row| row.get(b.index()))
            .copied()
            .unwrap_or(false)
    }

    /// The validated model.
    pub fn covenant(&self) -> &Covenant {
        &self.covenant
    }

    /// The version hash.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    /// Counts from the proof.
    pub fn proof(&self) -> &ProofSummary {
        &self.proof
    }

    #[inline]
    fn cell(&self, p: PartnerRef, r: RoleRef, u: PurposeRef, f: FieldRef) -> usize {
        ((p.index() * self.n_roles + r.index()) * self.n_purposes + u.index()) * self.n_fields
            + f.index()
    }

    /// The decision for one field: one table lookup.
    #[inline]
    pub fn decision_ref(
        &self,
        p: PartnerRef,
        r: RoleRef,
        u: PurposeRef,
        f: FieldRef,
    ) -> DecisionRef {
        DecisionRef(
            self.table
                .get(self.cell(p, r, u, f))
                .copied()
                .unwrap_or(NOT_PERMITTED),
        )
    }

    /// The decision behind a reference. Unknown references fail closed to "not permitted".
    #[inline]
    pub fn decision(&self, d: DecisionRef) -> &Decision {
        let fallback = usize::from(NOT_PERMITTED);
        self.decisions.get(usize::from(d.0)).unwrap_or_else(|| {
            // The table only holds indices it created; this branch is unreachable in practice.
            self.decisions
                .get(fallback)
                .unwrap_or(&NOT_PERMITTED_DECISION)
        })
    }

    /// The decision for one field.
    #[inline]
    pub fn decide(&self, p: PartnerRef, r: RoleRef, u: PurposeRef, f: FieldRef) -> &Decision {
        self.decision(self.decision_ref(p, r, u, f))
    }

    /// The decision a rule produces.
    pub fn rule_decision(&self, rule: RuleRef) -> Option<&Decision> {
        self.decisions.get(rule.index() + usize::from(FIRST_RULE))
    }
}

fn sorted(mut d: Vec<Diagnostic>) -> Diagnostics {
    d.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    d.dedup();
    Diagnostics(d)
}

fn marker(code: &str, rule: &str, ground: &str) -> Value {
    json!({ "redacted": code, "rule": rule, "ground": ground })
}

/// Default ground for fields no rule covers.
pub const NO_RULE_GROUND: &str = "Geen regel in het convenant staat deze verstrekking toe; wat niet is toegestaan, wordt niet verstrekt.";
/// Ground for combinations the covenant does not permit.
pub const NOT_PERMITTED_GROUND: &str = "Deze rol, dit doel en deze partner horen volgens het convenant niet samen; er wordt niets verstrekt.";

struct Compiler<'a> {
    c: &'a Covenant,
    diags: Vec<Diagnostic>,
    table: Vec<u16>,
    decisions: Vec<Decision>,
    proof: ProofSummary,
    /// dominates[a][b]: rule a takes precedence over rule b (transitively).
    dominates: Vec<Vec<bool>>,
    /// Per rule: a rule that decided instead of it, and where (for "never applies" messages).
    shadow_example: Vec<Option<(usize, Cell)>>,
    /// Cells where rules tie with different outcomes: the other winners, so that the proof
    /// checks every candidate outcome, not only the one that happens to come first.
    tied_winners: Vec<(usize, usize)>,
}

/// One combination, for messages.
#[derive(Clone, Copy)]
struct Cell {
    p: usize,
    r: usize,
    u: usize,
    f: usize,
}

impl<'a> Compiler<'a> {
    fn new(c: &'a Covenant) -> Self {
        let mut decisions = vec![
            Decision {
                action: Action::Withhold,
                source: DecisionSource::NoRule,
                rule_id: "default-deny".into(),
                code: Some(NO_RULE_CODE.into()),
                ground: NO_RULE_GROUND.into(),
                marker: Some(marker(NO_RULE_CODE, "default-deny", NO_RULE_GROUND)),
            },
            Decision {
                action: Action::Withhold,
                source: DecisionSource::NotPermitted,
                rule_id: NOT_PERMITTED_CODE.into(),
                code: Some(NOT_PERMITTED_CODE.into()),
                ground: NOT_PERMITTED_GROUND.into(),
                marker: Some(marker(
                    NOT_PERMITTED_CODE,
                    NOT_PERMITTED_CODE,
                    NOT_PERMITTED_GROUND,
                )),
            },
        ];
        for (i, r) in c.rules.iter().enumerate() {
            let code = r.code.clone().unwrap_or_default();
            decisions.push(Decision {
                action: r.action,
                source: DecisionSource::Rule(RuleRef(u16::try_from(i).unwrap_or(u16::MAX))),
                rule_id: r.id.clone(),
                code: r.code.clone(),
                ground: r.ground.clone(),
                marker: (r.action == Action::Withhold).then(|| marker(&code, &r.id, &r.ground)),
            });
        }
        Compiler {
            c,
            diags: Vec::new(),
            table: Vec::new(),
            decisions,
            proof: ProofSummary::default(),
            dominates: Vec::new(),
            shadow_example: Vec::new(),
            tied_winners: Vec::new(),
        }
    }

    fn set_cell(&mut self, i: usize, v: u16) {
        if let Some(c) = self.table.get_mut(i) {
            *c = v;
        }
    }

    fn dominates_at(&self, a: usize, b: usize) -> bool {
        self.dominates.get(a).is_some_and(|row| flag(row, b))
    }

    fn decision(&self, d: DecisionRef) -> &Decision {
        self.decisions
            .get(usize::from(d.0))
            .unwrap_or(&NOT_PERMITTED_DECISION)
    }

    fn describe(&self, cell: Cell) -> String {
        let c = self.c;
        let name = |v: Option<&String>| v.cloned().unwrap_or_default();
        format!(
            "{} to {} (role {}, purpose {})",
            name(c.fields.get(cell.f).map(|f| &f.qualified)),
            name(c.partners.get(cell.p).map(|p| &p.id)),
            name(c.roles.get(cell.r).map(|r| &r.id)),
            name(c.purposes.get(cell.u).map(|u| &u.id)),
        )
    }

    fn run(&mut self) {
        self.precedence();
        self.type_checks();
        let (decided, matched) = self.fill_table();
        self.never_applies(&decided, &matched);
        self.prove();
    }

    /// Transitive closure of `overrides`; cycles are errors.
    fn precedence(&mut self) {
        let n = self.c.rules.len();
        let mut d = vec![vec![false; n]; n];
        for (a, rule) in self.c.rules.iter().enumerate() {
            for b in &rule.overrides {
                if let Some(x) = d.get_mut(a).and_then(|row| row.get_mut(b.index())) {
                    *x = true;
                }
            }
        }
        // Warshall's transitive closure.
        for k in 0..n {
            let Some(row_k) = d.get(k).cloned() else {
                continue;
            };
            for row in d.iter_mut() {
                if flag(row, k) {
                    for (x, y) in row.iter_mut().zip(&row_k) {
                        *x |= *y;
                    }
                }
            }
        }
        for (a, rule) in self.c.rules.iter().enumerate() {
            if d.get(a).is_some_and(|row| flag(row, a)) {
                self.diags.push(
                    Diagnostic::at(
                        rule.span.clone(),
                        format!("rule {} is part of an `overrides` cycle", rule.id),
                    )
                    .help("precedence must be a strict order: remove one `overrides` entry in the cycle"),
                );
            }
        }
        self.dominates = d;
    }

    fn type_checks(&mut self) {
        for rule in &self.c.rules {
            let bad: Vec<_> = self
                .c
                .fields
                .iter()
                .zip(&rule.fields)
                .filter(|(f, m)| **m && !rule.action.applies_to(f.ty))
                .map(|(f, _)| f)
                .collect();
            if let Some(first) = bad.first() {
                let more = if bad.len() > 1 {
                    format!(" (and {} more)", bad.len() - 1)
                } else {
                    String::new()
                };
                self.diags.push(
                    Diagnostic::at(
                        rule.span.clone(),
                        format!(
                            "rule {} applies {} to field {} of type {}{more}; {}",
                            rule.id,
                            rule.action.describe(),
                            first.qualified,
                            first.ty,
                            applicable_types(rule.action)
                        ),
                    )
                    .help("narrow the rule with `fields = [...]` or `categories`, or choose another action"),
                );
            }
        }
    }

    /// Builds the table. Returns, per rule, whether it decides some reachable cell and whether it
    /// matches some reachable cell at all.
    fn fill_table(&mut self) -> (Vec<bool>, Vec<bool>) {
        let c = self.c;
        let (np, nr, nu, nf) = (
            c.partners.len(),
            c.roles.len(),
            c.purposes.len(),
            c.fields.len(),
        );
        let n_rules = c.rules.len();
        self.table = vec![NOT_PERMITTED; np * nr * nu * nf];
        self.proof.cells = self.table.len();
        let mut decided = vec![false; n_rules];
        let mut matched = vec![false; n_rules];
        let mut conflicts: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
        let mut shadow_example: Vec<Option<(usize, Cell)>> = vec![None; n_rules];
        let mut candidates = Vec::new();
        let mut m = Vec::new();
        let mut winners = Vec::new();
        for p in 0..np {
            for r in 0..nr {
                for u in 0..nu {
                    let reachable = c.reachable(
                        PartnerRef(p as u16),
                        RoleRef(r as u16),
                        PurposeRef(u as u16),
                    );
                    if !reachable {
                        continue;
                    }
                    candidates.clear();
                    candidates.extend(c.rules.iter().enumerate().filter_map(|(i, rule)| {
                        (flag(&rule.to, p) && flag(&rule.roles, r) && flag(&rule.purposes, u))
                            .then_some(i)
                    }));
                    let base = ((p * nr + r) * nu + u) * nf;
                    for f in 0..nf {
                        self.proof.reachable_cells += 1;
                        m.clear();
                        m.extend(
                            candidates.iter().copied().filter(|&i| {
                                c.rules.get(i).is_some_and(|rule| flag(&rule.fields, f))
                            }),
                        );
                        if m.is_empty() {
                            self.set_cell(base + f, NO_RULE);
                            continue;
                        }
                        winners.clear();
                        winners.extend(
                            m.iter()
                                .copied()
                                .filter(|&a| !m.iter().any(|&b| self.dominates_at(b, a))),
                        );
                        // A cycle leaves no winner; it is already reported. Fail closed.
                        let Some(&first) = winners.first() else {
                            self.set_cell(base + f, NO_RULE);
                            continue;
                        };
                        let outcome =
                            |i: usize| c.rules.get(i).map(|r| (r.action, r.code.as_deref()));
                        for &w in winners.iter().skip(1) {
                            if outcome(w) != outcome(first) {
                                conflicts.entry((first, w)).or_insert(Cell { p, r, u, f });
                                self.tied_winners.push((base + f, w));
                                // A tie is reported as a conflict, not as "never applies".
                                set_flag(&mut decided, w);
                            }
                        }
                        self.set_cell(base + f, FIRST_RULE + first as u16);
                        set_flag(&mut decided, first);
                        for &i in m.iter() {
                            set_flag(&mut matched, i);
                            if i != first
                                && let Some(ex) = shadow_example.get_mut(i)
                                && ex.is_none()
                            {
                                *ex = Some((first, Cell { p, r, u, f }));
                            }
                        }
                    }
                }
            }
        }
        for ((a, b), cell) in conflicts {
            let (Some(ra), Some(rb)) = (c.rules.get(a), c.rules.get(b)) else {
                continue;
            };
            self.diags.push(
                Diagnostic::at(
                    rb.span.clone(),
                    format!(
                        "rules {} and {} overlap with different outcomes ({} vs {}) and neither overrides the other, e.g. for {}",
                        ra.id,
                        rb.id,
                        ra.action.describe(),
                        rb.action.describe(),
                        self.describe(cell)
                    ),
                )
                .help(format!(
                    "state the precedence: add `overrides = [\"{}\"]` to {} or `overrides = [\"{}\"]` to {}, or narrow one of them",
                    ra.id, rb.id, rb.id, ra.id
                )),
            );
        }
        self.shadow_example = shadow_example;
        (decided, matched)
    }

    fn never_applies(&mut self, decided: &[bool], matched: &[bool]) {
        let c = self.c;
        for (i, rule) in c.rules.iter().enumerate() {
            if flag(decided, i) {
                continue;
            }
            let covers_fields = rule.fields.iter().any(|x| *x);
            let covers_purposes = rule.purposes.iter().any(|x| *x);
            let covers_roles = rule.roles.iter().any(|x| *x);
            let covers_partners = rule.to.iter().any(|x| *x);
            if !(covers_purposes && covers_roles && covers_partners) {
                // An empty selector has its own error already.
                continue;
            }
            let (msg, help) = if !covers_fields {
                (
                    format!("rule {} can never apply: it covers no field of the catalogue", rule.id),
                    "its `products`, `categories` and `fields` are combined with AND and leave nothing; check them against the catalogue".to_owned(),
                )
            } else if !flag(matched, i) {
                (
                    format!(
                        "rule {} can never apply: no partner in `to` may hold one of its roles for one of its case-level purposes",
                        rule.id
                    ),
                    "check the roles' `held_by` and the purposes' `roles`, or correct the rule's `to`, `roles` and `purposes`".to_owned(),
                )
            } else {
                let (by, cell) = match self.shadow_example.get(i).copied().flatten() {
                    Some((by, cell)) => (
                        c.rules.get(by).map(|r| r.id.clone()).unwrap_or_default(),
                        self.describe(cell),
                    ),
                    None => (String::from("other rules"), String::new()),
                };
                (
                    format!(
                        "rule {} can never apply: wherever it applies, rule {by} decides instead (e.g. for {cell})",
                        rule.id
                    ),
                    format!(
                        "remove the rule, or narrow {by}, or let {} override it",
                        rule.id
                    ),
                )
            };
            self.diags
                .push(Diagnostic::at(rule.span.clone(), msg).help(help));
        }
    }

    /// Enumerates every combination each prohibition constrains and checks the decision there
    /// (and, where rules tie, every tied outcome).
    fn prove(&mut self) {
        let c = self.c;
        let (np, nr, nu, nf) = (
            c.partners.len(),
            c.roles.len(),
            c.purposes.len(),
            c.fields.len(),
        );
        let mut tied: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
        for &(cell, rule) in &self.tied_winners {
            tied.entry(cell).or_default().push(FIRST_RULE + rule as u16);
        }
        for pr in &c.prohibitions {
            let mut checked = 0usize;
            // Per offending decision: first violating cell and count.
            let mut violations: BTreeMap<u16, (Cell, usize)> = BTreeMap::new();
            for p in (0..np).filter(|&p| flag(&pr.to, p)) {
                for r in (0..nr).filter(|&r| flag(&pr.roles, r)) {
                    for u in (0..nu).filter(|&u| flag(&pr.purposes, u)) {
                        let base = ((p * nr + r) * nu + u) * nf;
                        for f in (0..nf).filter(|&f| flag(&pr.fields, f)) {
                            checked += 1;
                            let others = tied.get(&(base + f)).map_or(&[][..], Vec::as_slice);
                            let here = self.table.get(base + f).copied().unwrap_or(NOT_PERMITTED);
                            for &d in std::iter::once(&here).chain(others) {
                                let kind = self.decision(DecisionRef(d)).action.kind();
                                if !pr.allowed.contains(&kind) {
                                    violations.entry(d).or_insert((Cell { p, r, u, f }, 0)).1 += 1;
                                }
                            }
                        }
                    }
                }
            }
            self.proof.prohibition_cells.push((pr.id.clone(), checked));
            for (d, (cell, count)) in violations {
                let decision = self.decision(DecisionRef(d));
                let DecisionSource::Rule(rule) = decision.source else {
                    continue;
                };
                let Some(rule) = c.rules.get(rule.index()) else {
                    continue;
                };
                let allowed: Vec<&str> =
                    pr.allowed.iter().map(|k: &ActionKind| k.as_str()).collect();
                let (Some(field), Some(partner), Some(role), Some(purpose)) = (
                    c.fields.get(cell.f),
                    c.partners.get(cell.p),
                    c.roles.get(cell.r),
                    c.purposes.get(cell.u),
                ) else {
                    continue;
                };
                let more = if count > 1 {
                    format!(" (and {} more combinations)", count - 1)
                } else {
                    String::new()
                };
                self.diags.push(
                    Diagnostic::at(
                        rule.span.clone(),
                        format!(
                            "rule {} violates prohibition {}: it sends {} ({}) to {} (role {}, purpose {}) as {}, but the prohibition allows only {}{more}",
                            rule.id,
                            pr.id,
                            field.qualified,
                            field.category,
                            partner.id,
                            role.id,
                            purpose.id,
                            rule.action.describe(),
                            allowed.join(", "),
                        ),
                    )
                    .help(format!(
                        "the covenant says: \"{}\"; narrow the rule (`to`, `except_to`, `fields`) or change its action",
                        pr.text
                    )),
                );
            }
        }
    }
}

/// An entry of a per-index flag list; out of range is `false`.
fn flag(v: &[bool], i: usize) -> bool {
    v.get(i).copied().unwrap_or(false)
}

fn set_flag(v: &mut [bool], i: usize) {
    if let Some(x) = v.get_mut(i) {
        *x = true;
    }
}

fn applicable_types(a: Action) -> &'static str {
    match a {
        Action::Mask { .. } => "mask applies only to text, bsn and postcode fields",
        Action::Generalize { to, .. } => match to {
            crate::covenant::Generalization::PostcodeArea
            | crate::covenant::Generalization::District => {
                "generalize to postcode-area or district applies only to postcode fields"
            }
            _ => "generalize to month, year or age-band applies only to date fields",
        },
        _ => "this action applies to every type",
    }
}
