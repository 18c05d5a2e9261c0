//! The validated covenant model: every reference resolved to an index, every selector resolved
//! to a set. Built from the raw file by [`Covenant::from_raw`]; `compile.rs` builds the
//! decision table from it.

use crate::diag::Diagnostic;
use crate::domain::{CaseStatus, Category, FieldType, Level, PartnerKind, Relation, postcode_area};
use crate::raw::{RawAppointment, RawCovenant, RawRule, S};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::str::FromStr;
use toml::Spanned;

macro_rules! index_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u16);
        impl $name {
            /// Position in the covenant's list.
            pub fn index(self) -> usize { usize::from(self.0) }
        }
    };
}

index_type!(
    /// A partner of this covenant, by position.
    PartnerRef
);
index_type!(
    /// A role of this covenant, by position.
    RoleRef
);
index_type!(
    /// A purpose of this covenant, by position.
    PurposeRef
);
index_type!(
    /// A product of the catalogue, by position.
    ProductRef
);
index_type!(
    /// A field of the catalogue (across all products), by position.
    FieldRef
);
index_type!(
    /// A rule, by position in the file.
    RuleRef
);

/// Where key material is: inline in the covenant, or in a file relative to the gateway's key
/// directory (resolved by the gateway, not here: this crate does no I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// The key itself (`age1…` or a PEM block).
    Inline(String),
    /// `file:PATH`.
    File(String),
}

/// A JWT signing algorithm the covenant accepts for partner tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
}

/// A key a partner's identity provider signs tokens with.
#[derive(Debug, Clone)]
pub struct TokenKey {
    /// JWT `kid`.
    pub kid: String,
    /// Algorithm.
    pub alg: TokenAlg,
    /// Public key.
    pub key: KeyRef,
}

/// A party that may receive data.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Short id.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Core partner, affiliated or peer.
    pub kind: PartnerKind,
    /// OIN expected in the certificate's subject serialNumber.
    pub oin: Option<String>,
    /// Pinned certificate fingerprints, lowercase hex without separators.
    pub cert_sha256: Vec<String>,
    /// Payload recipient.
    pub recipient: KeyRef,
    /// Token-signing keys.
    pub token_keys: Vec<TokenKey>,
    /// The governance key that signs the partner's approvals of covenant changes.
    pub governance_vkey: Option<KeyRef>,
}

/// A role inside partners.
#[derive(Debug, Clone)]
pub struct Role {
    /// Id as in tokens.
    pub id: String,
    /// Readable name.
    pub name: String,
    /// Per partner: may it hold this role?
    pub held_by: Vec<bool>,
}

/// A purpose (doel).
#[derive(Debug, Clone)]
pub struct Purpose {
    /// Id named in requests.
    pub id: String,
    /// Readable name.
    pub name: String,
    /// Case or aggregate level.
    pub level: Level,
    /// Per role: allowed?
    pub roles: Vec<bool>,
    /// Case statuses in which it may be used (all, if the file says `*`).
    pub case_status: Vec<CaseStatus>,
    /// Required relation to the case.
    pub relation: Relation,
    /// Hidden from the subject's access report.
    pub confidential: bool,
    /// The legal basis the covenant states for hiding it.
    pub confidential_ground: Option<String>,
}

/// A district, for generalising postcodes.
#[derive(Debug, Clone)]
pub struct District {
    /// Released name.
    pub name: String,
    /// Inclusive postcode-area ranges.
    pub areas: Vec<(u16, u16)>,
}

/// A product of the data catalogue.
#[derive(Debug, Clone)]
pub struct Product {
    /// `owner.name`.
    pub id: String,
    /// Holding partner.
    pub owner: PartnerRef,
    /// Readable name.
    pub name: String,
    /// Its fields, as a range of the covenant's field list.
    pub fields: Range<usize>,
    /// Per role: may it deposit this product's records? Only roles the owner may hold.
    pub deposit_roles: Vec<bool>,
}

impl Product {
    /// Whether `role` may deposit this product's records.
    pub fn may_deposit(&self, role: RoleRef) -> bool {
        self.deposit_roles
            .get(role.index())
            .copied()
            .unwrap_or(false)
    }
}

/// A field of a product.
#[derive(Debug, Clone)]
pub struct Field {
    /// Product it belongs to.
    pub product: ProductRef,
    /// Name inside the product.
    pub name: String,
    /// `product.name`.
    pub qualified: String,
    /// Value type.
    pub ty: FieldType,
    /// Data category.
    pub category: Category,
}

crate::domain::vocabulary! {
    /// The kind of an action, without parameters.
    ActionKind {
        /// As is.
        Disclose => "disclose",
        /// Keep the last N characters.
        Mask => "mask",
        /// Less precise.
        Generalize => "generalize",
        /// Keyed hash per receiving partner.
        Pseudonymize => "pseudonymize",
        /// Only whether there is a value.
        Exists => "exists",
        /// Replaced by a redaction marker.
        Withhold => "withhold",
        /// Left out entirely.
        Omit => "omit",
    }
}

crate::domain::vocabulary! {
    /// To what a `generalize` action reduces a value.
    Generalization {
        /// A date to `YYYY-MM`.
        Month => "month",
        /// A date to `YYYY`.
        Year => "year",
        /// A birth date to an age band.
        AgeBand => "age-band",
        /// A postcode to its four-digit area.
        PostcodeArea => "postcode-area",
        /// A postcode to its district.
        District => "district",
    }
}

/// What happens to a field, with parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// As is.
    Disclose,
    /// Keep the last `keep_last` characters, the rest becomes `*`.
    Mask {
        /// Visible trailing characters.
        keep_last: u8,
    },
    /// Reduce precision.
    Generalize {
        /// Target precision.
        to: Generalization,
        /// Band width in years, for `age-band`.
        band: u8,
    },
    /// Keyed hash per receiving partner.
    Pseudonymize,
    /// `true` or `false`: is there a value?
    Exists,
    /// Replace with a marker naming rule, code and ground.
    Withhold,
    /// Leave out.
    Omit,
}

impl Action {
    /// The kind without parameters.
    pub fn kind(self) -> ActionKind {
        match self {
            Action::Disclose => ActionKind::Disclose,
            Action::Mask { .. } => ActionKind::Mask,
            Action::Generalize { .. } => ActionKind::Generalize,
            Action::Pseudonymize => ActionKind::Pseudonymize,
            Action::Exists => ActionKind::Exists,
            Action::Withhold => ActionKind::Withhold,
            Action::Omit => ActionKind::Omit,
        }
    }

    /// Short description with parameters, e.g. `mask(keep_last=4)`.
    pub fn describe(self) -> String {
        match self {
            Action::Mask { keep_last } => format!("mask(keep_last={keep_last})"),
            Action::Generalize {
                to: Generalization::AgeBand,
                band,
            } => {
                format!("generalize(age-band, {band} years)")
            }
            Action::Generalize { to, .. } => format!("generalize({to})"),
            other => other.kind().to_string(),
        }
    }

    /// Whether this action can be applied to values of type `ty`.
    pub fn applies_to(self, ty: FieldType) -> bool {
        use FieldType as T;
        match self {
            Action::Mask { .. } => matches!(ty, T::Text | T::Bsn | T::Postcode),
            Action::Generalize { to, .. } => match to {
                Generalization::Month | Generalization::Year | Generalization::AgeBand => {
                    ty == T::Date
                }
                Generalization::PostcodeArea | Generalization::District => ty == T::Postcode,
            },
            _ => true,
        }
    }
}

/// A sharing rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id shown in markers and the log.
    pub id: String,
    /// In words.
    pub description: Option<String>,
    /// Per partner: receives under this rule?
    pub to: Vec<bool>,
    /// Per role.
    pub roles: Vec<bool>,
    /// Per purpose.
    pub purposes: Vec<bool>,
    /// Per field.
    pub fields: Vec<bool>,
    /// What happens.
    pub action: Action,
    /// Redaction code (withhold only).
    pub code: Option<String>,
    /// Legal ground (for withhold without its own ground: the code's text).
    pub ground: String,
    /// Rules this one takes precedence over.
    pub overrides: Vec<RuleRef>,
    /// Where its id stands in the file.
    pub span: Range<usize>,
}

/// A "never" statement.
#[derive(Debug, Clone)]
pub struct Prohibition {
    /// Id.
    pub id: String,
    /// The statement.
    pub text: String,
    /// Per partner.
    pub to: Vec<bool>,
    /// Per role.
    pub roles: Vec<bool>,
    /// Per purpose.
    pub purposes: Vec<bool>,
    /// Per field.
    pub fields: Vec<bool>,
    /// Allowed action kinds.
    pub allowed: Vec<ActionKind>,
    /// Where its id stands.
    pub span: Range<usize>,
}

/// Who may do what in the case register; every list is indexed by role.
#[derive(Debug, Clone, Default)]
pub struct CaseRegister {
    /// May register a new case.
    pub create: Vec<bool>,
    /// May change fields other than the status.
    pub update: Vec<bool>,
    /// May read the administration.
    pub read: Vec<bool>,
    /// May also read risk group and ideology.
    pub read_classification: Vec<bool>,
    /// Per (from, to): the roles that may make the change.
    pub transitions: Vec<(CaseStatus, CaseStatus, Vec<bool>)>,
    /// Per (from, to): the body whose decision the change is, by index into the bodies.
    pub decided_by: Vec<(CaseStatus, CaseStatus, usize)>,
    /// Per (from, to): the body whose review precedes the change, by index into the bodies.
    pub reviewed_by: Vec<(CaseStatus, CaseStatus, usize)>,
    /// The bodies that decide together.
    pub bodies: Vec<Body>,
    /// Who appoints or reassigns the regisseur, and in which statuses.
    pub appoint_regisseur: Appointment,
    /// Who chooses the UVO's partners, and in which statuses.
    pub compose_uvo: Appointment,
    /// Days after the inclusion decision within which the person is notified, if tracked.
    pub notification_days: Option<u32>,
}

/// A body of the covenant that decides together (the Regieoverleg, the PTO-R): a change that is
/// its decision carries the decision's reference and at least `quorum` members, of at least
/// `partners` partners, each holding one of its roles.
#[derive(Debug, Clone)]
pub struct Body {
    /// Id.
    pub id: String,
    /// Name as in the documents.
    pub name: String,
    /// Per role: do its holders sit in the body?
    pub roles: Vec<bool>,
    /// Fewest members who take a decision.
    pub quorum: usize,
    /// Fewest partners among them.
    pub partners: usize,
}

/// A decision that grants a relation to a case: who takes it, and in which statuses. The
/// default (no roles, no statuses) lets nobody take it.
#[derive(Debug, Clone, Default)]
pub struct Appointment {
    /// Per role: whether it takes this decision.
    pub roles: Vec<bool>,
    /// The statuses in which it may be taken.
    pub statuses: Vec<CaseStatus>,
}

