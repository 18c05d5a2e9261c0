//! The covenant file as written: TOML tables deserialised with their source spans, before any
//! cross-reference is checked. `covenant.rs` turns this into the validated model.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// A spanned string: the value and where it stands in the file.
pub type S = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCovenant {
    /// Identity of the covenant.
    pub covenant: RawMeta,
    /// Short redaction codes and the legal ground each stands for.
    #[serde(default)]
    pub redaction_codes: BTreeMap<String, String>,
    /// Parties to the covenant and peers.
    #[serde(default, rename = "partner")]
    pub partners: Vec<Spanned<RawPartner>>,
    /// Roles inside partners.
    #[serde(default, rename = "role")]
    pub roles: Vec<Spanned<RawRole>>,
    /// Purposes (doelen).
    #[serde(default, rename = "purpose")]
    pub purposes: Vec<Spanned<RawPurpose>>,
    /// Districts (stadsdelen) by postcode area, for generalising addresses.
    #[serde(default, rename = "district")]
    pub districts: Vec<Spanned<RawDistrict>>,
    /// The data catalogue.
    #[serde(default, rename = "product")]
    pub products: Vec<Spanned<RawProduct>>,
    /// Sharing rules.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RawRule>>,
    /// "Never" statements the rules are proven against.
    #[serde(default, rename = "prohibition")]
    pub prohibitions: Vec<Spanned<RawProhibition>>,
    /// Who may create, read and change cases in the case register.
    #[serde(default)]
    pub case_register: Option<Spanned<RawCaseRegister>>,
    /// Status changes and the roles that may make them.
    #[serde(default, rename = "transition")]
    pub transitions: Vec<Spanned<RawTransition>>,
    /// Small-cell protection for aggregate views.
    #[serde(default)]
    pub aggregates: Option<RawAggregates>,
    /// Aggregate views: the only phenomenon-level questions that can be asked.
    #[serde(default, rename = "view")]
    pub views: Vec<Spanned<RawView>>,
    /// Which of the covenant's own ids the gateway's fixed rules refer to.
    #[serde(default)]
    pub governance: Option<Spanned<RawGovernance>>,
    /// The bodies that decide together. Left out of the canonical form when absent.
    #[serde(default, rename = "body", skip_serializing_if = "Vec::is_empty")]
    pub bodies: Vec<Spanned<RawBody>>,
    /// The partners' witnesses, which cosign the log's checkpoints. Left out of the canonical
    /// form when absent, so that versions written before witnesses keep their hash.
    #[serde(default, rename = "witness", skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<Spanned<RawWitness>>,
    /// How many witnesses must cosign, and how long the log may go unwitnessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessing: Option<Spanned<RawWitnessing>>,
    /// Other person-centred approaches the aanpak-check asks (Top600, …).
    #[serde(default, rename = "approach", skip_serializing_if = "Vec::is_empty")]
    pub approaches: Vec<Spanned<RawApproach>>,
    /// Limits of the aanpak-check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Spanned<RawChecks>>,
    /// How long deposits, cases and log entries are kept. Left out of the canonical form when
    /// absent, so that versions written before retention keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Spanned<RawRetention>>,
}

/// `[retention]`: the covenant's retention periods (GDPR art. 5(1)(e), Archiefwet).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Deposits of a subject, counted from the closing of the subject's last case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposits: Option<Spanned<RawPeriod>>,
    /// A closed case in the register, counted from its closing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<Spanned<RawPeriod>>,
    /// Log entries by kind (and purpose), counted from the entry's time.
    #[serde(default, rename = "log", skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<Spanned<RawLogRetention>>,
}

/// A retention period and the ground it rests on.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeriod {
    /// Days kept (0: removed at the first run after the period starts).
    pub days: Spanned<u64>,
    /// The legal ground or covenant article, shown in the retention entry and the art. 15
    /// report.
    pub ground: S,
}

/// `[[retention.log]]`: how long log entries of some kinds (and purposes) are kept.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogRetention {
    /// Rule id, named by every tombstone it leaves.
    pub id: S,
    /// Entry kinds it covers.
    pub kinds: Vec<S>,
    /// Only entries of these purposes (empty: any purpose, the kinds' default rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<S>,
    /// Days kept.
    pub days: Spanned<u64>,
    /// The ground.
    pub ground: S,
}

