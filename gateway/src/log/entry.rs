//! The log record: one type for every entry, written in one canonical serialisation and read
//! back typed by every reader (search, the art. 15 report, simulation, export, verify).
//!
//! Field names follow the Logboek Dataverwerkingen where it has one (`trace_id`,
//! `processing_activity`, `data_subject`). The searchable columns of the store are derived from
//! an entry by [`LogEntry::index`] and nowhere else; `audit verify` checks every stored column
//! against that derivation.

use crate::store::{ProductRow, RecordRow, Regisseur};
use policy::{CaseStatus, OutcomeClass, Relation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `POST /v1/disclosures`: case-level data for a purpose.
    Disclosure,
    /// `POST /v1/checks`: known / not known.
    Check,
    /// `GET /v1/aggregates/{view}`: phenomenon-level figures.
    Aggregate,
    /// A privacy officer's search or art. 15 report.
    AuditQuery,
    /// A refused request for a checkpoint or proof.
    AuditProof,
    /// A step of the policy lifecycle (or a refused read of it).
    Policy,
    /// A case registered or changed.
    CaseChange,
    /// A case read from the register.
    CaseRead,
    /// Records deposited by their owner.
    Deposit,
    /// The log's signing key changed.
    LogKey,
    /// The gateway started without its witnesses' word (the operator's logged override).
    WitnessOverride,
    /// The gateway started with its witnesses' word: which of the active version's witnesses
    /// it asked, and which could not be reached.
    Start,
    /// A request no endpoint took (unknown path, certificate no longer accepted).
    Request,
    /// A retention run removed expired data: deposits, cases, the content of log entries.
    Retention,
    /// A step in the life of the gateway's own keys: in use, rotated, rows re-sealed, retired.
    Keys,
    /// The log could not be written for a while: when, why, and what went unrecorded.
    LogOutage,
}

impl Kind {
    /// The name stored in the `kind` column and shown to officers.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Disclosure => "disclosure",
            Kind::Check => "check",
            Kind::Aggregate => "aggregate",
            Kind::AuditQuery => "audit-query",
            Kind::AuditProof => "audit-proof",
            Kind::Policy => "policy",
            Kind::CaseChange => "case-change",
            Kind::CaseRead => "case-read",
            Kind::Deposit => "deposit",
            Kind::LogKey => "log-key",
            Kind::WitnessOverride => "witness-override",
            Kind::Start => "start",
            Kind::Request => "request",
            Kind::Retention => "retention",
            Kind::Keys => "keys",
            Kind::LogOutage => "log-outage",
        }
    }

    /// Every kind.
    pub const ALL: [Kind; 16] = [
        Kind::Disclosure,
        Kind::Check,
        Kind::Aggregate,
        Kind::AuditQuery,
        Kind::AuditProof,
        Kind::Policy,
        Kind::CaseChange,
        Kind::CaseRead,
        Kind::Deposit,
        Kind::LogKey,
        Kind::WitnessOverride,
        Kind::Start,
        Kind::Request,
        Kind::Retention,
        Kind::Keys,
        Kind::LogOutage,
    ];

    /// Kinds whose answered entries are disclosures in the sense of GDPR art. 15: personal data
    /// about the subject reached a recipient.
    pub fn reaches_recipient(self) -> bool {
        matches!(self, Kind::Disclosure | Kind::Check | Kind::CaseRead)
    }

    /// The covenant's name for this kind when its entries may expire (`None`: kept as long as
    /// the log, see `policy::covenant::LASTING_KINDS`).
    pub fn expiring(self) -> Option<policy::covenant::ExpiringKind> {
        self.as_str().parse().ok()
    }
}

impl std::str::FromStr for Kind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered in full.
    Answered,
    /// Answered, with some sources unavailable.
    PartlyUnavailable,
    /// Refused; nothing was disclosed or changed.
    Refused,
}