impl Appointment {
    /// Whether `role` takes this decision.
    pub fn by(&self, role: RoleRef) -> bool {
        has(&self.roles, role)
    }
    /// Whether it may be taken while the case is `status`.
    pub fn open_in(&self, status: CaseStatus) -> bool {
        self.statuses.contains(&status)
    }
}

impl CaseRegister {
    /// Whether the covenant's work process has the move `from` → `to` at all.
    pub fn declares(&self, from: CaseStatus, to: CaseStatus) -> bool {
        self.transitions
            .iter()
            .any(|(f, t, _)| *f == from && *t == to)
    }

    /// Whether `role` may move a case from `from` to `to`.
    pub fn may_transition(&self, from: CaseStatus, to: CaseStatus, role: RoleRef) -> bool {
        self.transitions.iter().any(|(f, t, roles)| {
            *f == from && *t == to && roles.get(role.index()).copied().unwrap_or(false)
        })
    }
}

fn has(set: &[bool], role: RoleRef) -> bool {
    set.get(role.index()).copied().unwrap_or(false)
}

impl CaseRegister {
    /// The body whose decision the change `from` → `to` is, if any.
    pub fn body_for(&self, from: CaseStatus, to: CaseStatus) -> Option<&Body> {
        self.decided_by
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .and_then(|(_, _, b)| self.bodies.get(*b))
    }

    /// The body whose review must precede the change `from` → `to`, if any.
    pub fn review_for(&self, from: CaseStatus, to: CaseStatus) -> Option<&Body> {
        self.reviewed_by
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .and_then(|(_, _, b)| self.bodies.get(*b))
    }

    /// Whether `role` may register cases.
    pub fn may_create(&self, role: RoleRef) -> bool {
        has(&self.create, role)
    }
    /// Whether `role` may change non-status fields.
    pub fn may_update(&self, role: RoleRef) -> bool {
        has(&self.update, role)
    }
    /// Whether `role` may read the administration.
    pub fn may_read(&self, role: RoleRef) -> bool {
        has(&self.read, role) || has(&self.read_classification, role)
    }
    /// Whether `role` may read risk group and ideology.
    pub fn may_read_classification(&self, role: RoleRef) -> bool {
        has(&self.read_classification, role)
    }
}

/// The ids the gateway's own rules refer to, as the covenant names them (`[governance]`).
#[derive(Debug, Clone, Default)]
pub struct Governance {
    /// The programme's partner: its privacy officers see the whole log.
    pub programme_partner: Option<PartnerRef>,
    /// This approach's name in check answers.
    pub approach: String,
    /// The role that reads the log.
    pub privacy_officer_role: Option<RoleRef>,
    /// The role that administers the covenant.
    pub administrator_role: Option<RoleRef>,
    /// The purpose of `/v1/checks`.
    pub check_purpose: Option<PurposeRef>,
    /// The role of relation `voorportaal`.
    pub voorportaal_role: Option<RoleRef>,
    /// The role a regisseur holds.
    pub regisseur_role: Option<RoleRef>,
    /// The only role that may make a case `statisch`.
    pub static_role: Option<RoleRef>,
    /// Core partners' signatures a change to a shared part needs; `None`: changes are approved
    /// by the administrators' four eyes only.
    pub approval_threshold: Option<u32>,
}

/// The validated covenant.
#[derive(Debug, Clone)]
pub struct Covenant {
    /// Stable id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Authors' version label.
    pub version_label: Option<String>,
    /// Redaction codes and their grounds.
    pub redaction_codes: BTreeMap<String, String>,
    /// Partners.
    pub partners: Vec<Partner>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Purposes.
    pub purposes: Vec<Purpose>,
    /// Districts.
    pub districts: Vec<District>,
    /// Products.
    pub products: Vec<Product>,
    /// Fields of all products, grouped by product.
    pub fields: Vec<Field>,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Prohibitions.
    pub prohibitions: Vec<Prohibition>,
    /// Case register permissions.
    pub case_register: CaseRegister,
    /// Aggregate views and their protection.
    pub aggregates: Aggregates,
    /// The ids the gateway's own rules refer to.
    pub governance: Governance,
    /// The partners' witnesses of the log.
    pub witnessing: Witnessing,
    /// The aanpak-check across approaches.
    pub checks: Checks,
    /// How long deposits, cases and log entries are kept.
    pub retention: Retention,
    partner_index: HashMap<String, PartnerRef>,
    role_index: HashMap<String, RoleRef>,
    purpose_index: HashMap<String, PurposeRef>,
    product_index: HashMap<String, ProductRef>,
    field_index: HashMap<String, FieldRef>,
}

crate::domain::vocabulary! {
    /// What an aggregate view breaks its figures down by.
    Dimension {
        /// Ideology of the case.
        Ideology => "ideology",
        /// Risk group 1–5.
        RiskGroup => "risk-group",
        /// Current status.
        Status => "status",
        /// Quarter of the inclusion decision.
        InflowQuarter => "inflow-quarter",
        /// Quarter the case was closed.
        OutflowQuarter => "outflow-quarter",
    }
}

crate::domain::vocabulary! {
    /// What an aggregate view measures.
    Measure {
        /// Number of cases.
        Count => "count",
        /// Weeks from signal to inclusion decision: median and quartiles.
        LeadTimeWeeks => "lead-time-weeks",
    }
}

/// An aggregate view.
#[derive(Debug, Clone)]
pub struct View {
    /// Id.
    pub id: String,
    /// Readable name.
    pub name: String,
    /// Per purpose: may it be asked under it?
    pub purposes: Vec<bool>,
    /// Breakdown, at most two dimensions.
    pub dimensions: Vec<Dimension>,
    /// Measure.
    pub measure: Measure,
}

/// A partner's witness of the log, as the covenant names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The partner that runs it.
    pub partner: PartnerRef,
    /// Its name (the key name of its cosignatures).
    pub name: String,
    /// Its verifier key, C2SP note format.
    pub vkey: String,
    /// Its base URL.
    pub url: String,
}

/// The covenant's witnesses and what counts as a witnessed log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessing {
    /// The witnesses, in file order.
    pub witnesses: Vec<Witness>,
    /// How many must cosign a checkpoint (0 when there are no witnesses).
    pub quorum: usize,
    /// Seconds without a witnessed checkpoint after which disclosures stop.
    pub blind_after_secs: u64,
}

/// Another approach the aanpak-check asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approach {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The partner that runs it.
    pub partner: PartnerRef,
    /// Whom to call.
    pub contact: String,
}

/// The aanpak-check's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// The other approaches, in file order.
    pub approaches: Vec<Approach>,
    /// Checks per staff member per minute.
    pub per_staff_per_minute: u32,
    /// Whether inclusion needs a complete aanpak-check of the person first.
    pub before_inclusion: bool,
}

crate::domain::vocabulary! {
    /// The log entry kinds whose content may expire under a retention rule. The log's own
    /// history (policy steps, key changes and steps, witness overrides, retention runs) never
    /// expires.
    ExpiringKind {
        /// Disclosures.
        Disclosure => "disclosure",
        /// Checks (known / not known).
        Check => "check",
        /// Aggregate figures.
        Aggregate => "aggregate",
        /// Privacy officers' searches and reports.
        AuditQuery => "audit-query",
        /// Refused checkpoint or proof requests.
        AuditProof => "audit-proof",
        /// Case-register changes.
        CaseChange => "case-change",
        /// Case-register reads.
        CaseRead => "case-read",
        /// Deposits.
        Deposit => "deposit",
        /// Requests no endpoint took.
        Request => "request",
    }
}

/// What a rule's legal ground starts with while the covenant says its grounds are examples
/// (`[governance] example_grounds`).
pub const EXAMPLE_GROUND: &str = "voorbeeldgrond: ";

/// Log entry kinds that are kept as long as the log: retention never removes them, because
/// `audit verify` and the art. 15 report rely on them.
pub const LASTING_KINDS: [&str; 7] = [
    "policy",
    "log-key",
    "witness-override",
    "start",
    "retention",
    "keys",
    "log-outage",
];

/// Longest retention period the covenant may state (a century), so that days stay in range.
pub const MAX_RETENTION_DAYS: u64 = 36_500;

/// A retention period and its ground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Days kept.
    pub days: u32,
    /// The legal ground or covenant article.
    pub ground: String,
}

impl Period {
    /// The period in seconds.
    pub fn secs(&self) -> i64 {
        i64::from(self.days) * 86_400
    }
}

/// How long log entries of some kinds (and purposes) are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRetention {
    /// Rule id (named by the tombstones it leaves).
    pub id: String,
    /// Kinds it covers.
    pub kinds: Vec<ExpiringKind>,
    /// Only these purposes; empty: the kinds' default rule for any purpose.
    pub purposes: Vec<PurposeRef>,
    /// How long, and on which ground.
    pub period: Period,
}

/// The covenant's retention periods; what it does not name is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Deposits, from the closing of the subject's last case.
    pub deposits: Option<Period>,
    /// Closed cases, from their closing.
    pub cases: Option<Period>,
    /// Log entries, from their time.
    pub log: Vec<LogRetention>,
}

impl Retention {
    /// The rule that decides how long an entry of `kind` for `purpose` is kept: the rule that
    /// names the purpose, else the kind's default rule, else none (kept).
    pub fn log_rule(
        &self,
        kind: ExpiringKind,
        purpose: Option<PurposeRef>,
    ) -> Option<&LogRetention> {
        let of_kind = || self.log.iter().filter(move |r| r.kinds.contains(&kind));
        purpose
            .and_then(|u| of_kind().find(|r| r.purposes.contains(&u)))
            .or_else(|| of_kind().find(|r| r.purposes.is_empty()))
    }

    /// Whether the covenant removes anything at all.
    pub fn is_empty(&self) -> bool {
        self.deposits.is_none() && self.cases.is_none() && self.log.is_empty()
    }
}

/// Checks a staff member may make per minute unless the covenant says otherwise.
pub const DEFAULT_CHECKS_PER_MINUTE: u32 = 30;

/// Four hours: X-Road's rule for how long messages may go without a timestamp.
pub const DEFAULT_BLIND_AFTER_SECS: u64 = 4 * 3600;

impl Default for Witnessing {
    fn default() -> Self {
        Witnessing {
            witnesses: Vec::new(),
            quorum: 0,
            blind_after_secs: DEFAULT_BLIND_AFTER_SECS,
        }
    }
}

/// Small-cell protection and the views.
#[derive(Debug, Clone)]
pub struct Aggregates {
    /// Smallest group shown.
    pub threshold: u64,
    /// Rounding base.
    pub rounding: u64,
    /// The views.
    pub views: Vec<View>,
}