/// `[[approach]]`: another approach whose register the aanpak-check asks.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproach {
    /// Short id (`top600`); the gateway's `[[approach]]` with this id says where to ask.
    pub id: S,
    /// Its name in check answers (`Top600`).
    pub name: String,
    /// The partner that runs it.
    pub partner: S,
    /// Whom to call when it knows the person.
    pub contact: String,
}

/// `[checks]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecks {
    /// Checks one staff member may make per minute (default 30): a check is a probe by nature.
    #[serde(default)]
    pub per_staff_per_minute: Option<Spanned<u64>>,
    /// Whether a case is included only after an aanpak-check of its person was answered
    /// complete (or the inclusion names a reason to go without one).
    /// Left out of the canonical form when absent, so that earlier versions keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_inclusion: Option<bool>,
}

/// `[[witness]]`: a partner's witness of the log (C2SP tlog-witness).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWitness {
    /// The partner that runs it.
    pub partner: S,
    /// The witness's name: the key name of its cosignatures.
    pub name: S,
    /// Its verifier key, C2SP note format (`name+keyid+base64`, type 0x04 cosignature/v1).
    pub vkey: S,
    /// Where it listens (`https://…`), the base of `add-checkpoint`.
    pub url: S,
}

/// `[witnessing]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWitnessing {
    /// Witnesses that must cosign a checkpoint before it counts as witnessed.
    #[serde(default)]
    pub quorum: Option<Spanned<u64>>,
    /// Seconds the log may go without a witnessed checkpoint before disclosures stop
    /// (default 14400, four hours).
    #[serde(default)]
    pub blind_after_secs: Option<Spanned<u64>>,
}

/// `[governance]`: the covenant names the ids that the gateway's own rules refer to, so that
/// none is written in code. Every key is optional; what it enables is off without it, and the
/// validator says where a rule of the covenant needs one that is missing.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGovernance {
    /// The programme's own partner: its privacy officers see the whole log, and a check names it
    /// as the contact when a case has no regisseur yet.
    #[serde(default)]
    pub programme_partner: Option<S>,
    /// This approach's name in check answers (default: the covenant id).
    #[serde(default)]
    pub approach: Option<S>,
    /// The role that reads the disclosure log (privacy officers).
    #[serde(default)]
    pub privacy_officer_role: Option<S>,
    /// The role that administers the covenant (with the gateway's list of administrators).
    #[serde(default)]
    pub administrator_role: Option<S>,
    /// The purpose under which `/v1/checks` answers known / not known.
    #[serde(default)]
    pub check_purpose: Option<S>,
    /// The role of relation `voorportaal`.
    #[serde(default)]
    pub voorportaal_role: Option<S>,
    /// The role a case's regisseur holds (its partner must be able to hold it).
    #[serde(default)]
    pub regisseur_role: Option<S>,
    /// The only role that may make a case `statisch` (the PTO-R).
    #[serde(default)]
    pub static_role: Option<S>,
    /// How many core partners' governance signatures a change to a shared part needs; set, every
    /// change is activated only with the signatures its review names (docs/policy-lifecycle.md).
    /// Left out of the canonical form when absent, so that earlier versions keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_threshold: Option<u32>,
    /// Whether the rules' legal grounds are examples not yet confirmed by the partners (as in
    /// the example covenant): every ground that reaches a person (a redaction marker, the
    /// art. 15 report and letter) then says `voorbeeldgrond: …`. A covenant whose grounds the
    /// partners' lawyers confirmed leaves it out or sets it to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_grounds: Option<bool>,
}

/// `[aggregates]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAggregates {
    /// Smallest group that may be shown (default 10).
    #[serde(default)]
    pub threshold: Option<Spanned<u64>>,
    /// Base every released number is rounded to (default 5).
    #[serde(default)]
    pub rounding: Option<Spanned<u64>>,
}

/// `[[view]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawView {
    /// View id, as in `/v1/aggregates/{view}`.
    pub id: S,
    /// Readable name.
    pub name: String,
    /// Aggregate purposes under which it may be asked.
    pub purposes: Vec<S>,
    /// Up to two of: ideology, risk-group, status, inflow-quarter, outflow-quarter.
    #[serde(default)]
    pub dimensions: Vec<S>,
    /// `count` or `lead-time-weeks`.
    pub measure: S,
}