impl Outcome {
    /// The name stored in the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::PartlyUnavailable => "partly-unavailable",
            Outcome::Refused => "refused",
        }
    }

    /// Whether anything was answered.
    pub fn answered(self) -> bool {
        !matches!(self, Outcome::Refused)
    }
}

impl std::str::FromStr for Outcome {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            Outcome::Answered,
            Outcome::PartlyUnavailable,
            Outcome::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or(())
    }
}

/// What one product contributed to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProductStatus {
    /// Its records were answered.
    Ok,
    /// It has no records about the subject.
    NoRecords,
    /// Its source did not answer (or answered something that does not fit the catalogue).
    Unavailable,
    /// Nothing of it may reach this audience.
    NotPermitted,
}

/// A field and the rule that decided it.
pub type FieldRule = (String, String);

/// What one product contributed, for the record. Field decisions do not depend on values, so
/// they are the same for every record of the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSummary {
    /// What happened to the product.
    pub status: ProductStatus,
    /// The partner that owns it (absent in entries from before owners were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How many records were sent.
    pub records: usize,
    /// Fields sent as held, with the rule.
    pub disclosed: Vec<FieldRule>,
    /// Fields sent transformed, with the rule.
    pub transformed: Vec<FieldRule>,
    /// Fields replaced by a marker, with the rule.
    pub withheld: Vec<FieldRule>,
    /// Fields left out, with the rule.
    pub omitted: Vec<FieldRule>,
}

impl ProductSummary {
    /// An empty summary of a product with this status.
    pub fn new(status: ProductStatus, owner: &str, records: usize) -> Self {
        ProductSummary {
            status,
            owner: Some(owner.to_owned()),
            records,
            disclosed: Vec::new(),
            transformed: Vec::new(),
            withheld: Vec::new(),
            omitted: Vec::new(),
        }
    }

    /// Adds one field's decision.
    pub fn add(&mut self, class: OutcomeClass, field: &str, rule: &str) {
        let item = (field.to_owned(), rule.to_owned());
        match class {
            OutcomeClass::Disclosed => self.disclosed.push(item),
            OutcomeClass::Transformed => self.transformed.push(item),
            OutcomeClass::Withheld => self.withheld.push(item),
            OutcomeClass::Omitted => self.omitted.push(item),
        }
    }

    /// Every field with its class and rule.
    pub fn fields(&self) -> impl Iterator<Item = (OutcomeClass, &str, &str)> {
        [
            (OutcomeClass::Disclosed, &self.disclosed),
            (OutcomeClass::Transformed, &self.transformed),
            (OutcomeClass::Withheld, &self.withheld),
            (OutcomeClass::Omitted, &self.omitted),
        ]
        .into_iter()
        .flat_map(|(c, list)| list.iter().map(move |(f, r)| (c, f.as_str(), r.as_str())))
    }

    /// The owner, or for entries from before owners were recorded the product id's prefix
    /// (the example's `owner.name` convention, which migration 0006 used as well).
    pub fn owner_of<'a>(&'a self, product: &'a str) -> &'a str {
        match &self.owner {
            Some(o) => o,
            None => product.split_once('.').map_or("", |(o, _)| o),
        }
    }
}

/// Where the records of one product came from, so that disclosed data can be traced to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Deposited in the gateway by the owner (`PUT /v1/records`).
    Deposit,
    /// Fetched from the owner's own endpoint.
    Upstream,
}

/// The records one product's answer was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Deposit or upstream.
    pub from: SourceKind,
    /// SHA-256 (hex) of the sealed deposit, as its deposit entry records it; of the upstream
    /// answer's bytes for an upstream source.
    pub sha256: String,
}

/// The inputs a disclosure's decision used, so that it can be replayed (Authorization Decision
/// Log) and its data traced to the deposits it opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionInputs {
    /// The case's version when it was read.
    pub case_version: i64,
    /// Its status then.
    pub case_status: CaseStatus,
    /// The relation the purpose demands.
    pub relation: Relation,
    /// What satisfied it: `regisseur`, `uvo`, `role` or `none`.
    pub satisfied_by: String,
    /// Per product answered with records: where they came from.
    pub sources: BTreeMap<String, SourceRef>,
}