impl Aggregates {
    /// A view by id.
    pub fn view(&self, id: &str) -> Option<&View> {
        self.views.iter().find(|v| v.id == id)
    }
}

/// Code shown for fields no rule covers.
pub const NO_RULE_CODE: &str = "no-rule";
/// Code shown for fields of combinations the covenant does not permit at all.
pub const NOT_PERMITTED_CODE: &str = "not-permitted";

impl Covenant {
    /// Partner by id.
    pub fn partner(&self, id: &str) -> Option<PartnerRef> {
        self.partner_index.get(id).copied()
    }
    /// Role by id.
    pub fn role(&self, id: &str) -> Option<RoleRef> {
        self.role_index.get(id).copied()
    }
    /// Purpose by id.
    pub fn purpose(&self, id: &str) -> Option<PurposeRef> {
        self.purpose_index.get(id).copied()
    }
    /// Product by id.
    pub fn product(&self, id: &str) -> Option<ProductRef> {
        self.product_index.get(id).copied()
    }
    /// Field by qualified name (`product.field`).
    pub fn field(&self, qualified: &str) -> Option<FieldRef> {
        self.field_index.get(qualified).copied()
    }
    /// Partner data.
    pub fn partner_at(&self, p: PartnerRef) -> Option<&Partner> {
        self.partners.get(p.index())
    }
    /// Fields of a product.
    pub fn product_fields(&self, p: ProductRef) -> impl Iterator<Item = (FieldRef, &Field)> {
        let range = self
            .products
            .get(p.index())
            .map_or(0..0, |pr| pr.fields.clone());
        range.filter_map(|i| Some((FieldRef(u16::try_from(i).ok()?), self.fields.get(i)?)))
    }

    /// Whether a prohibition that holds for every purpose bars data of `category` from `partner`
    /// as is. Places outside the field rules and outside any purpose, such as the case
    /// register's classification, leave such data out for that partner.
    pub fn category_barred(&self, partner: PartnerRef, category: Category) -> bool {
        self.prohibitions.iter().any(|p| {
            p.to.get(partner.index()).copied().unwrap_or(false)
                && p.purposes.iter().all(|u| *u)
                && !p.allowed.contains(&ActionKind::Disclose)
                && self
                    .fields
                    .iter()
                    .zip(&p.fields)
                    .any(|(f, on)| *on && f.category == category)
        })
    }

    /// Whether a prohibition bars the person's identity (fields of category `identiteit`) as is
    /// from `partner` in `role` for `purpose` (in the example: the ITAT-R's `toetsing`). Such
    /// an audience never learns who the person is: it asks by case only, and what would let it
    /// link its answer to the person (the subject reference, the case id) is pseudonymised for
    /// it as its fields are.
    pub fn identity_barred(&self, partner: PartnerRef, role: RoleRef, purpose: PurposeRef) -> bool {
        self.prohibitions.iter().any(|p| {
            let on = |set: &[bool], i: usize| set.get(i).copied().unwrap_or(false);
            on(&p.to, partner.index())
                && on(&p.roles, role.index())
                && on(&p.purposes, purpose.index())
                && !p.allowed.contains(&ActionKind::Disclose)
                && self
                    .fields
                    .iter()
                    .zip(&p.fields)
                    .any(|(f, on)| *on && f.category == Category::Identiteit)
        })
    }

    /// Whether `role` may be held by `partner` and used for `purpose` at case level: the only
    /// combinations for which rules can disclose anything.
    pub fn reachable(&self, partner: PartnerRef, role: RoleRef, purpose: PurposeRef) -> bool {
        let held = self
            .roles
            .get(role.index())
            .and_then(|r| r.held_by.get(partner.index()))
            .copied()
            .unwrap_or(false);
        let purpose = self.purposes.get(purpose.index());
        let allowed = purpose
            .and_then(|u| u.roles.get(role.index()))
            .copied()
            .unwrap_or(false);
        held && allowed && purpose.is_some_and(|u| u.level == Level::Case)
    }

    /// Why a combination is not reachable, in words; `None` when it is.
    pub fn unreachable_reason(
        &self,
        partner: PartnerRef,
        role: RoleRef,
        purpose: PurposeRef,
    ) -> Option<String> {
        let (p, r, u) = (
            self.partners.get(partner.index())?,
            self.roles.get(role.index())?,
            self.purposes.get(purpose.index())?,
        );
        if !r.held_by.get(partner.index()).copied().unwrap_or(false) {
            return Some(format!("partner {} may not hold role {}", p.id, r.id));
        }
        if !u.roles.get(role.index()).copied().unwrap_or(false) {
            return Some(format!("purpose {} is not open to role {}", u.id, r.id));
        }
        if u.level == Level::Aggregate {
            return Some(format!(
                "purpose {} is aggregate-level: no case-level field ever flows under it",
                u.id
            ));
        }
        None
    }
}

/// Checks the shape of a C2SP note verifier key (`name+keyid+key`) and that its name is the
/// witness's; the key itself is checked where it is used.
fn vkey_shape(name: &str, vkey: &str) -> Result<(), String> {
    let mut parts = vkey.splitn(3, '+');
    let (Some(n), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("is not NAME+KEYID+KEY".into());
    };
    if n != name {
        return Err(format!("names `{n}`, not the witness"));
    }
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("has no 8-digit hex key id".into());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err("has no base64 key".into());
    }
    Ok(())
}

/// Builds the validated model, collecting every problem rather than stopping at the first.
impl Covenant {
    /// Resolves and checks every reference in `raw`.
    pub fn from_raw(raw: &RawCovenant) -> Result<Covenant, Vec<Diagnostic>> {
        let mut b = Builder::default();
        let covenant = b.build(raw);
        if b.diags.is_empty() {
            Ok(covenant)
        } else {
            Err(b.diags)
        }
    }
}

#[derive(Default)]
struct Builder {
    diags: Vec<Diagnostic>,
}

fn sp<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

const SELECTOR_HELP: &str =
    "name a partner id, a kind (kind:kernpartner, kind:affiliated, kind:peer) or * for all";