/// `[case_register]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaseRegister {
    /// Roles that may register a new case (a signal).
    pub create: Vec<S>,
    /// Roles that may change a case's fields other than its status.
    pub update: Vec<S>,
    /// Roles that may read a case's administration (status, regisseur, UVO, dates).
    pub read: Vec<S>,
    /// Roles that may also read its classification (risk group, ideology).
    pub read_classification: Vec<S>,
    /// Who sets the fields that grant a relation to the case (regisseur, UVO): absent, nobody.
    /// Left out of the canonical form when absent, so that versions written before it keep
    /// their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appoint: Option<RawAppoint>,
    /// Days after the inclusion decision within which the person is notified (the letter on
    /// the mayor's behalf); absent, no duty is tracked. Left out of the canonical form when
    /// absent, so that earlier versions keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_days: Option<Spanned<u32>>,
}

/// `[case_register.appoint]`: the decision-makers of the relation-granting fields.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppoint {
    /// Who appoints or reassigns the case's regisseur (the Regieoverleg), and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regisseur: Option<Spanned<RawAppointment>>,
    /// Who chooses the partners on the UVO (the case's own regisseur), and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uvo_partners: Option<Spanned<RawAppointment>>,
}

/// One appointing decision: the roles that take it and the statuses it may be taken in.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppointment {
    /// Roles that take this decision; the regisseur role here means the case's own regisseur.
    pub roles: Vec<S>,
    /// Case statuses in which it may be taken.
    pub statuses: Vec<S>,
}

/// `[[transition]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransition {
    /// Statuses the case may come from.
    pub from: Vec<S>,
    /// The status it goes to.
    pub to: S,
    /// Roles that may make this change.
    pub roles: Vec<S>,
    /// The body whose decision this change is (`[[body]]` id): the change then carries the
    /// decision's reference and the members who took it. Left out of the canonical form when
    /// absent, so that versions written before it keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<S>,
    /// The body whose review precedes this change (`[[body]]` id; the ITAT-R, which reviews a
    /// plan before the Regieoverleg adopts it, and an afbouw- or afsluitvoorstel before it is
    /// decided): the change then also carries that review's reference and the members who
    /// gave it. Left out of the canonical form when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<S>,
}

/// `[[body]]`: a body of the covenant that decides together (the Regieoverleg, the PTO-R).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBody {
    /// Id, named by `[[transition]] body`.
    pub id: S,
    /// Name as in the documents.
    pub name: String,
    /// The roles its members hold.
    pub roles: Vec<S>,
    /// Fewest members who take a decision.
    pub quorum: Spanned<u16>,
    /// Fewest partners among them (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partners: Option<Spanned<u16>>,
}

/// `[covenant]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    /// Stable identifier.
    pub id: S,
    /// Title as in the signed document.
    pub title: String,
    /// A label the authors choose; versions are identified by hash regardless.
    #[serde(default)]
    pub version: Option<String>,
}

/// `[[partner]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    /// Short id, used everywhere else (`politie`).
    pub id: S,
    /// Full name.
    pub name: String,
    /// `kernpartner`, `affiliated` or `peer`.
    pub kind: S,
    /// OIN expected in the certificate subject's serialNumber.
    #[serde(default)]
    pub oin: Option<S>,
    /// Pinned SHA-256 fingerprints of client certificates (hex, colons allowed).
    #[serde(default)]
    pub cert_sha256: Vec<S>,
    /// The age recipient payloads are encrypted to: `age1…` or `file:PATH`.
    pub recipient: S,
    /// Keys the partner's identity provider signs tokens with.
    #[serde(default)]
    pub token_keys: Vec<Spanned<RawTokenKey>>,
    /// The partner's governance key, which signs its approvals of covenant changes: a signed-note
    /// verifier key (`name+keyid+base64`) or `file:PATH`.
    /// Left out of the canonical form when absent, so that earlier versions keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance_vkey: Option<S>,
}

/// One token-signing key of a partner.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenKey {
    /// The JWT `kid` header value.
    pub kid: S,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: S,
    /// The public key: inline PEM or `file:PATH`.
    pub key: S,
}

/// `[[role]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    /// Role id as it appears in tokens.
    pub id: S,
    /// Readable name.
    pub name: String,
    /// Which partners may hold it: ids, `kind:KIND` or `*`.
    pub held_by: Vec<S>,
}