/// A case registered or changed: who may see what depends on these values, so the log has them
/// (the classification only as the names of the fields that changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseChange {
    /// `created` or `updated`.
    pub action: crate::store::CaseAction,
    /// The case's version after the change.
    pub version: i64,
    /// The fields that changed.
    pub fields: Vec<String>,
    /// The status after the change, if it changed (or the case was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CaseStatus>,
    /// The status before, if it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<CaseStatus>,
    /// The regisseur appointed, if that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regisseur: Option<Regisseur>,
    /// The partners on the UVO, if that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uvo_partners: Option<Vec<String>>,
    /// Key dates that changed: name to date.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dates: BTreeMap<String, String>,
    /// The decision of a body this change records (a covenant's `[[transition]] body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<BodyDecision>,
    /// The review by a body that preceded it (a covenant's `[[transition]] review`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<BodyDecision>,
    /// For an inclusion under `[checks] before_inclusion`: the aanpak-check it rests on, or the
    /// reason it went without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_check: Option<InclusionCheck>,
}

/// What an inclusion rests on, as to other approaches (issue 31: the double-approach check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum InclusionCheck {
    /// A complete aanpak-check of the person: its entry and whether another approach knew the
    /// person.
    Checked {
        /// The check's sequence number.
        seq: i64,
        /// Whether any approach knew the person.
        known: bool,
    },
    /// Without one, for this reason (the deciders' own words).
    Override {
        /// The reason.
        reason: String,
    },
}

/// A decision of a body of the covenant (the Regieoverleg, the PTO-R), as the change that
/// records it carries it: which body, the minutes' reference, the meeting date, the members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyDecision {
    /// The body's id.
    pub body: String,
    /// The reference of the decision in the body's minutes.
    pub reference: String,
    /// The meeting's date (YYYY-MM-DD).
    pub date: String,
    /// The members who took it.
    pub members: Vec<Person>,
}

/// A case read from the register: what of it reached the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRead {
    /// The case's version.
    pub version: i64,
    /// Its status.
    pub status: CaseStatus,
    /// The classification fields answered (`risk_group`, `ideology`): special-category data.
    pub classification: Vec<String>,
}

/// Records deposited by their owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// Product.
    pub product: String,
    /// Subject reference the records are about.
    pub subject_ref: String,
    /// How many records.
    pub records: usize,
    /// SHA-256 (hex) of the records as sealed and stored; disclosures that open them name it.
    pub sealed_sha256: String,
}

/// The log's signing key changed (both as C2SP verifier keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// The key that signed the checkpoints before.
    pub from: String,
    /// The key that signs them from now on.
    pub to: String,
}

/// What one approach answered to a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApproachStatus {
    /// It knows the person.
    Known,
    /// It does not.
    NotKnown,
    /// It did not answer (never counted as "not known").
    Unavailable,
}

/// Why another approach's register gave no answer to an oblivious check (issue 38).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unavailable {
    /// It could not be reached, or answered with an error.
    Down,
    /// It did not answer in time.
    Timeout,
    /// It refused: the gateway is over its quota there.
    OverQuota,
    /// Its published set is not signed by the pinned key.
    SetUnsigned,
    /// Its published set has expired or is of another epoch.
    SetStale,
    /// Its published set is malformed, too large or for another register.
    SetInvalid,
    /// Its evaluation's proof does not verify under the pinned key.
    BadProof,
    /// Its answer is not the protocol's.
    Invalid,
    /// The gateway has no configuration for it.
    NotConfigured,
}