impl Builder {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::at(span, msg).help(help));
    }

    fn unique<'a>(&mut self, what: &str, ids: impl Iterator<Item = &'a S>) -> HashMap<String, u16> {
        let mut seen: HashMap<String, u16> = HashMap::new();
        let mut first: HashMap<String, Range<usize>> = HashMap::new();
        for id in ids {
            let name = id.get_ref().clone();
            if name.trim().is_empty() {
                self.err(
                    sp(id),
                    format!("{what} id is empty"),
                    format!("give the {what} a short id"),
                );
                continue;
            }
            if first.contains_key(&name) {
                self.err(
                    sp(id),
                    format!("duplicate {what} id `{name}`"),
                    format!("every {what} needs its own id; rename one of them"),
                );
                continue;
            }
            first.insert(name.clone(), sp(id));
            let n = u16::try_from(seen.len()).unwrap_or(u16::MAX);
            seen.insert(name, n);
        }
        seen
    }

    fn build(&mut self, raw: &RawCovenant) -> Covenant {
        // Redaction codes.
        let redaction_codes = raw.redaction_codes.clone();

        // Partners.
        let partner_ids = self.unique("partner", raw.partners.iter().map(|p| &p.get_ref().id));
        let mut partners = Vec::new();
        for sp_partner in &raw.partners {
            let p = sp_partner.get_ref();
            let kind = match PartnerKind::from_str(p.kind.get_ref()) {
                Ok(k) => k,
                Err(()) => {
                    self.err(
                        sp(&p.kind),
                        format!("unknown partner kind `{}`", p.kind.get_ref()),
                        format!("use one of: {}", PartnerKind::names()),
                    );
                    PartnerKind::Kernpartner
                }
            };
            let oin = p.oin.as_ref().map(|o| {
                let ok = o.get_ref().len() == 20 && o.get_ref().bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    self.err(
                        sp(o),
                        format!("OIN `{}` of partner {} is not 20 digits", o.get_ref(), p.id.get_ref()),
                        "an OIN (Organisatie-identificatienummer) is 20 digits, as in the certificate's subject serialNumber",
                    );
                }
                o.get_ref().clone()
            });
            let mut cert_sha256 = Vec::new();
            for fp in &p.cert_sha256 {
                let hexed: String = fp
                    .get_ref()
                    .chars()
                    .filter(|c| *c != ':')
                    .collect::<String>()
                    .to_lowercase();
                if hexed.len() == 64 && hexed.bytes().all(|b| b.is_ascii_hexdigit()) {
                    cert_sha256.push(hexed);
                } else {
                    self.err(
                        sp(fp),
                        format!("certificate fingerprint of partner {} is not a SHA-256 hex digest", p.id.get_ref()),
                        "give 64 hex digits (colons allowed), e.g. from `openssl x509 -noout -fingerprint -sha256`",
                    );
                }
            }
            if oin.is_none() && p.cert_sha256.is_empty() {
                self.err(
                    sp(&p.id),
                    format!("partner {} has no way to recognise its certificate", p.id.get_ref()),
                    "add `oin = \"…\"` (20 digits, from the certificate subject) or `cert_sha256 = [\"…\"]`",
                );
            }
            let recipient = self.key_ref(&p.recipient, KeyKind::AgeRecipient, p.id.get_ref());
            if p.token_keys.is_empty() {
                self.err(
                    sp(&p.id),
                    format!("partner {} has no token-signing keys", p.id.get_ref()),
                    "add `token_keys = [{ kid = \"…\", alg = \"ES256\", key = \"file:…\" }]`; without a key no request of this partner can be authenticated",
                );
            }
            self.unique("token key", p.token_keys.iter().map(|k| &k.get_ref().kid));
            let mut token_keys = Vec::new();
            for k in &p.token_keys {
                let k = k.get_ref();
                let alg = match k.alg.get_ref().as_str() {
                    "ES256" => Some(TokenAlg::Es256),
                    "EdDSA" => Some(TokenAlg::EdDsa),
                    "RS256" => Some(TokenAlg::Rs256),
                    a if a.starts_with("HS") => {
                        self.err(
                            sp(&k.alg),
                            format!("token algorithm `{a}` is refused: HMAC keys are shared secrets"),
                            "register the partner's public key with ES256, EdDSA or RS256; with a shared secret the gateway could forge the partner's tokens",
                        );
                        None
                    }
                    a if a.eq_ignore_ascii_case("none") => {
                        self.err(
                            sp(&k.alg),
                            "token algorithm `none` is refused: unsigned tokens prove nothing",
                            "register the partner's public key with ES256, EdDSA or RS256",
                        );
                        None
                    }
                    a => {
                        self.err(
                            sp(&k.alg),
                            format!("unknown token algorithm `{a}`"),
                            "use ES256, EdDSA or RS256",
                        );
                        None
                    }
                };
                let key = self.key_ref(&k.key, KeyKind::PublicKey, p.id.get_ref());
                if let (Some(alg), Some(key)) = (alg, key) {
                    token_keys.push(TokenKey {
                        kid: k.kid.get_ref().clone(),
                        alg,
                        key,
                    });
                }
            }
            partners.push(Partner {
                id: p.id.get_ref().clone(),
                name: p.name.clone(),
                kind,
                oin,
                cert_sha256,
                recipient: recipient.unwrap_or(KeyRef::Inline(String::new())),
                token_keys,
                governance_vkey: p
                    .governance_vkey
                    .as_ref()
                    .and_then(|k| self.key_ref(k, KeyKind::NoteKey, p.id.get_ref())),
            });
        }
        let kinds: Vec<PartnerKind> = partners.iter().map(|p| p.kind).collect();

        // Roles.
        let role_ids = self.unique("role", raw.roles.iter().map(|r| &r.get_ref().id));
        let mut roles = Vec::new();
        for r in &raw.roles {
            let r = r.get_ref();
            let held_by = self.partner_set(&r.held_by, &[], &partner_ids, &kinds, "held_by");
            if r.held_by.is_empty() {
                self.err(
                    sp(&r.id),
                    format!("role {} is held by nobody", r.id.get_ref()),
                    format!("add `held_by = [...]`: {SELECTOR_HELP}"),
                );
            }
            roles.push(Role {
                id: r.id.get_ref().clone(),
                name: r.name.clone(),
                held_by,
            });
        }

        // Purposes.
        let purpose_ids = self.unique("purpose", raw.purposes.iter().map(|u| &u.get_ref().id));
        let mut purposes = Vec::new();
        for u in &raw.purposes {
            let u = u.get_ref();
            let level = self.parse_vocab::<Level>(&u.level, "level");
            let relation = self.parse_vocab::<Relation>(&u.relation, "relation");
            if u.roles.is_empty() {
                self.err(
                    sp(&u.id),
                    format!("purpose {} has no roles", u.id.get_ref()),
                    "add `roles = [...]` with the roles that may request under this purpose; a purpose nobody may use cannot be requested",
                );
            }
            let role_set = self.id_set(&u.roles, &role_ids, "role", "roles", false);
            let mut case_status = Vec::new();
            for s in &u.case_status {
                if s.get_ref() == "*" {
                    case_status = CaseStatus::ALL.to_vec();
                    continue;
                }
                match CaseStatus::from_str(s.get_ref()) {
                    Ok(cs) => {
                        if !case_status.contains(&cs) {
                            case_status.push(cs);
                        }
                    }
                    Err(()) => self.err(
                        sp(s),
                        format!("unknown case status `{}`", s.get_ref()),
                        format!("use one of: {}, or *", CaseStatus::names()),
                    ),
                }
            }
            // Level-dependent checks only make sense once the level itself is known.
            let level_known = level.is_some();
            let level = level.unwrap_or(Level::Case);
            let relation = relation.unwrap_or(Relation::None);
            if u.confidential
                && u.confidential_ground
                    .as_ref()
                    .is_none_or(|g| g.get_ref().trim().is_empty())
            {
                self.err(
                    sp(&u.id),
                    format!(
                        "purpose {} is confidential without a legal basis",
                        u.id.get_ref()
                    ),
                    "add `confidential_ground = \"…\"`: the law that lets this purpose be left out of the data subject's access report (AVG art. 23 as the Netherlands implements it), or drop `confidential`",
                );
            }
            match level {
                _ if !level_known => {}
                Level::Case if u.case_status.is_empty() => self.err(
                    sp(&u.id),
                    format!("case-level purpose {} names no case statuses", u.id.get_ref()),
                    "add `case_status = [...]` with the statuses in which it may be used, or [\"*\"] for any",
                ),
                Level::Aggregate if relation != Relation::None => self.err(
                    sp(&u.relation),
                    format!(
                        "aggregate purpose {} cannot require relation `{relation}`: aggregates are about no single case",
                        u.id.get_ref()
                    ),
                    "use `relation = \"none\"` for aggregate purposes",
                ),
                Level::Aggregate if !u.case_status.is_empty() => self.err(
                    sp(&u.id),
                    format!("aggregate purpose {} names case statuses", u.id.get_ref()),
                    "remove `case_status`: aggregate purposes are not bound to one case",
                ),
                _ => {}
            }
            purposes.push(Purpose {
                id: u.id.get_ref().clone(),
                name: u.name.clone(),
                level,
                roles: role_set,
                case_status,
                relation,
                confidential: u.confidential,
                confidential_ground: u.confidential_ground.as_ref().map(|g| g.get_ref().clone()),
            });
        }

        // Districts.
        self.unique("district", raw.districts.iter().map(|d| &d.get_ref().name));
        let mut districts = Vec::new();
        for d in &raw.districts {
            let d = d.get_ref();
            let mut areas = Vec::new();
            for pc in &d.postcodes {
                match parse_area_range(pc.get_ref()) {
                    Some(r) => areas.push(r),
                    None => self.err(
                        sp(pc),
                        format!("`{}` is not a postcode area or range", pc.get_ref()),
                        "write a four-digit area (\"1011\") or an inclusive range (\"1011-1018\")",
                    ),
                }
            }
            districts.push(District {
                name: d.name.get_ref().clone(),
                areas,
            });
        }

        // Products and fields.
        let product_ids = self.unique("product", raw.products.iter().map(|p| &p.get_ref().id));
        let mut products = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        let mut field_index = HashMap::new();
        for p in &raw.products {
            let p = p.get_ref();
            let pid = p.id.get_ref();
            let owner = match partner_ids.get(p.owner.get_ref()) {
                Some(&i) => PartnerRef(i),
                None => {
                    self.err(
                        sp(&p.owner),
                        format!(
                            "product {pid} is owned by unknown partner `{}`",
                            p.owner.get_ref()
                        ),
                        "declare the partner in a [[partner]] table first, or correct the owner id",
                    );
                    PartnerRef(0)
                }
            };
            if !pid.starts_with(&format!("{}.", p.owner.get_ref())) {
                self.err(
                    sp(&p.id),
                    format!(
                        "product id `{pid}` does not start with its owner `{}.`",
                        p.owner.get_ref()
                    ),
                    format!(
                        "name it `{}.<name>` so every reader sees who holds the data",
                        p.owner.get_ref()
                    ),
                );
            }
            if p.fields.is_empty() {
                self.err(
                    sp(&p.id),
                    format!("product {pid} has no fields"),
                    "add `fields = [{ name = …, type = …, category = … }]`",
                );
            }
            self.unique("field", p.fields.iter().map(|f| &f.get_ref().name));
            let product_ref = ProductRef(u16::try_from(products.len()).unwrap_or(u16::MAX));
            let start = fields.len();
            for f in &p.fields {
                let f = f.get_ref();
                let ty = self
                    .parse_vocab::<FieldType>(&f.ty, "field type")
                    .unwrap_or(FieldType::Text);
                let category = self
                    .parse_vocab::<Category>(&f.category, "category")
                    .unwrap_or(Category::Identiteit);
                let qualified = format!("{pid}.{}", f.name.get_ref());
                if !field_index.contains_key(&qualified) {
                    field_index.insert(
                        qualified.clone(),
                        FieldRef(u16::try_from(fields.len()).unwrap_or(u16::MAX)),
                    );
                    fields.push(Field {
                        product: product_ref,
                        name: f.name.get_ref().clone(),
                        qualified,
                        ty,
                        category,
                    });
                }
            }
            let deposit_roles =
                self.id_set(&p.deposit_roles, &role_ids, "role", "deposit_roles", false);
            for raw_role in &p.deposit_roles {
                let held = role_ids
                    .get(raw_role.get_ref())
                    .and_then(|i| roles.get(usize::from(*i)))
                    .and_then(|role: &Role| role.held_by.get(owner.index()))
                    .copied();
                if held == Some(false) {
                    self.err(
                        sp(raw_role),
                        format!(
                            "role `{}` may deposit product {pid}, but its owner `{}` may not hold that role",
                            raw_role.get_ref(),
                            p.owner.get_ref()
                        ),
                        "list only roles the owner holds (see the role's `held_by`), or let the owner hold the role",
                    );
                }
            }
            products.push(Product {
                id: pid.clone(),
                owner,
                name: p.name.clone(),
                fields: start..fields.len(),
                deposit_roles,
            });
        }

        let names = Names {
            partners: &partner_ids,
            kinds: &kinds,
            roles: &role_ids,
            purposes: &purpose_ids,
            products: &product_ids,
            fields: &field_index,
            all_fields: &fields,
        };

        // Rules.
        let rule_ids = self.unique("rule", raw.rules.iter().map(|r| &r.get_ref().id));
        let mut rules = Vec::new();
        for r in &raw.rules {
            let r = r.get_ref();
            rules.push(self.rule(r, &names, &rule_ids, &purposes, &redaction_codes));
        }
        // Grounds the partners have not confirmed are labelled wherever they reach a person.
        if raw
            .governance
            .as_ref()
            .and_then(|g| g.get_ref().example_grounds)
            .unwrap_or(false)
        {
            for r in rules.iter_mut().filter(|r| !r.ground.is_empty()) {
                r.ground = format!("{EXAMPLE_GROUND}{}", r.ground);
            }
        }

        // Prohibitions.
        self.unique(
            "prohibition",
            raw.prohibitions.iter().map(|p| &p.get_ref().id),
        );
        let mut prohibitions = Vec::new();
        for pr in &raw.prohibitions {
            let pr = pr.get_ref();
            let to = self.partner_set(&pr.to, &pr.except_to, names.partners, names.kinds, "to");
            let roles = match &pr.roles {
                Some(list) => self.id_set(list, names.roles, "role", "roles", true),
                None => vec![true; names.roles.len()],
            };
            let purposes_set = match &pr.purposes {
                Some(list) => self.id_set(list, names.purposes, "purpose", "purposes", true),
                None => vec![true; names.purposes.len()],
            };
            let fields_set = self.data_set(
                &pr.id,
                &pr.products,
                &pr.categories,
                &pr.fields,
                &names,
                "prohibition",
            );
            let mut allowed = Vec::new();
            for a in &pr.allowed {
                match ActionKind::from_str(a.get_ref()) {
                    Ok(k) => allowed.push(k),
                    Err(()) => self.err(
                        sp(a),
                        format!("unknown action `{}`", a.get_ref()),
                        format!("use one of: {}", ActionKind::names()),
                    ),
                }
            }
            if !pr.allowed.is_empty() && !allowed.contains(&ActionKind::Withhold) {
                self.err(
                    sp(&pr.id),
                    format!("prohibition {} does not allow `withhold`", pr.id.get_ref()),
                    "add \"withhold\" to `allowed`: withholding is what the gateway does when nothing may flow",
                );
            }
            if pr.allowed.is_empty() {
                self.err(sp(&pr.id), format!("prohibition {} allows nothing", pr.id.get_ref()), "set `allowed = [\"withhold\", \"omit\"]` (and \"exists\" where a yes/no may flow)");
            }
            prohibitions.push(Prohibition {
                id: pr.id.get_ref().clone(),
                text: pr.text.clone(),
                to,
                roles,
                purposes: purposes_set,
                fields: fields_set,
                allowed,
                span: sp(&pr.id),
            });
        }

        let governance = self.governance(raw, &partner_ids, &role_ids, &purpose_ids, &purposes);
        let case_register = self.case_register(raw, &role_ids, &governance);
        let aggregates = self.aggregates(raw, &purpose_ids, &purposes);
        let witnessing = self.witnessing(raw, &partner_ids);
        let checks = self.checks(raw, &partner_ids, &governance);
        let retention = self.retention(raw, &purpose_ids);
        Covenant {
            id: raw.covenant.id.get_ref().clone(),
            title: raw.covenant.title.clone(),
            version_label: raw.covenant.version.clone(),
            redaction_codes,
            partner_index: partner_ids
                .into_iter()
                .map(|(k, v)| (k, PartnerRef(v)))
                .collect(),
            role_index: role_ids.into_iter().map(|(k, v)| (k, RoleRef(v))).collect(),
            purpose_index: purpose_ids
                .into_iter()
                .map(|(k, v)| (k, PurposeRef(v)))
                .collect(),
            product_index: product_ids
                .into_iter()
                .map(|(k, v)| (k, ProductRef(v)))
                .collect(),
            field_index,
            partners,
            roles,
            purposes,
            districts,
            products,
            fields,
            rules,
            prohibitions,
            case_register,
            aggregates,
            governance,
            witnessing,
            checks,
            retention,
        }
    }

    fn period(&mut self, what: &str, days_at: &Spanned<u64>, ground: &S) -> Option<Period> {
        let days = *days_at.get_ref();
        let mut ok = true;
        if days > MAX_RETENTION_DAYS {
            self.err(
                sp(days_at),
                format!("{what}: {days} days is more than a century"),
                format!("state the period in days, at most {MAX_RETENTION_DAYS}; leave the rule out to keep without end"),
            );
            ok = false;
        }
        if ground.get_ref().trim().is_empty() {
            self.err(
                sp(ground),
                format!("{what} has no ground"),
                "name the legal ground or covenant article that sets the period: it is shown wherever data went under it",
            );
            ok = false;
        }
        let days = u32::try_from(days).ok().filter(|_| ok)?;
        Some(Period {
            days,
            ground: ground.get_ref().clone(),
        })
    }

    fn retention(&mut self, raw: &RawCovenant, purposes: &HashMap<String, u16>) -> Retention {
        let Some(r) = raw.retention.as_ref().map(Spanned::get_ref) else {
            return Retention::default();
        };
        let deposits = r
            .deposits
            .as_ref()
            .map(Spanned::get_ref)
            .and_then(|p| self.period("[retention] deposits", &p.days, &p.ground));
        let cases = r
            .cases
            .as_ref()
            .map(Spanned::get_ref)
            .and_then(|p| self.period("[retention] cases", &p.days, &p.ground));
        self.unique("retention rule", r.log.iter().map(|l| &l.get_ref().id));
        // Which rule already covers (kind, purpose); `None` for the kind's default rule.
        let mut covered: HashMap<(ExpiringKind, Option<u16>), String> = HashMap::new();
        let mut log = Vec::new();
        for rule in &r.log {
            let rule = rule.get_ref();
            let id = rule.id.get_ref();
            if id == "cases" || id == "deposits" {
                self.err(
                    sp(&rule.id),
                    format!("retention rule id `{id}` is the name of [retention] {id}"),
                    "give the log rule another id: retention entries and reports name rules by id",
                );
            }
            let mut kinds = Vec::new();
            for k in &rule.kinds {
                match k.get_ref().parse::<ExpiringKind>() {
                    Ok(kind) => kinds.push(kind),
                    Err(()) if LASTING_KINDS.contains(&k.get_ref().as_str()) => self.err(
                        sp(k),
                        format!("retention rule {id}: `{}` entries are never removed", k.get_ref()),
                        "the log's own history (policy steps, key changes, starts and witness overrides, retention runs) is what `audit verify` and the art. 15 report rest on; remove the kind",
                    ),
                    Err(()) => self.err(
                        sp(k),
                        format!("retention rule {id}: unknown kind `{}`", k.get_ref()),
                        format!("one of {}", ExpiringKind::names()),
                    ),
                }
            }
            if rule.kinds.is_empty() {
                self.err(
                    sp(&rule.id),
                    format!("retention rule {id} names no kinds"),
                    format!("list the entry kinds it keeps: {}", ExpiringKind::names()),
                );
            }
            let mut refs = Vec::new();
            for u in &rule.purposes {
                match purposes.get(u.get_ref()) {
                    Some(i) => refs.push(*i),
                    None => self.err(
                        sp(u),
                        format!("retention rule {id}: unknown purpose `{}`", u.get_ref()),
                        "name a [[purpose]] id, or leave `purposes` out for any purpose",
                    ),
                }
            }
            let scopes: Vec<Option<u16>> = if rule.purposes.is_empty() {
                vec![None]
            } else {
                refs.iter().copied().map(Some).collect()
            };
            for kind in &kinds {
                for scope in &scopes {
                    if let Some(first) = covered.insert((*kind, *scope), id.clone()) {
                        let which = scope
                            .and_then(|u| {
                                rule.purposes
                                    .iter()
                                    .find(|p| purposes.get(p.get_ref()) == Some(&u))
                            })
                            .map_or_else(
                                || "any purpose".to_owned(),
                                |p| format!("purpose {}", p.get_ref()),
                            );
                        self.err(
                            sp(&rule.id),
                            format!("retention rules {first} and {id} both keep `{kind}` entries for {which}"),
                            "one rule per kind and purpose: a rule with `purposes` overrides the kind's rule without them",
                        );
                    }
                }
            }
            if let Some(period) =
                self.period(&format!("retention rule {id}"), &rule.days, &rule.ground)
            {
                log.push(LogRetention {
                    id: id.clone(),
                    kinds,
                    purposes: refs.into_iter().map(PurposeRef).collect(),
                    period,
                });
            }
        }
        Retention {
            deposits,
            cases,
            log,
        }
    }

    fn checks(
        &mut self,
        raw: &RawCovenant,
        partners: &HashMap<String, u16>,
        governance: &Governance,
    ) -> Checks {
        self.unique("approach", raw.approaches.iter().map(|a| &a.get_ref().id));
        let mut approaches = Vec::new();
        for a in &raw.approaches {
            let a = a.get_ref();
            if a.id.get_ref() == &governance.approach {
                self.err(
                    sp(&a.id),
                    format!("approach {} is this approach itself", a.id.get_ref()),
                    "[[approach]] lists the other approaches; this one answers from its own case register",
                );
            }
            if a.name.trim().is_empty() || a.contact.trim().is_empty() {
                self.err(
                    sp(&a.id),
                    format!("approach {} needs a name and a contact", a.id.get_ref()),
                    "a check that finds the person says whom to call: `contact = \"Regieteam Top600, 020 …\"`",
                );
            }
            let Some(p) = partners.get(a.partner.get_ref()) else {
                self.err(
                    sp(&a.partner),
                    format!(
                        "unknown partner `{}` of approach {}",
                        a.partner.get_ref(),
                        a.id.get_ref()
                    ),
                    "name the [[partner]] id of the partner that runs this approach",
                );
                continue;
            };
            approaches.push(Approach {
                id: a.id.get_ref().clone(),
                name: a.name.clone(),
                partner: PartnerRef(*p),
                contact: a.contact.clone(),
            });
        }
        let mut per_minute = DEFAULT_CHECKS_PER_MINUTE;
        if let Some(n) = raw
            .checks
            .as_ref()
            .and_then(|c| c.get_ref().per_staff_per_minute.as_ref())
        {
            match u32::try_from(*n.get_ref()) {
                Ok(v) if v > 0 => per_minute = v,
                _ => self.err(
                    sp(n),
                    "per_staff_per_minute must be 1 or more",
                    "leave it out for the default of 30 checks per staff member per minute",
                ),
            }
        }
        Checks {
            approaches,
            per_staff_per_minute: per_minute,
            before_inclusion: raw
                .checks
                .as_ref()
                .and_then(|c| c.get_ref().before_inclusion)
                .unwrap_or(false),
        }
    }

    fn witnessing(&mut self, raw: &RawCovenant, partners: &HashMap<String, u16>) -> Witnessing {
        self.unique("witness", raw.witnesses.iter().map(|w| &w.get_ref().name));
        let mut by_partner: HashMap<&str, Range<usize>> = HashMap::new();
        let mut witnesses = Vec::new();
        for w in &raw.witnesses {
            let w = w.get_ref();
            let partner = match partners.get(w.partner.get_ref()) {
                Some(p) => PartnerRef(*p),
                None => {
                    self.err(
                        sp(&w.partner),
                        format!(
                            "unknown partner `{}` of witness {}",
                            w.partner.get_ref(),
                            w.name.get_ref()
                        ),
                        "name the [[partner]] id of the partner that runs this witness",
                    );
                    continue;
                }
            };
            if let Some(first) = by_partner.insert(w.partner.get_ref(), sp(&w.partner)) {
                self.diags.push(
                    Diagnostic::at(sp(&w.partner), format!("partner {} runs two witnesses", w.partner.get_ref()))
                        .help(format!("one witness per partner (the first at bytes {}..{}): a quorum of one partner's witnesses holds nobody to the log", first.start, first.end)),
                );
            }
            if let Err(why) = vkey_shape(w.name.get_ref(), w.vkey.get_ref()) {
                self.err(
                    sp(&w.vkey),
                    format!("the vkey of witness {} {why}", w.name.get_ref()),
                    "paste the line `gateway witness init` printed: NAME+KEYID+BASE64, with the witness's name",
                );
            }
            let url = w.url.get_ref();
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                self.err(
                    sp(&w.url),
                    format!(
                        "the url of witness {} is not an http(s) URL",
                        w.name.get_ref()
                    ),
                    "write the witness's base URL, e.g. \"https://witness.politie.example/\"",
                );
            }
            witnesses.push(Witness {
                partner,
                name: w.name.get_ref().clone(),
                vkey: w.vkey.get_ref().clone(),
                url: url.clone(),
            });
        }
        let mut out = Witnessing {
            witnesses,
            ..Witnessing::default()
        };
        let n = raw.witnesses.len();
        let settings = raw.witnessing.as_ref();
        match settings.and_then(|s| s.get_ref().quorum.as_ref()) {
            Some(q) => {
                let want = usize::try_from(*q.get_ref()).unwrap_or(usize::MAX);
                if n > 0 && (want == 0 || want > n) {
                    self.err(
                        sp(q),
                        format!("a quorum of {want} with {n} witness(es)"),
                        format!("the quorum is 1 to {n}, the number of [[witness]] entries; a majority ({}) is usual", n / 2 + 1),
                    );
                }
                out.quorum = want.min(n);
            }
            None if n > 0 => {
                let at = raw.witnesses.first().map(sp).unwrap_or_default();
                self.err(
                    at,
                    format!("{n} witness(es) but no quorum"),
                    format!("add [witnessing] with `quorum = {}` (a majority) or the number the partners agreed", n / 2 + 1),
                );
            }
            None => {}
        }
        if let Some(b) = settings.and_then(|s| s.get_ref().blind_after_secs.as_ref()) {
            if *b.get_ref() == 0 {
                self.err(
                    sp(b),
                    "blind_after_secs = 0 stops every disclosure",
                    "leave it out for the default of four hours (14400)",
                );
            }
            out.blind_after_secs = *b.get_ref();
        }
        if n == 0
            && let Some(s) = settings
        {
            self.err(
                sp(s),
                "[witnessing] without any [[witness]]",
                "add the partners' [[witness]] entries, or remove [witnessing]",
            );
        }
        out
    }

    fn aggregates(
        &mut self,
        raw: &RawCovenant,
        purpose_ids: &HashMap<String, u16>,
        purposes: &[Purpose],
    ) -> Aggregates {
        let (mut threshold, mut rounding) = (10, 5);
        if let Some(a) = &raw.aggregates {
            if let Some(t) = &a.threshold {
                threshold = *t.get_ref();
                if threshold < 2 {
                    self.err(
                        sp(t),
                        "an aggregate threshold below 2 protects nobody",
                        "use the covenant's minimum group size (10 is usual)",
                    );
                }
            }
            if let Some(r) = &a.rounding {
                rounding = (*r.get_ref()).max(1);
            }
        }
        self.unique("view", raw.views.iter().map(|v| &v.get_ref().id));
        let mut views = Vec::new();
        for v in &raw.views {
            let v = v.get_ref();
            let purpose_set = self.id_set(&v.purposes, purpose_ids, "purpose", "purposes", false);
            for (u, on) in purposes.iter().zip(&purpose_set) {
                if *on && u.level != Level::Aggregate {
                    self.err(
                        sp(&v.id),
                        format!(
                            "view {} is open to case-level purpose {}",
                            v.id.get_ref(),
                            u.id
                        ),
                        "views are for aggregate purposes (level = \"aggregate\") only",
                    );
                }
            }
            if v.purposes.is_empty() {
                self.err(
                    sp(&v.id),
                    format!("view {} names no purposes", v.id.get_ref()),
                    "add `purposes = [\"monitor\"]` or another aggregate purpose",
                );
            }
            let dimensions: Vec<Dimension> = v
                .dimensions
                .iter()
                .filter_map(|d| self.parse_vocab::<Dimension>(d, "dimension"))
                .collect();
            let measure = self
                .parse_vocab::<Measure>(&v.measure, "measure")
                .unwrap_or(Measure::Count);
            let max = if measure == Measure::Count { 2 } else { 1 };
            if dimensions.len() > max {
                self.err(
                    sp(&v.id),
                    format!(
                        "view {} has {} dimensions; {measure} allows at most {max}",
                        v.id.get_ref(),
                        dimensions.len()
                    ),
                    "drop a dimension: small caseloads do not bear finer tables",
                );
            }
            views.push(View {
                id: v.id.get_ref().clone(),
                name: v.name.clone(),
                purposes: purpose_set,
                dimensions,
                measure,
            });
        }
        Aggregates {
            threshold,
            rounding,
            views,
        }
    }

    fn governance(
        &mut self,
        raw: &RawCovenant,
        partners: &HashMap<String, u16>,
        roles: &HashMap<String, u16>,
        purpose_ids: &HashMap<String, u16>,
        purposes: &[Purpose],
    ) -> Governance {
        let g = raw.governance.as_ref().map(|g| g.get_ref());
        let mut one =
            |v: Option<&S>, ids: &HashMap<String, u16>, what: &str, key: &str| -> Option<u16> {
                let v = v?;
                match ids.get(v.get_ref()) {
                    Some(i) => Some(*i),
                    None => {
                        let mut known: Vec<&str> = ids.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        self.err(
                            sp(v),
                            format!("unknown {what} `{}` in [governance] {key}", v.get_ref()),
                            format!("known {what}s: {}", known.join(", ")),
                        );
                        None
                    }
                }
            };
        let gov = Governance {
            programme_partner: one(
                g.and_then(|g| g.programme_partner.as_ref()),
                partners,
                "partner",
                "programme_partner",
            )
            .map(PartnerRef),
            approach: g.and_then(|g| g.approach.as_ref()).map_or_else(
                || raw.covenant.id.get_ref().clone(),
                |a| a.get_ref().clone(),
            ),
            privacy_officer_role: one(
                g.and_then(|g| g.privacy_officer_role.as_ref()),
                roles,
                "role",
                "privacy_officer_role",
            )
            .map(RoleRef),
            administrator_role: one(
                g.and_then(|g| g.administrator_role.as_ref()),
                roles,
                "role",
                "administrator_role",
            )
            .map(RoleRef),
            check_purpose: one(
                g.and_then(|g| g.check_purpose.as_ref()),
                purpose_ids,
                "purpose",
                "check_purpose",
            )
            .map(PurposeRef),
            voorportaal_role: one(
                g.and_then(|g| g.voorportaal_role.as_ref()),
                roles,
                "role",
                "voorportaal_role",
            )
            .map(RoleRef),
            regisseur_role: one(
                g.and_then(|g| g.regisseur_role.as_ref()),
                roles,
                "role",
                "regisseur_role",
            )
            .map(RoleRef),
            static_role: one(
                g.and_then(|g| g.static_role.as_ref()),
                roles,
                "role",
                "static_role",
            )
            .map(RoleRef),
            approval_threshold: g.and_then(|g| g.approval_threshold),
        };
        if let (Some(t), Some(span)) = (gov.approval_threshold, raw.governance.as_ref()) {
            let core = raw
                .partners
                .iter()
                .map(|p| p.get_ref())
                .filter(|p| p.kind.get_ref() == "kernpartner");
            let without: Vec<&str> = core
                .clone()
                .filter(|p| p.governance_vkey.is_none())
                .map(|p| p.id.get_ref().as_str())
                .collect();
            let keyed = u32::try_from(core.count() - without.len()).unwrap_or(u32::MAX);
            if !without.is_empty() {
                self.err(
                    sp(span),
                    format!("[governance] approval_threshold is set, but core partners {} have no governance_vkey", without.join(", ")),
                    "give every core partner its governance key: its approvals are signed with it",
                );
            } else if t == 0 || t > keyed {
                self.err(
                    sp(span),
                    format!("[governance] approval_threshold = {t}, but there are {keyed} core partners"),
                    "name how many core partners must sign a shared change: at least 1, at most all",
                );
            }
        }
        if let (Some(u), Some(raw_u)) =
            (gov.check_purpose, g.and_then(|g| g.check_purpose.as_ref()))
            && purposes
                .get(u.index())
                .is_some_and(|p| p.level != Level::Case)
        {
            self.err(
                sp(raw_u),
                format!("the check purpose `{}` is aggregate-level", raw_u.get_ref()),
                "a check answers about one person: name a case-level purpose",
            );
        }
        // A relation the covenant uses needs the role it is about.
        for (p, raw_p) in purposes.iter().zip(&raw.purposes) {
            let raw_p = raw_p.get_ref();
            let missing = match p.relation {
                Relation::Voorportaal if gov.voorportaal_role.is_none() => Some("voorportaal_role"),
                Relation::IsRegisseur | Relation::OnCase if gov.regisseur_role.is_none() => {
                    Some("regisseur_role")
                }
                _ => None,
            };
            if let Some(key) = missing {
                self.err(
                    sp(&raw_p.relation),
                    format!(
                        "purpose {} requires relation `{}`, but [governance] names no {key}",
                        raw_p.id.get_ref(),
                        raw_p.relation.get_ref()
                    ),
                    format!("add `{key} = \"…\"` to [governance], naming the role it is about"),
                );
            }
        }
        gov
    }

    fn case_register(
        &mut self,
        raw: &RawCovenant,
        roles: &HashMap<String, u16>,
        gov: &Governance,
    ) -> CaseRegister {
        let static_role = raw
            .governance
            .as_ref()
            .and_then(|g| g.get_ref().static_role.as_ref())
            .filter(|_| gov.static_role.is_some())
            .map(|r| r.get_ref().clone());
        let mut reg = CaseRegister::default();
        if let Some(cr) = &raw.case_register {
            let cr = cr.get_ref();
            reg.create = self.id_set(&cr.create, roles, "role", "create", false);
            reg.update = self.id_set(&cr.update, roles, "role", "update", false);
            reg.read = self.id_set(&cr.read, roles, "role", "read", false);
            reg.read_classification = self.id_set(
                &cr.read_classification,
                roles,
                "role",
                "read_classification",
                false,
            );
            if let Some(d) = &cr.notification_days {
                if (1..=365).contains(d.get_ref()) {
                    reg.notification_days = Some(*d.get_ref());
                } else {
                    self.err(
                        sp(d),
                        format!("notification_days = {} is out of range", d.get_ref()),
                        "name the days after the inclusion decision within which the person is notified: 1 to 365 (the Handreiking: 21)",
                    );
                }
            }
            let appoint = cr.appoint.as_ref();
            reg.appoint_regisseur =
                self.appointment(appoint.and_then(|a| a.regisseur.as_ref()), roles, gov, true);
            reg.compose_uvo = self.appointment(
                appoint.and_then(|a| a.uvo_partners.as_ref()),
                roles,
                gov,
                false,
            );
        } else {
            let n = roles.len();
            reg.create = vec![false; n];
            reg.update = vec![false; n];
            reg.read = vec![false; n];
            reg.read_classification = vec![false; n];
        }
        let n = roles.len();
        for a in [&mut reg.appoint_regisseur, &mut reg.compose_uvo] {
            a.roles.resize(n, false);
        }
        let mut body_ids: HashMap<String, usize> = HashMap::new();
        for b in &raw.bodies {
            let b = b.get_ref();
            if body_ids.contains_key(b.id.get_ref()) {
                self.err(
                    sp(&b.id),
                    format!("body `{}` is declared twice", b.id.get_ref()),
                    "give every [[body]] its own id",
                );
                continue;
            }
            let members = self.id_set(&b.roles, roles, "role", "body roles", false);
            let quorum = usize::from(*b.quorum.get_ref());
            let partners = b.partners.as_ref().map_or(1, |p| usize::from(*p.get_ref()));
            if quorum == 0 || partners == 0 || partners > quorum {
                self.err(
                    sp(&b.id),
                    format!(
                        "body `{}`: quorum {quorum} of at least {partners} partners cannot be met",
                        b.id.get_ref()
                    ),
                    "a quorum of at least 1 member, and `partners` between 1 and the quorum",
                );
            }
            body_ids.insert(b.id.get_ref().clone(), reg.bodies.len());
            reg.bodies.push(Body {
                id: b.id.get_ref().clone(),
                name: b.name.clone(),
                roles: members,
                quorum,
                partners,
            });
        }
        let mut seen: HashMap<(CaseStatus, CaseStatus), ()> = HashMap::new();
        for t in &raw.transitions {
            let t = t.get_ref();
            let mut body_of = |b: &Option<S>| {
                b.as_ref().and_then(|b| match body_ids.get(b.get_ref()) {
                    Some(i) => Some(*i),
                    None => {
                        self.err(
                            sp(b),
                            format!("unknown body `{}`", b.get_ref()),
                            "name a [[body]] declared in the covenant",
                        );
                        None
                    }
                })
            };
            let body = body_of(&t.body);
            let review = body_of(&t.review);
            let Some(to) = self.parse_vocab::<CaseStatus>(&t.to, "case status") else {
                continue;
            };
            let role_set = self.id_set(&t.roles, roles, "role", "roles", false);
            if t.roles.is_empty() {
                self.err(
                    sp(&t.to),
                    format!("transition to {to} names no roles"),
                    "add `roles = [...]` with the roles that may make this change",
                );
            }
            // The PTO-R alone decides that a case becomes static (seed 002): the covenant names
            // its role as [governance] static_role.
            if to == CaseStatus::Statisch {
                match &static_role {
                    None => self.err(
                        sp(&t.to),
                        "a transition to statisch needs [governance] static_role",
                        "name the one role that may make a case static (the PTO-R): `static_role = \"pto-lid\"`",
                    ),
                    Some(only) => {
                        for r in &t.roles {
                            if r.get_ref() != only {
                                self.err(
                                    sp(r),
                                    format!("only {only} may make a case statisch, not `{}`", r.get_ref()),
                                    format!("the work process reserves this decision to the PTO-R; list only \"{only}\""),
                                );
                            }
                        }
                    }
                }
            }
            for f in &t.from {
                let Some(from) = self.parse_vocab::<CaseStatus>(f, "case status") else {
                    continue;
                };
                if !from.may_ever_become(to) {
                    self.err(
                        sp(f),
                        format!("no work process lets a case go from {from} to {to}"),
                        "remove this status from `from`: nothing leaves afgesloten or niet-opgenomen, nothing returns to melding, and a status does not move to itself",
                    );
                    continue;
                }
                if seen.insert((from, to), ()).is_some() {
                    self.err(
                        sp(f),
                        format!("transition {from} → {to} is declared twice"),
                        "merge the roles into one [[transition]]",
                    );
                    continue;
                }
                reg.transitions.push((from, to, role_set.clone()));
                if let Some(b) = body {
                    reg.decided_by.push((from, to, b));
                }
                if let Some(b) = review {
                    reg.reviewed_by.push((from, to, b));
                }
            }
        }
        reg
    }

    /// One `[case_register.appoint.*]` decision. The regisseur is appointed by the Regieoverleg
    /// (Handreiking 2016, "de door het Regieoverleg benoemde regisseur"): a regisseur role that
    /// appoints regisseurs would let a requester grant itself the relation, so it is an error.
    fn appointment(
        &mut self,
        raw: Option<&Spanned<RawAppointment>>,
        roles: &HashMap<String, u16>,
        gov: &Governance,
        of_regisseur: bool,
    ) -> Appointment {
        let Some(raw) = raw else {
            return Appointment::default();
        };
        let a = raw.get_ref();
        let key = if of_regisseur {
            "appoint.regisseur"
        } else {
            "appoint.uvo_partners"
        };
        let set = self.id_set(&a.roles, roles, "role", key, false);
        if of_regisseur {
            let regisseur = gov.regisseur_role.map(|r| r.index());
            for r in &a.roles {
                if regisseur.is_some()
                    && roles.get(r.get_ref()).map(|i| usize::from(*i)) == regisseur
                {
                    self.err(
                        sp(r),
                        format!("`{}` may not appoint regisseurs", r.get_ref()),
                        "the Regieoverleg appoints the regisseur (Handreiking 2016, seeds/004 line 156); list the Regieoverleg's roles (regieoverleg-lid, secretaris)",
                    );
                }
            }
        }
        let statuses = a
            .statuses
            .iter()
            .filter_map(|s| self.parse_vocab::<CaseStatus>(s, "case status"))
            .collect();
        Appointment {
            roles: set,
            statuses,
        }
    }

    fn parse_vocab<T: FromStr<Err = ()> + VocabNames>(&mut self, s: &S, what: &str) -> Option<T> {
        match T::from_str(s.get_ref()) {
            Ok(v) => Some(v),
            Err(()) => {
                self.err(
                    sp(s),
                    format!("unknown {what} `{}`", s.get_ref()),
                    format!("use one of: {}", T::vocab_names()),
                );
                None
            }
        }
    }

    fn key_ref(&mut self, s: &S, kind: KeyKind, partner: &str) -> Option<KeyRef> {
        let v = s.get_ref().trim();
        if let Some(path) = v.strip_prefix("file:") {
            if path.is_empty() {
                self.err(
                    sp(s),
                    format!("empty key path for partner {partner}"),
                    "write `file:PATH`, relative to the gateway's key directory",
                );
                return None;
            }
            return Some(KeyRef::File(path.to_owned()));
        }
        let ok = match kind {
            KeyKind::AgeRecipient => {
                v.starts_with("age1")
                    && v.len() > 10
                    && v.bytes().all(|b| b.is_ascii_alphanumeric())
            }
            KeyKind::PublicKey => v.starts_with("-----BEGIN PUBLIC KEY-----"),
            KeyKind::NoteKey => {
                // The key is base64, which may itself contain `+`.
                let parts: Vec<&str> = v.splitn(3, '+').collect();
                matches!(parts.as_slice(), [name, id, key]
                    if !name.is_empty()
                        && id.len() == 8
                        && id.bytes().all(|b| b.is_ascii_hexdigit())
                        && !key.is_empty())
            }
        };
        if ok {
            Some(KeyRef::Inline(v.to_owned()))
        } else {
            let (what, help) = match kind {
                KeyKind::AgeRecipient => (
                    "age recipient",
                    "write the partner's `age1…` recipient, or `file:PATH` to read it from the key directory",
                ),
                KeyKind::PublicKey => (
                    "public key",
                    "write a PEM `-----BEGIN PUBLIC KEY-----` block, or `file:PATH` to read it from the key directory",
                ),
                KeyKind::NoteKey => (
                    "governance key",
                    "write the partner's signed-note verifier key `name+keyid+base64` (`gateway policy governance-key`), or `file:PATH`",
                ),
            };
            self.err(
                sp(s),
                format!("{what} of partner {partner} is neither inline key material nor `file:`"),
                help,
            );
            None
        }
    }

    /// Resolves a receiving-partner selector (`id`, `kind:KIND`, `*`) minus exceptions.
    fn partner_set(
        &mut self,
        list: &[S],
        except: &[S],
        ids: &HashMap<String, u16>,
        kinds: &[PartnerKind],
        key: &str,
    ) -> Vec<bool> {
        let mut set = vec![false; kinds.len()];
        let resolve = |b: &mut Self, entry: &S, value: bool, set: &mut Vec<bool>| {
            let e = entry.get_ref();
            if e == "*" {
                set.iter_mut().for_each(|x| *x = value);
            } else if let Some(k) = e.strip_prefix("kind:") {
                match PartnerKind::from_str(k) {
                    Ok(kind) => {
                        for (x, pk) in set.iter_mut().zip(kinds) {
                            if *pk == kind {
                                *x = value;
                            }
                        }
                    }
                    Err(()) => b.err(
                        sp(entry),
                        format!("unknown partner kind `{k}` in `{key}`"),
                        format!("use one of: {}", PartnerKind::names()),
                    ),
                }
            } else if let Some(&i) = ids.get(e) {
                if let Some(x) = set.get_mut(usize::from(i)) {
                    *x = value;
                }
            } else {
                b.err(
                    sp(entry),
                    format!("unknown partner `{e}` in `{key}`"),
                    format!("declare it in a [[partner]] table, or {SELECTOR_HELP}"),
                );
            }
        };
        for e in list {
            resolve(self, e, true, &mut set);
        }
        for e in except {
            resolve(self, e, false, &mut set);
        }
        set
    }

    /// Resolves a list of ids (or `*`) against `ids`.
    fn id_set(
        &mut self,
        list: &[S],
        ids: &HashMap<String, u16>,
        what: &str,
        key: &str,
        star: bool,
    ) -> Vec<bool> {
        let mut set = vec![false; ids.len()];
        for e in list {
            if e.get_ref() == "*" && star {
                set.iter_mut().for_each(|x| *x = true);
            } else if let Some(&i) = ids.get(e.get_ref()) {
                if let Some(x) = set.get_mut(usize::from(i)) {
                    *x = true;
                }
            } else {
                let mut known: Vec<&String> = ids.keys().collect();
                known.sort();
                let known = known
                    .into_iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    sp(e),
                    format!("unknown {what} `{}` in `{key}`", e.get_ref()),
                    format!(
                        "known {what}s: {known}{}",
                        if star { "; or * for all" } else { "" }
                    ),
                );
            }
        }
        set
    }

    /// Resolves the data a rule or prohibition covers: the intersection of the given selectors.
    fn data_set(
        &mut self,
        id: &S,
        products: &Option<Vec<S>>,
        categories: &Option<Vec<S>>,
        fields: &Option<Vec<S>>,
        names: &Names<'_>,
        what: &str,
    ) -> Vec<bool> {
        let n = names.all_fields.len();
        if products.is_none() && categories.is_none() && fields.is_none() {
            self.err(
                sp(id),
                format!("{what} {} does not say which data it covers", id.get_ref()),
                "add `products`, `categories` or `fields` (use `categories = [\"*\"]` to mean all data)",
            );
            return vec![false; n];
        }
        let mut set = vec![true; n];
        if let Some(list) = products {
            let chosen = self.id_set(list, names.products, "product", "products", false);
            for (x, f) in set.iter_mut().zip(names.all_fields) {
                *x &= chosen.get(f.product.index()).copied().unwrap_or(false);
            }
        }
        if let Some(list) = categories {
            let mut chosen: Vec<Category> = Vec::new();
            for c in list {
                if c.get_ref() == "*" {
                    chosen = Category::ALL.to_vec();
                } else if let Ok(cat) = Category::from_str(c.get_ref()) {
                    chosen.push(cat);
                } else {
                    self.err(
                        sp(c),
                        format!("unknown category `{}`", c.get_ref()),
                        format!("use one of: {}, or *", Category::names()),
                    );
                }
            }
            for (x, f) in set.iter_mut().zip(names.all_fields) {
                *x &= chosen.contains(&f.category);
            }
        }
        if let Some(list) = fields {
            let mut chosen = vec![false; n];
            for f in list {
                match names.fields.get(f.get_ref()) {
                    Some(fr) => {
                        if let Some(x) = chosen.get_mut(fr.index()) {
                            *x = true;
                        }
                        if !set.get(fr.index()).copied().unwrap_or(false) {
                            self.err(
                                sp(f),
                                format!("field `{}` is excluded by this {what}'s own `products` or `categories`", f.get_ref()),
                                "the selectors are combined with AND; remove the field or widen `products`/`categories`",
                            );
                        }
                    }
                    None => self.err(
                        sp(f),
                        format!("unknown field `{}`", f.get_ref()),
                        "name fields as `product.field`, e.g. `politie.registraties.datum`, as declared in the catalogue",
                    ),
                }
            }
            for (x, c) in set.iter_mut().zip(chosen) {
                *x &= c;
            }
        }
        set
    }

    fn rule(
        &mut self,
        r: &RawRule,
        names: &Names<'_>,
        rule_ids: &HashMap<String, u16>,
        purposes: &[Purpose],
        codes: &BTreeMap<String, String>,
    ) -> Rule {
        let rid = r.id.get_ref();
        if r.to.is_empty() {
            self.err(
                sp(&r.id),
                format!("rule {rid} has an empty `to`"),
                SELECTOR_HELP,
            );
        }
        let to = self.partner_set(&r.to, &r.except_to, names.partners, names.kinds, "to");
        let roles = self.id_set(&r.roles, names.roles, "role", "roles", true);
        let purpose_set = self.id_set(&r.purposes, names.purposes, "purpose", "purposes", true);
        if r.roles.is_empty() {
            self.err(
                sp(&r.id),
                format!("rule {rid} has an empty `roles`"),
                "name the requester roles it is for, or [\"*\"]",
            );
        }
        if r.purposes.is_empty() {
            self.err(
                sp(&r.id),
                format!("rule {rid} has an empty `purposes`"),
                "name the purposes it is for, or [\"*\"]",
            );
        }
        // A rule that names an aggregate purpose explicitly is a mistake worth saying plainly.
        for e in &r.purposes {
            if let Some(&i) = names.purposes.get(e.get_ref())
                && purposes
                    .get(usize::from(i))
                    .is_some_and(|u| u.level == Level::Aggregate)
            {
                self.err(
                    sp(e),
                    format!("rule {rid} names aggregate purpose `{}`: field rules never apply to it", e.get_ref()),
                    "aggregate purposes release only the covenant's aggregate views; remove it from `purposes`",
                );
            }
        }
        let fields = self.data_set(&r.id, &r.products, &r.categories, &r.fields, names, "rule");
        let action = self.action(r);
        let kind = action.map(Action::kind);

        // Code and ground.
        let code = r.code.as_ref().map(|c| c.get_ref().clone());
        if let Some(c) = &r.code {
            if kind.is_some() && kind != Some(ActionKind::Withhold) {
                self.err(
                    sp(c),
                    format!(
                        "rule {rid} has a `code` but action `{}`",
                        r.action.get_ref()
                    ),
                    "`code` is shown only in withhold markers; remove it",
                );
            } else if !codes.contains_key(c.get_ref()) {
                self.err(
                    sp(c),
                    format!("unknown redaction code `{}`", c.get_ref()),
                    "declare it under [redaction_codes] with the legal ground it stands for",
                );
            }
        }
        let ground = match (&r.ground, kind) {
            (Some(g), _) if !g.trim().is_empty() => g.clone(),
            (_, Some(ActionKind::Withhold)) => {
                if r.code.is_none() {
                    self.err(sp(&r.id), format!("rule {rid} withholds without a redaction `code`"), "add `code = \"…\"` from [redaction_codes]: every withheld field is labelled with its code and ground");
                }
                code.as_ref()
                    .and_then(|c| codes.get(c))
                    .cloned()
                    .unwrap_or_default()
            }
            (_, Some(ActionKind::Omit)) | (_, None) => String::new(),
            (_, Some(k)) => {
                self.err(
                    sp(&r.id),
                    format!("rule {rid} ({k}) has no legal ground"),
                    "add `ground = \"…\"` naming the article that allows this flow; only withhold and omit rules may go without",
                );
                String::new()
            }
        };

        let mut overrides = Vec::new();
        for o in &r.overrides {
            match rule_ids.get(o.get_ref()) {
                Some(_) if o.get_ref() == rid => {
                    self.err(
                        sp(o),
                        format!("rule {rid} overrides itself"),
                        "remove its own id from `overrides`",
                    );
                }
                Some(&i) => overrides.push(RuleRef(i)),
                None => self.err(
                    sp(o),
                    format!("rule {rid} overrides unknown rule `{}`", o.get_ref()),
                    "name an existing rule id in `overrides`",
                ),
            }
        }
        Rule {
            id: rid.clone(),
            description: r.description.clone(),
            to,
            roles,
            purposes: purpose_set,
            fields,
            action: action.unwrap_or(Action::Withhold),
            code,
            ground,
            overrides,
            span: sp(&r.id),
        }
    }

    fn action(&mut self, r: &RawRule) -> Option<Action> {
        let rid = r.id.get_ref();
        let kind = self.parse_vocab::<ActionKind>(&r.action, "action")?;
        let misplaced = |b: &mut Self,
                         present: bool,
                         span: Option<Range<usize>>,
                         param: &str,
                         belongs: &str| {
            if present {
                b.err(
                    span.unwrap_or_else(|| sp(&r.id)),
                    format!("rule {rid}: `{param}` does not apply to action `{kind}`"),
                    format!("`{param}` belongs to `{belongs}`; remove it or change the action"),
                );
            }
        };
        if kind != ActionKind::Mask {
            misplaced(
                self,
                r.keep_last.is_some(),
                r.keep_last.as_ref().map(sp),
                "keep_last",
                "mask",
            );
        }
        if kind != ActionKind::Generalize {
            misplaced(
                self,
                r.level.is_some(),
                r.level.as_ref().map(sp),
                "level",
                "generalize",
            );
            misplaced(
                self,
                r.band.is_some(),
                r.band.as_ref().map(sp),
                "band",
                "generalize with level \"age-band\"",
            );
        }
        Some(match kind {
            ActionKind::Disclose => Action::Disclose,
            ActionKind::Pseudonymize => Action::Pseudonymize,
            ActionKind::Exists => Action::Exists,
            ActionKind::Withhold => Action::Withhold,
            ActionKind::Omit => Action::Omit,
            ActionKind::Mask => match &r.keep_last {
                Some(k) => Action::Mask {
                    keep_last: *k.get_ref(),
                },
                None => {
                    self.err(
                        sp(&r.action),
                        format!("rule {rid}: mask needs `keep_last`"),
                        "add `keep_last = N`: how many trailing characters stay visible",
                    );
                    return None;
                }
            },
            ActionKind::Generalize => {
                let Some(level) = &r.level else {
                    self.err(
                        sp(&r.action),
                        format!("rule {rid}: generalize needs `level`"),
                        format!("add `level = \"…\"`, one of: {}", Generalization::names()),
                    );
                    return None;
                };
                let to = self.parse_vocab::<Generalization>(level, "generalize level")?;
                let band = match (&r.band, to) {
                    (Some(b), Generalization::AgeBand) if *b.get_ref() == 0 => {
                        self.err(
                            sp(b),
                            format!("rule {rid}: an age band of 0 years"),
                            "use a band of at least 1 year (5 or 10 are usual)",
                        );
                        10
                    }
                    (Some(b), Generalization::AgeBand) => *b.get_ref(),
                    (Some(b), _) => {
                        self.err(
                            sp(b),
                            format!("rule {rid}: `band` applies only to level \"age-band\""),
                            "remove `band`",
                        );
                        10
                    }
                    (None, _) => 10,
                };
                Action::Generalize { to, band }
            }
        })
    }
}