/// `[[purpose]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurpose {
    /// Purpose id named in requests.
    pub id: S,
    /// Readable name.
    pub name: String,
    /// `case` or `aggregate`.
    pub level: S,
    /// Roles allowed to request under this purpose.
    #[serde(default)]
    pub roles: Vec<S>,
    /// Case statuses in which the purpose may be used, or `*`.
    #[serde(default)]
    pub case_status: Vec<S>,
    /// Required relation of the requester to the case.
    pub relation: S,
    /// Hidden from the data subject's own access report (police and prosecution investigations).
    #[serde(default)]
    pub confidential: bool,
    /// The legal basis for hiding it (required when `confidential`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidential_ground: Option<S>,
}

/// `[[district]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDistrict {
    /// District name as released.
    pub name: S,
    /// Postcode areas: `"1011"` or ranges `"1011-1018"`.
    pub postcodes: Vec<S>,
}

/// `[[product]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProduct {
    /// `owner.name`, e.g. `politie.registraties`.
    pub id: S,
    /// The partner that holds this data.
    pub owner: S,
    /// Readable name.
    pub name: String,
    /// Typed, categorised fields.
    pub fields: Vec<Spanned<RawField>>,
    /// Roles of the owner that may deposit its records (`PUT /v1/records`); none: the product
    /// cannot be deposited (only served by the owner's own endpoint).
    #[serde(default)]
    pub deposit_roles: Vec<S>,
}

/// One field of a product.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// Field name inside the product.
    pub name: S,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: S,
    /// Data category.
    pub category: S,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Rule id, shown in redaction markers and the log.
    pub id: S,
    /// What the rule is for, in words.
    #[serde(default)]
    pub description: Option<String>,
    /// Receiving partners: ids, `kind:KIND` or `*`.
    pub to: Vec<S>,
    /// Receiving partners excluded from `to`.
    #[serde(default)]
    pub except_to: Vec<S>,
    /// Roles of the requester, or `*`.
    pub roles: Vec<S>,
    /// Purposes, or `*`.
    pub purposes: Vec<S>,
    /// Products the rule covers (omitted: any).
    #[serde(default)]
    pub products: Option<Vec<S>>,
    /// Categories the rule covers (omitted: any), or `*`.
    #[serde(default)]
    pub categories: Option<Vec<S>>,
    /// Qualified fields (`product.field`) the rule covers (omitted: any).
    #[serde(default)]
    pub fields: Option<Vec<S>>,
    /// `disclose`, `mask`, `generalize`, `pseudonymize`, `exists`, `withhold` or `omit`.
    pub action: S,
    /// For `mask`: how many trailing characters stay visible.
    #[serde(default)]
    pub keep_last: Option<Spanned<u8>>,
    /// For `generalize`: `month`, `year`, `age-band`, `postcode-area` or `district`.
    #[serde(default)]
    pub level: Option<S>,
    /// For `generalize` to `age-band`: width of the band in years (default 10).
    #[serde(default)]
    pub band: Option<Spanned<u8>>,
    /// The legal ground for this flow (required except for `withhold` and `omit`).
    #[serde(default)]
    pub ground: Option<String>,
    /// Redaction code shown in the marker (required for `withhold`).
    #[serde(default)]
    pub code: Option<S>,
    /// Rules this rule takes precedence over where both apply.
    #[serde(default)]
    pub overrides: Vec<S>,
}

/// `[[prohibition]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProhibition {
    /// Prohibition id.
    pub id: S,
    /// The "never" statement, in the covenant's words.
    pub text: String,
    /// Receiving partners concerned: ids, `kind:KIND` or `*`.
    pub to: Vec<S>,
    /// Receiving partners excluded from `to`.
    #[serde(default)]
    pub except_to: Vec<S>,
    /// Roles concerned (omitted: all).
    #[serde(default)]
    pub roles: Option<Vec<S>>,
    /// Purposes concerned (omitted: all).
    #[serde(default)]
    pub purposes: Option<Vec<S>>,
    /// Products concerned (omitted: any).
    #[serde(default)]
    pub products: Option<Vec<S>>,
    /// Categories concerned (omitted: any), or `*`.
    #[serde(default)]
    pub categories: Option<Vec<S>>,
    /// Qualified fields concerned (omitted: any).
    #[serde(default)]
    pub fields: Option<Vec<S>>,
    /// The only actions a decision may have here (must include `withhold`).
    pub allowed: Vec<S>,
}