/// The outcome of a check per approach, by approach id (this approach under its own name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Each approach asked and what it answered.
    pub approaches: std::collections::BTreeMap<String, ApproachStatus>,
    /// Why each unavailable approach was unavailable.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unavailable: std::collections::BTreeMap<String, Unavailable>,
    /// The epoch of each register's set the check was answered under (no value of the check).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub epochs: std::collections::BTreeMap<String, String>,
    /// Another approach's evaluation or set request that this gateway answered as a register:
    /// that approach (the entry holds no subject: the gateway learns nothing of whom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_for: Option<String>,
}

/// The operator started the gateway although it could not check its log against the witnesses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessOverride {
    /// The operator's reason, as given on the command line.
    pub reason: String,
    /// The witnesses that could not be asked, by name.
    pub unreachable: Vec<String>,
}

/// A start checked against the witnesses the active covenant version names (issue 37).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartCheck {
    /// The witnesses asked: every witness the version in force names, by name.
    pub witnesses: Vec<String>,
    /// Those that could not be asked (at least one other answered).
    pub unreachable: Vec<String>,
}

/// The writer could not make entries durable from `from` until this entry (its `at`). Written
/// first when writing resumes, so that the log says that it was not written, and what that
/// cost, in the place where the missing entries would have been.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOutage {
    /// When the first write failed (RFC 3339 in the entry).
    #[serde(with = "rfc3339")]
    pub from: i64,
    /// What the store said, as a class (no database message: it may quote a value).
    pub cause: crate::store::Fault,
    /// Refusals that could not be recorded one by one, counted by kind and problem type.
    pub unrecorded_refusals: Vec<UnrecordedRefusals>,
    /// Entries that were committed although the writer could not tell at the time, so that
    /// their requests were answered `disclosure-log-unavailable` and nothing was disclosed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committed_unanswered: Vec<i64>,
}

/// Refusals of one kind and problem type that could not be written during an outage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnrecordedRefusals {
    /// The entry kind the refusal would have had.
    pub kind: Kind,
    /// Its problem type (`(none)` when it had none).
    pub problem: String,
    /// How many.
    pub count: u64,
}

/// Entries whose content a retention run removed: `first..=last`, under one rule. Their hashes
/// stay in the log; the store's tombstone says the same, and `audit verify` checks both.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RemovedRange {
    /// First sequence number.
    pub first: i64,
    /// Last sequence number (inclusive).
    pub last: i64,
    /// The covenant's retention rule.
    pub rule: String,
}

/// What a retention run removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetentionTarget {
    /// Deposited records (and, of a removed case, its deposits).
    Deposits,
    /// Closed cases in the register, with their history and sealed BSN.
    Cases,
    /// The content of log entries.
    Log,
}

/// One rule a retention step applied: what it covers, from when, on which ground, how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleApplied {
    /// The rule: a `[[retention.log]]` id, or `deposits` / `cases`.
    pub rule: String,
    /// What it removes.
    pub target: RetentionTarget,
    /// For log rules: the kinds it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// For log rules: only these purposes (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
    /// The period in days.
    pub days: u32,
    /// The ground the covenant gives.
    pub ground: String,
    /// What is older than this went (entries by their time, cases and deposits by the closing).
    #[serde(with = "rfc3339")]
    pub before: i64,
    /// How many entries, cases or deposits this step removed.
    pub removed: u64,
}

/// A retention step: what was removed, under which rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionStep {
    /// The rules applied in this step, with counts.
    pub rules: Vec<RuleApplied>,
    /// The log entries whose content went (their hashes stay).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<RemovedRange>,
}

/// Which of the gateway's own keys a key step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyName {
    /// The storage key ring: deposits and sealed BSNs.
    Storage,
    /// The pseudonym key ring: subject pseudonyms and what partners receive from
    /// `pseudonymize`.
    Pseudonym,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAction {
    /// A new key became current; the previous one still opens what it sealed.
    Rotated,
    /// Rows sealed with older keys were sealed again with the current one.
    Resealed,
    /// Cases' subject pseudonyms made by older keys were made again with the current one.
    Rekeyed,
    /// Keys nothing is sealed with any more left the ring.
    Retired,
}