#[derive(Clone, Copy)]
enum KeyKind {
    AgeRecipient,
    PublicKey,
    NoteKey,
}

struct Names<'a> {
    partners: &'a HashMap<String, u16>,
    kinds: &'a [PartnerKind],
    roles: &'a HashMap<String, u16>,
    purposes: &'a HashMap<String, u16>,
    products: &'a HashMap<String, u16>,
    fields: &'a HashMap<String, FieldRef>,
    all_fields: &'a [Field],
}

/// Vocabularies that can list their names in an error message.
pub trait VocabNames {
    /// All names, comma-separated.
    fn vocab_names() -> String;
}

macro_rules! vocab_names {
    ($($t:ty),+) => { $(impl VocabNames for $t { fn vocab_names() -> String { <$t>::names() } })+ };
}
vocab_names!(
    Level,
    Relation,
    FieldType,
    Category,
    PartnerKind,
    ActionKind,
    Generalization,
    CaseStatus,
    Dimension,
    Measure
);

fn parse_area_range(s: &str) -> Option<(u16, u16)> {
    let area = |a: &str| -> Option<u16> {
        let a = a.trim();
        (a.len() == 4 && a.bytes().all(|b| b.is_ascii_digit()) && !a.starts_with('0'))
            .then(|| a.parse().ok())?
    };
    match s.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (area(lo)?, area(hi)?);
            (lo <= hi).then_some((lo, hi))
        }
        None => area(s).map(|a| (a, a)),
    }
}

impl District {
    /// Whether a postcode falls in this district.
    pub fn contains(&self, postcode: &str) -> bool {
        postcode_area(postcode)
            .is_some_and(|a| self.areas.iter().any(|(lo, hi)| (*lo..=*hi).contains(&a)))
    }
}