/// A step in the life of a key: ids only, never key material or personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStep {
    /// Which key.
    pub key: KeyName,
    /// What happened.
    pub action: KeyAction,
    /// The key that is current after the step (its id).
    pub current: String,
    /// Rotated: the previous current key; re-sealed: the keys rows moved from (`unrecorded` for
    /// rows from before key ids); retired: the keys removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// Re-sealed: deposits moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposits: Option<u64>,
    /// Re-sealed: sealed BSNs of cases moved; re-keyed: cases whose pseudonym was made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<u64>,
}

/// A step of the policy lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyAction {
    /// A draft submitted.
    Draft,
    /// An earlier version submitted again.
    RollbackDraft,
    /// A draft replayed on the logged history.
    Simulate,
    /// A draft approved by a second administrator.
    Approve,
    /// A draft made the active version.
    Activate,
    /// The configured covenant activated on an empty database.
    Bootstrap,
    /// The revocation lists reloaded.
    CrlReload,
    /// A read of the policy (recorded when refused).
    Read,
    /// A partner's signed approval of a draft, added.
    Sign,
    /// A partner's signed approval of a draft, withdrawn.
    Withdraw,
}

/// Who did something: partner and staff id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Partner id.
    pub partner: String,
    /// Staff id.
    pub staff_id: String,
}

/// What a policy step did to which draft or version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyChange {
    /// The step.
    pub action: Option<PolicyAction>,
    /// The draft it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
    /// The version hash of that draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the draft was made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<String>,
    /// The kind of draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For a rollback: the draft whose text it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<String>,
    /// Decisions that change against the active version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_changes: Option<u64>,
    /// Changes to the partner registry, one line each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_changes: Option<Vec<String>>,
    /// Whose signatures the change needs by its review: partner ids, and `threshold` for a
    /// shared part (issue 37).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signers: Option<Vec<String>>,
    /// The partner a signature step concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// A signature step's signed approval note (the partner's own words and signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// An activation's signed approval notes: the partners' consent the gateway checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<Vec<String>>,
    /// Simulation window in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// Requests replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<u64>,
    /// Requests that would have come out differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_requests: Option<u64>,
    /// Distinct subjects of those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_subjects: Option<u64>,
    /// The version active before an activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// The draft active before an activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_draft: Option<String>,
    /// The draft's author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Person>,
    /// The draft's approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Person>,
    /// For a bootstrap: the configuration file it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Certificates on the revocation lists after a reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_certificates: Option<u64>,
    /// And before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previously: Option<u64>,
}

/// One entry of the disclosure log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Entry id (`disc-…`), also the disclosure id of an answer.
    pub id: String,
    /// When (epoch seconds; RFC 3339 in the entry).
    #[serde(with = "rfc3339")]
    pub at: i64,
    /// The transaction id (`Fsc-Transaction-Id`) that links records across organisations.
    pub trace_id: String,
    /// The W3C `traceparent` the request came with (or the gateway began), so that a partner's
    /// own processing log can correlate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What the entry records.
    pub kind: Kind,
    /// The requesting partner (`certificate:<fingerprint>` when no partner has the
    /// certificate, `(gateway)` for the gateway's own steps).
    pub partner: String,
    /// Staff id, once the token was verified.
    pub staff_id: Option<String>,
    /// The role acted in.
    pub role: Option<String>,
    /// The purpose named.
    pub processing_activity: Option<String>,
    /// The case named.
    pub case_id: Option<String>,
    /// The subject, as the gateway's keyed pseudonym (never the BSN).
    pub data_subject: Option<String>,
    /// Per product, which fields went out how, by which rule.
    pub products: BTreeMap<String, ProductSummary>,
    /// The covenant version that decided.
    pub policy_version: String,
    /// SHA-256 (hex) of the ciphertext sent.
    pub ciphertext_sha256: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The problem type of a refusal.
    pub problem: Option<String>,
    /// For audit queries and aggregates: what was asked (filter names, never a BSN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// For policy steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_change: Option<PolicyChange>,
    /// For disclosures: the inputs of the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionInputs>,
    /// For case-register changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_change: Option<CaseChange>,
    /// For case reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_read: Option<CaseRead>,
    /// For deposits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit: Option<Deposit>,
    /// For a change of the log's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_change: Option<KeyChange>,
    /// For a start without the witnesses' word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_override: Option<WitnessOverride>,
    /// For a start with the witnesses' word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartCheck>,
    /// For a check: what each approach answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckOutcome>,
    /// For a retention run: what it removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionStep>,
    /// For a step of a key's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyStep>,
    /// For a time the log could not be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_outage: Option<LogOutage>,
}

/// What an entry starts from: who asked what, when, under which version.
#[derive(Debug, Clone)]
pub struct Start<'a> {
    /// Entry id.
    pub id: String,
    /// When.
    pub at: i64,
    /// Transaction id.
    pub trace_id: &'a str,
    /// Kind.
    pub kind: Kind,
    /// Requesting partner (or stand-in).
    pub partner: String,
    /// Covenant version.
    pub policy_version: &'a str,
}

/// A new entry id.
pub fn new_id() -> String {
    // Time-ordered (UUIDv7): the log's unique index on ids then grows at its end, like the
    // sequence, instead of taking every new id at a random page of an index of millions.
    format!("disc-{}", uuid::Uuid::now_v7().simple())
}

/// Building or reading an entry failed.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The entry cannot be serialised (a time out of range): the request is refused.
    #[error("the log entry cannot be serialised: {0}")]
    Serialise(serde_json::Error),
    /// A stored entry is not a log entry.
    #[error("entry {0} is not a readable log entry: {1}")]
    Unreadable(i64, serde_json::Error),
}

/// The searchable columns and side-table rows of one entry, derived in exactly one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The content row (everything but the sequence number is derived).
    pub record: RecordRow,
    /// The products the entry names.
    pub products: Vec<ProductRow>,
}

impl LogEntry {
    /// A refusal-shaped entry: outcome `refused` until the request is answered.
    pub fn new(s: Start<'_>) -> LogEntry {
        LogEntry {
            id: s.id,
            at: s.at,
            trace_id: s.trace_id.to_owned(),
            traceparent: None,
            kind: s.kind,
            partner: s.partner,
            staff_id: None,
            role: None,
            processing_activity: None,
            case_id: None,
            data_subject: None,
            products: BTreeMap::new(),
            policy_version: s.policy_version.to_owned(),
            ciphertext_sha256: None,
            outcome: Outcome::Refused,
            problem: None,
            query: None,
            policy_change: None,
            decision: None,
            case_change: None,
            case_read: None,
            deposit: None,
            key_change: None,
            witness_override: None,
            start: None,
            check: None,
            retention: None,
            keys: None,
            log_outage: None,
        }
    }

    /// The part of another partner's entry that `partner`'s privacy officer sees: that it
    /// exists (when, what kind, which partner and role, for which purpose and case, its
    /// outcome) and what concerns `partner`'s own products (which of their fields went out,
    /// under which rule, from which source). Nothing of other partners' products, the asker's
    /// staff id, the query or the payload's digest. It no longer hashes to the entry's leaf.
    pub fn part_for(&self, partner: &str) -> LogEntry {
        let mut e = LogEntry::new(Start {
            id: self.id.clone(),
            at: self.at,
            trace_id: &self.trace_id,
            kind: self.kind,
            partner: self.partner.clone(),
            policy_version: &self.policy_version,
        });
        e.role.clone_from(&self.role);
        e.processing_activity.clone_from(&self.processing_activity);
        e.case_id.clone_from(&self.case_id);
        e.data_subject.clone_from(&self.data_subject);
        e.outcome = self.outcome;
        e.problem.clone_from(&self.problem);
        e.products = self
            .products
            .iter()
            .filter(|(p, s)| s.owner_of(p) == partner)
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect();
        e.decision = self.decision.as_ref().map(|d| DecisionInputs {
            sources: d
                .sources
                .iter()
                .filter(|(p, _)| e.products.contains_key(*p))
                .map(|(p, s)| (p.clone(), s.clone()))
                .collect(),
            ..d.clone()
        });
        e
    }

    /// Marks the entry refused with a problem type.
    pub fn refuse(&mut self, problem: &str) {
        self.outcome = Outcome::Refused;
        self.problem = Some(problem.to_owned());
    }

    /// The canonical serialisation: exactly the bytes that are hashed and stored.
    pub fn canonical(&self) -> Result<String, EntryError> {
        serde_json::to_string(self).map_err(EntryError::Serialise)
    }

    /// Reads a stored entry.
    pub fn parse(seq: i64, text: &str) -> Result<LogEntry, EntryError> {
        serde_json::from_str(text).map_err(|e| EntryError::Unreadable(seq, e))
    }

    /// The store's columns and side-table rows for this entry at `seq`, with its canonical
    /// text: the only derivation of them.
    pub fn index(&self, seq: i64, canonical: String) -> Index {
        Index {
            record: RecordRow {
                seq,
                entry: canonical,
                id: self.id.clone(),
                at: self.at,
                trace_id: self.trace_id.clone(),
                kind: self.kind.as_str().to_owned(),
                partner: self.partner.clone(),
                staff_id: self.staff_id.clone(),
                role: self.role.clone(),
                purpose: self.processing_activity.clone(),
                case_id: self.case_id.clone(),
                subject_pseudonym: self.data_subject.clone(),
                policy_version: self.policy_version.clone(),
                outcome: self.outcome.as_str().to_owned(),
                problem: self.problem.clone(),
            },
            products: self
                .products
                .iter()
                .map(|(p, s)| ProductRow {
                    seq,
                    product: p.clone(),
                    owner: s.owner_of(p).to_owned(),
                })
                .collect(),
        }
    }
}

/// Epoch seconds as RFC 3339 (`2026-12-01T09:04:25Z`).
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
    use time::format_description::well_known::Rfc3339;

    /// Formats epoch seconds; fails for times outside the calendar.
    pub fn format(t: i64) -> Option<String> {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()?
            .format(&Rfc3339)
            .ok()
    }

    /// Serialises epoch seconds as RFC 3339.
    pub fn serialize<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t).ok_or_else(|| S::Error::custom("time out of range"))?)
    }

    /// Reads RFC 3339 as epoch seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        time::OffsetDateTime::parse(&s, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 41, finding 3: politie's officer read rn's disclosure whole, with the GGD's, the
    /// Raad's and WPI's products in it. Another partner's officer sees only its own part.
    #[test]
    fn another_partners_officer_sees_the_entry_and_its_own_products_only() {
        let mut e = LogEntry::new(Start {
            id: "disc-1".into(),
            at: 1_800_000_000,
            trace_id: "t-1",
            kind: Kind::Disclosure,
            partner: "rn".into(),
            policy_version: "v1",
        });
        e.staff_id = Some("reg.mulder".into());
        e.role = Some("regisseur".into());
        e.processing_activity = Some("regie".into());
        e.query = Some("x".into());
        e.ciphertext_sha256 = Some("ab".into());
        e.outcome = Outcome::Answered;
        for (p, owner) in [
            ("ggd.screening", "ggd"),
            ("politie.registraties", "politie"),
        ] {
            e.products
                .insert(p.into(), ProductSummary::new(ProductStatus::Ok, owner, 1));
        }
        e.decision = Some(DecisionInputs {
            case_version: 3,
            case_status: CaseStatus::Uitvoering,
            relation: Relation::IsRegisseur,
            satisfied_by: "regisseur".into(),
            sources: ["ggd.screening", "politie.registraties"]
                .into_iter()
                .map(|p| {
                    (
                        p.to_owned(),
                        SourceRef {
                            from: SourceKind::Deposit,
                            sha256: "00".into(),
                        },
                    )
                })
                .collect(),
        });
        let part = e.part_for("politie");
        assert_eq!(
            part.products.keys().collect::<Vec<_>>(),
            vec!["politie.registraties"]
        );
        assert_eq!(
            part.decision.unwrap().sources.keys().collect::<Vec<_>>(),
            vec!["politie.registraties"]
        );
        assert_eq!(
            (part.staff_id, part.query, part.ciphertext_sha256),
            (None, None, None)
        );
        assert_eq!(
            (part.partner.as_str(), part.role.as_deref(), part.outcome),
            ("rn", Some("regisseur"), Outcome::Answered)
        );
        assert!(e.part_for("om").products.is_empty());
    }

    fn start() -> Start<'static> {
        Start {
            id: "disc-1".into(),
            at: 1_764_580_000,
            trace_id: "trace-0001",
            kind: Kind::Disclosure,
            partner: "rn".into(),
            policy_version: "v1",
        }
    }

    #[test]
    fn canonical_round_trip_and_index() {
        let mut e = LogEntry::new(start());
        e.staff_id = Some("r1".into());
        e.outcome = Outcome::Answered;
        let mut p = ProductSummary::new(ProductStatus::Ok, "politie", 1);
        p.add(
            OutcomeClass::Withheld,
            "omschrijving",
            "regie-politie-omschrijving",
        );
        e.products.insert("politie.registraties".into(), p);
        let text = e.canonical().unwrap();
        assert!(text.starts_with(r#"{"id":"disc-1","at":"2025-12-01T09:06:40Z","trace_id":"trace-0001","kind":"disclosure","partner":"rn","staff_id":"r1""#), "{text}");
        assert!(
            !text.contains("decision"),
            "absent sections are left out: {text}"
        );
        let back = LogEntry::parse(7, &text).unwrap();
        assert_eq!(back, e);
        let ix = back.index(7, text.clone());
        assert_eq!(ix.record.kind, "disclosure");
        assert_eq!(ix.record.outcome, "answered");
        assert_eq!(ix.record.at, 1_764_580_000);
        assert_eq!(
            ix.products,
            vec![ProductRow {
                seq: 7,
                product: "politie.registraties".into(),
                owner: "politie".into()
            }]
        );
    }

    #[test]
    fn entries_from_before_this_format_are_read() {
        let old = r#"{"id":"disc-x","at":"2026-11-01T10:00:00Z","trace_id":"t","kind":"policy","partner":"oov","staff_id":"b1","role":"beheerder","processing_activity":null,"case_id":null,"data_subject":null,"products":{"ggd.screening":{"status":"ok","records":1,"disclosed":[["a","r"]],"transformed":[],"withheld":[],"omitted":[]}},"policy_version":"v","ciphertext_sha256":null,"outcome":"answered","problem":null,"policy_change":{"action":"approve","draft":"draft-1","author":{"partner":"oov","staff_id":"b2"},"approver":null}}"#;
        let e = LogEntry::parse(1, old).unwrap();
        assert_eq!(e.kind, Kind::Policy);
        assert_eq!(
            e.policy_change.as_ref().and_then(|p| p.action),
            Some(PolicyAction::Approve)
        );
        // The owner of a product in an old entry is its id's prefix, as the migration derived it.
        assert_eq!(e.index(1, old.into()).products[0].owner, "ggd");
    }

    #[test]
    fn a_time_outside_the_calendar_cannot_be_recorded() {
        let mut s = start();
        s.at = i64::MAX;
        assert!(matches!(
            LogEntry::new(s).canonical(),
            Err(EntryError::Serialise(_))
        ));
    }

    #[test]
    fn kinds_and_outcomes_round_trip_their_names() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for o in [
            Outcome::Answered,
            Outcome::PartlyUnavailable,
            Outcome::Refused,
        ] {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
    }
}
