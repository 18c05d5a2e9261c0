//! The privacy officer's views of the disclosure log: search (JSON or CSV) and the GDPR art. 15
//! report about one person, both read as typed entries, with each entry's purposes and legal
//! grounds taken from the covenant version that decided it. Role `privacy-officer`; the
//! programme's own officer (partner `oov`) sees everything, a partner's officer its own
//! partner's entries and those about its products. Every query is itself an entry of the log:
//! who searched, for whom (as a pseudonym).

use super::disclose::parse_bsn;
use super::{Call, clip};
use crate::app::App;
use crate::lifecycle::PolicyBuilder;
use crate::log::entry::{Kind, LogEntry, Outcome};
use crate::refusal::Refusal;
use crate::store::{Db, LogFilter, StoreError, StoredCheckpoint};
use policy::{CompiledCovenant, OutcomeClass};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Search parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Subject BSN (turned into the pseudonym here; never stored or logged).
    #[serde(default)]
    pub subject: Option<String>,
    /// Requesting partner.
    #[serde(default)]
    pub partner: Option<String>,
    /// Staff id.
    #[serde(default)]
    pub staff_id: Option<String>,
    /// Purpose.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Case id.
    #[serde(default)]
    pub case: Option<String>,
    /// Product.
    #[serde(default)]
    pub product: Option<String>,
    /// `answered`, `partly-unavailable` or `refused`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Entry kind (`disclosure`, `case-change`, …).
    #[serde(default)]
    pub kind: Option<String>,
    /// From (RFC 3339 or epoch seconds).
    #[serde(default)]
    pub from: Option<String>,
    /// To (RFC 3339 or epoch seconds).
    #[serde(default)]
    pub to: Option<String>,
    /// Paging cursor: the `next_after` of the previous page.
    #[serde(default)]
    pub after: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<i64>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// One search result.
#[derive(Debug, Serialize)]
pub struct Item {
    /// Sequence number.
    pub seq: i64,
    /// Leaf hash, hex (for its inclusion proof).
    pub leaf_hash: String,
    /// Name of the purpose in the version that decided it.
    pub purpose_name: Option<String>,
    /// Whether the entry is shown in part: another partner's entry, of which this officer
    /// sees what concerns its own partner ([`LogEntry::part_for`]); its leaf's inclusion can be
    /// proven, its content not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The entry.
    #[serde(flatten)]
    pub entry: LogEntry,
}

/// A search's answer.
#[derive(Debug)]
pub enum SearchAnswer {
    /// A page of entries, and the cursor of the next page if there is one.
    Json(Vec<Item>, Option<i64>),
    /// The same page as CSV.
    Csv(String),
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, Refusal> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| Refusal::InvalidBody(format!("`{name}` must be RFC 3339 or epoch seconds")))
}

/// Requires the covenant's privacy officer role; returns whose entries the officer sees
/// (`None`: all, for the officers of the programme's partner).
fn officer(call: &mut Call) -> Result<Option<String>, Refusal> {
    let c = call.covenant();
    let g = &c.governance;
    let role = g
        .privacy_officer_role
        .filter(|r| call.requester.roles.contains(r));
    let Some(role) = role else {
        let name = g
            .privacy_officer_role
            .and_then(|r| c.roles.get(r.index()))
            .map_or_else(
                || "(none named in the covenant)".to_owned(),
                |r| r.id.clone(),
            );
        return Err(Refusal::PurposeRole("audit".into(), name));
    };
    let sees_all = g.programme_partner == Some(call.requester.partner);
    call.record.role = call.role_id(role);
    let p = &call.requester.partner_id;
    Ok((!sees_all).then(|| p.clone()))
}

/// The covenant versions entries name, compiled from their stored text on first use.
pub struct Versions {
    db: Db,
    compiled: HashMap<String, Option<Arc<CompiledCovenant>>>,
}

impl Versions {
    /// Versions read from `db`; `known` are already compiled (the active one).
    pub fn new(db: Db, known: impl IntoIterator<Item = Arc<CompiledCovenant>>) -> Self {
        Versions {
            db,
            compiled: known
                .into_iter()
                .map(|c| (c.version().as_str().to_owned(), Some(c)))
                .collect(),
        }
    }

    /// The version with this hash, if the database has its text (and it still compiles to it).
    pub async fn get(
        &mut self,
        version: &str,
    ) -> Result<Option<Arc<CompiledCovenant>>, StoreError> {
        if let Some(c) = self.compiled.get(version) {
            return Ok(c.clone());
        }
        let rows = self.db.drafts_of_version(version).await?;
        let cc = rows
            .iter()
            .find_map(|r| PolicyBuilder::compile_stored(r).ok())
            .map(Arc::new);
        if cc.is_none() {
            tracing::warn!(
                version,
                "an entry names a policy version the database cannot rebuild"
            );
        }
        self.compiled.insert(version.to_owned(), cc.clone());
        Ok(cc)
    }
}

fn purpose_name(cc: Option<&CompiledCovenant>, purpose: Option<&str>) -> Option<String> {
    let c = cc?.covenant();
    let u = c.purpose(purpose?)?;
    c.purposes.get(u.index()).map(|u| u.name.clone())
}

fn parse_rows(
    rows: Vec<(i64, String, [u8; 32])>,
) -> Result<Vec<(i64, LogEntry, [u8; 32])>, Refusal> {
    rows.into_iter()
        .map(|(seq, text, leaf)| {
            LogEntry::parse(seq, &text)
                .map(|e| (seq, e, leaf))
                .map_err(|e| {
                    tracing::error!(error = %e, "a stored entry is unreadable");
                    Refusal::Internal
                })
        })
        .collect()
}

fn csv_of(items: &[Item]) -> Result<String, Refusal> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |_| Refusal::Internal;
    w.write_record([
        "seq",
        "at",
        "trace_id",
        "kind",
        "partner",
        "staff_id",
        "role",
        "processing_activity",
        "case_id",
        "data_subject",
        "outcome",
        "problem",
        "products_disclosed",
        "products_withheld",
    ])
    .map_err(err)?;
    for it in items {
        let e = &it.entry;
        let fields = |class: OutcomeClass| -> String {
            e.products
                .iter()
                .flat_map(|(p, s)| {
                    s.fields()
                        .filter(move |(c, _, _)| *c == class)
                        .map(move |(_, f, _)| format!("{p}.{f}"))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        w.write_record([
            it.seq.to_string(),
            crate::log::entry::rfc3339::format(e.at).unwrap_or_default(),
            e.trace_id.clone(),
            e.kind.as_str().to_owned(),
            e.partner.clone(),
            o(&e.staff_id),
            o(&e.role),
            o(&e.processing_activity),
            o(&e.case_id),
            o(&e.data_subject),
            e.outcome.as_str().to_owned(),
            o(&e.problem),
            fields(OutcomeClass::Disclosed),
            fields(OutcomeClass::Withheld),
        ])
        .map_err(err)?;
    }
    String::from_utf8(w.into_inner().map_err(|_| Refusal::Internal)?).map_err(|_| Refusal::Internal)
}

/// Records the query (without the BSN: the pseudonym stands for the person searched); nothing
/// is answered unless this succeeds.
async fn record_query(app: &App, call: &mut Call, query: String) -> Result<(), Refusal> {
    call.record.query = Some(query);
    call.commit(app).await.map(|_| ())
}

/// The latest checkpoint (signed now if the log grew), with the cosignature of every witness
/// that cosigned it: the note a partner or monitor checks against the witnesses' keys.
pub async fn cosigned_checkpoint(app: &App) -> Result<String, crate::log::LogError> {
    let (size, note) = app.log.checkpoint(app.clock.now()).await?;
    let lines = app.db.cosignatures(Some(size)).await?;
    Ok(crate::witnessing::with_cosignatures(&note, &lines))
}

/// A person's entries up to the newest checkpoint that commits the per-subject map, with what
/// proves them complete (issue 28): the cosigned checkpoint, per pseudonym the map proof, and
/// every entry of its chain with its inclusion proof (its content where retention left it).
/// The entries come from the map's stored rows: a row removed by hand leaves the person's chain
/// short of what the checkpoint commits, and the proof fails. `held`: the map a serving
/// instance holds and the size it covers, used instead of rebuilding it when it is the one at
/// the checkpoint chosen.
pub async fn prove_subject(
    db: &Db,
    pseudonyms: &[String],
    held: Option<(i64, crate::log::subjects::SubjectMap)>,
) -> Result<crate::log::subjects::SubjectProof, crate::log::LogError> {
    use crate::log::subjects::{MapHead, ProvenEntry, ProvenSubject, SubjectProof, key_of, map_at};
    // The newest checkpoint that commits the map and that a witness cosigned, else the newest
    // that commits it: the proof is complete up to a witnessed state where there is one.
    let mut committing: Vec<StoredCheckpoint> = db
        .checkpoints()
        .await?
        .into_iter()
        .filter(|c| MapHead::in_note(&c.note).is_some())
        .collect();
    let cosigned: BTreeSet<i64> = db
        .cosignatures(None)
        .await?
        .into_iter()
        .map(|c| c.size)
        .collect();
    let cp = match committing
        .iter()
        .rposition(|c| cosigned.contains(&c.size))
    {
        Some(i) => Some(committing.swap_remove(i)),
        None => committing.pop(),
    }
    .ok_or_else(|| {
        crate::log::LogError::Range(
            "no checkpoint commits the per-subject map yet: let the gateway sign one (it does within its checkpoint interval) and ask again".into(),
        )
    })?;
    let size = u64::try_from(cp.size).map_err(|_| crate::log::LogError::Corrupt("size".into()))?;
    // The map a serving instance holds, when it is the one at that size; else from the rows.
    let map = match held {
        Some((size, map)) if size == cp.size => map,
        _ => map_at(db, cp.size).await?,
    };
    let mut subjects = Vec::new();
    for p in pseudonyms {
        let key = key_of(p);
        let mut entries = Vec::new();
        for (_, seq, leaf) in db.subject_entries(Some(&hex::encode(key)), cp.size).await? {
            let index =
                u64::try_from(seq - 1).map_err(|_| crate::log::LogError::Corrupt("seq".into()))?;
            let proof = crate::log::tree::with_nodes(db, |get| {
                crate::log::merkle::inclusion_path(index, size, get)
            })
            .await?;
            let entry = db
                .entries(seq - 1, 1)
                .await?
                .into_iter()
                .next()
                .and_then(|e| e.record.map(|r| r.entry));
            entries.push(ProvenEntry {
                seq: index + 1,
                leaf_hash: leaf,
                entry,
                proof,
            });
        }
        subjects.push(ProvenSubject {
            pseudonym: p.clone(),
            map: map.prove(&key),
            entries,
        });
    }
    let cosignatures = db.cosignatures(Some(cp.size)).await?;
    Ok(SubjectProof {
        checkpoint: crate::witnessing::with_cosignatures(&cp.note, &cosignatures),
        subjects,
        not_covered: retired_pseudonym_keys(db, cp.size).await?,
    })
}

/// The pseudonym keys the log says were retired up to entry `upto`: a person's entries made
/// under them can no longer be found by BSN, so a proof says it does not cover them.
async fn retired_pseudonym_keys(
    db: &Db,
    upto: i64,
) -> Result<Vec<crate::log::subjects::RetiredKey>, StoreError> {
    use crate::log::entry::{KeyAction, KeyName};
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let filter = LogFilter {
            kinds: vec![Kind::Keys.as_str()],
            after_seq: after,
            limit: 1000,
            ..LogFilter::default()
        };
        let rows = db.search(&filter).await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            break;
        };
        for (seq, text, _) in &rows {
            // An unreadable keys entry could hide a retired key: the proof is refused instead.
            let e = LogEntry::parse(*seq, text)
                .map_err(|e| StoreError::Corrupt(format!("log entry {seq}: {e}")))?;
            if let Some(k) = e.keys.filter(|k| {
                k.key == KeyName::Pseudonym && k.action == KeyAction::Retired && *seq <= upto
            }) {
                for id in &k.from {
                    out.push(crate::log::subjects::RetiredKey {
                        key: id.clone(),
                        seq: *seq,
                        at: crate::log::entry::rfc3339::format(e.at).ok_or_else(|| {
                            StoreError::Corrupt(format!("log entry {seq}: time out of range"))
                        })?,
                    });
                }
            }
        }
        if rows.len() < 1000 || last > upto {
            break;
        }
        after = last;
    }
    Ok(out)
}

/// Searches the log.
pub async fn search(app: &App, call: &mut Call, q: SearchQuery) -> Result<SearchAnswer, Refusal> {
    let visible_to = officer(call)?;
    let c = call.covenant();
    if let Some(p) = &q.product {
        c.product(p)
            .ok_or_else(|| Refusal::ProductUnknown(clip(p, 64)))?;
    }
    let kind = match &q.kind {
        Some(k) => Some(k.parse::<Kind>().map_err(|()| {
            Refusal::InvalidBody(format!(
                "`kind` is one of {}",
                Kind::ALL.map(Kind::as_str).join(", ")
            ))
        })?),
        None => None,
    };
    if let Some(o) = &q.outcome {
        o.parse::<Outcome>().map_err(|()| {
            Refusal::InvalidBody("`outcome` is answered, partly-unavailable or refused".into())
        })?;
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Refusal::InvalidBody("`format` is json or csv".into())),
    };
    // The person under every pseudonym key still in use: entries made before a rotation too.
    let subjects = match &q.subject {
        Some(b) => app.secrets.subject_pseudonyms(&parse_bsn(b)?),
        None => Vec::new(),
    };
    let filter = LogFilter {
        subjects: subjects.clone(),
        partner: q.partner.clone(),
        staff_id: q.staff_id.clone(),
        purpose: q.purpose.clone(),
        case_id: q.case.clone(),
        product: q.product.clone(),
        outcome: q.outcome.clone(),
        kinds: kind.map(|k| vec![k.as_str()]).unwrap_or_default(),
        from: time_param("from", &q.from)?,
        to: time_param("to", &q.to)?,
        visible_to,
        after_seq: q.after.unwrap_or(0),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    call.record.data_subject = subjects.into_iter().next();
    call.record.case_id = q.case.as_deref().map(|c| clip(c, 80));
    let described = format!(
        "search partner={:?} staff_id={:?} purpose={:?} case={:?} product={:?} outcome={:?} kind={:?} from={:?} to={:?} subject={}",
        q.partner.as_deref().map(|s| clip(s, 64)),
        q.staff_id.as_deref().map(|s| clip(s, 128)),
        q.purpose.as_deref().map(|s| clip(s, 64)),
        q.case.as_deref().map(|s| clip(s, 80)),
        q.product,
        q.outcome,
        kind.map(Kind::as_str),
        q.from.as_deref().map(|s| clip(s, 40)),
        q.to.as_deref().map(|s| clip(s, 40)),
        if q.subject.is_some() {
            "pseudonym"
        } else {
            "-"
        }
    );
    let rows = parse_rows(app.db.search(&filter).await?)?;
    let mut versions = Versions::new(app.db.clone(), [call.policy.covenant.clone()]);
    let mut items = Vec::with_capacity(rows.len());
    for (seq, entry, leaf) in rows {
        let cc = versions.get(&entry.policy_version).await?;
        // Another partner's entry (it touches this partner's products): only this partner's part.
        let (partial, entry) = match &filter.visible_to {
            Some(p) if entry.partner != *p => (true, entry.part_for(p)),
            _ => (false, entry),
        };
        items.push(Item {
            seq,
            leaf_hash: hex::encode(leaf),
            purpose_name: purpose_name(cc.as_deref(), entry.processing_activity.as_deref()),
            partial,
            entry,
        });
    }
    record_query(app, call, described).await?;
    if csv {
        return Ok(SearchAnswer::Csv(csv_of(&items)?));
    }
    let next = (items.len() as i64 == filter.limit)
        .then(|| items.last().map(|i| i.seq))
        .flatten();
    Ok(SearchAnswer::Json(items, next))
}

/// Overview parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// How many weeks back, this week included (1 to 104; default 12).
    #[serde(default)]
    pub weeks: Option<i64>,
}

/// One line of a chart: a key (partner, purpose, refusal type, product) and its count per week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    /// What is counted.
    pub key: String,
    /// Per week, in the order of [`Overview::weeks`].
    pub counts: Vec<u64>,
}

/// The log's figures per week, for the officers' overview (counts only, nobody named).
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Each week's Monday (ISO date), oldest first.
    pub weeks: Vec<String>,
    /// Answered disclosures (fully or partly) per requesting partner.
    pub disclosures_by_partner: Vec<Series>,
    /// Answered disclosures per purpose.
    pub disclosures_by_purpose: Vec<Series>,
    /// Refused requests (every kind) per requesting partner.
    pub refusals_by_partner: Vec<Series>,
    /// Refused requests per purpose (`-` where the request named none).
    pub refusals_by_purpose: Vec<Series>,
    /// Refused requests per refusal type.
    pub refusals_by_type: Vec<Series>,
    /// Partly-unavailable answers per product whose source did not answer.
    pub unavailable_by_product: Vec<Series>,
    /// The partly-unavailable answers were more than could be read; their figures are a part.
    pub unavailable_truncated: bool,
    /// Included cases whose person was not notified within the covenant's `notification_days`
    /// (absent when the covenant tracks no such duty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications_overdue: Option<u64>,
}

/// Seconds from the epoch to the first Monday (5 January 1970), and in a week.
const MONDAY: i64 = 4 * 86_400;
const WEEK: i64 = 7 * 86_400;
/// Partly-unavailable answers read for the per-product figures.
const MAX_UNAVAILABLE: i64 = 50_000;

/// Counts per key and week, as series sorted by key.
#[derive(Default)]
struct Tallies(BTreeMap<String, Vec<u64>>);

impl Tallies {
    fn add(&mut self, key: &str, week: usize, weeks: usize, n: u64) {
        let counts = self
            .0
            .entry(key.to_owned())
            .or_insert_with(|| vec![0; weeks]);
        if let Some(c) = counts.get_mut(week) {
            *c += n;
        }
    }
    fn series(self) -> Vec<Series> {
        self.0
            .into_iter()
            .map(|(key, counts)| Series { key, counts })
            .collect()
    }
}

/// `GET /v1/audit/overview`: the figures per week (one query, recorded like a search).
pub async fn overview(app: &App, call: &mut Call, q: OverviewQuery) -> Result<Overview, Refusal> {
    let visible_to = officer(call)?;
    let weeks = q.weeks.unwrap_or(12);
    if !(1..=104).contains(&weeks) {
        return Err(Refusal::InvalidBody("`weeks` is 1 to 104".into()));
    }
    let this_week = (app.clock.now() - MONDAY).div_euclid(WEEK);
    let first = this_week - (weeks - 1);
    let from = first * WEEK + MONDAY;
    let n = usize::try_from(weeks).map_err(|_| Refusal::Internal)?;
    let index = |week: i64| usize::try_from(week - first).ok().filter(|i| *i < n);
    let (mut dp, mut du, mut rp) = (Tallies::default(), Tallies::default(), Tallies::default());
    let (mut ru, mut rt, mut up) = (Tallies::default(), Tallies::default(), Tallies::default());
    for row in app.db.overview(from, visible_to.as_deref()).await? {
        let Some(i) = index(row.week) else { continue };
        let count = u64::try_from(row.n).unwrap_or(0);
        let purpose = row.purpose.as_deref().unwrap_or("-");
        let outcome = row.outcome.parse::<Outcome>().map_err(|()| {
            tracing::error!("a stored entry has an unknown outcome");
            Refusal::Internal
        })?;
        if outcome == Outcome::Refused {
            rp.add(&row.partner, i, n, count);
            ru.add(purpose, i, n, count);
            rt.add(row.problem.as_deref().unwrap_or("-"), i, n, count);
        } else if row.kind == Kind::Disclosure.as_str() {
            dp.add(&row.partner, i, n, count);
            du.add(purpose, i, n, count);
        }
    }
    let partly = app
        .db
        .partly_unavailable(from, visible_to.as_deref(), MAX_UNAVAILABLE)
        .await?;
    let unavailable_truncated = partly.len() as i64 == MAX_UNAVAILABLE;
    for (seq, text) in partly {
        let e = LogEntry::parse(seq, &text).map_err(|e| {
            tracing::error!(error = %e, "a stored entry is unreadable");
            Refusal::Internal
        })?;
        let Some(i) = index((e.at - MONDAY).div_euclid(WEEK)) else {
            continue;
        };
        for (product, summary) in &e.products {
            if summary.status == crate::log::entry::ProductStatus::Unavailable {
                up.add(product, i, n, 1);
            }
        }
    }
    let weeks_list = (first..=this_week)
        .map(|w| {
            crate::log::entry::rfc3339::format(w * WEEK + MONDAY)
                .and_then(|t| t.get(..10).map(str::to_owned))
                .ok_or(Refusal::Internal)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let notifications_overdue = match call.covenant().case_register.notification_days {
        Some(days) => {
            let facts = app.db.case_facts().await?;
            let n = super::aggregates::notifications_overdue(&facts, days, app.clock.today());
            Some(u64::try_from(n).unwrap_or(u64::MAX))
        }
        None => None,
    };
    record_query(app, call, format!("overview weeks={weeks}")).await?;
    Ok(Overview {
        notifications_overdue,
        weeks: weeks_list,
        disclosures_by_partner: dp.series(),
        disclosures_by_purpose: du.series(),
        refusals_by_partner: rp.series(),
        refusals_by_purpose: ru.series(),
        refusals_by_type: rt.series(),
        unavailable_by_product: up.series(),
        unavailable_truncated,
    })
}

/// A field a person's data went out as.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    /// Field name.
    pub field: String,
    /// `disclosed` or `transformed`.
    pub how: &'static str,
    /// The rule that decided it.
    pub rule: String,
}

/// One disclosure in an art. 15 report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportItem {
    /// Sequence number.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The receiving partner.
    pub to: String,
    /// In which role.
    pub role: Option<String>,
    /// For which purpose.
    pub purpose: Option<String>,
    /// The purpose's name in the version that decided it.
    pub purpose_name: Option<String>,
    /// `disclosure`, `check` or `case-read`.
    pub kind: Kind,
    /// Per product, the fields received.
    pub data_received: BTreeMap<String, Vec<Received>>,
    /// The grounds of the rules that let them go, as that version names them.
    pub legal_grounds: BTreeMap<String, String>,
    /// The covenant version that decided it.
    pub policy_version: String,
    /// Whether the database still has that version's text (else its purpose names and grounds
    /// cannot be shown, and the report says so instead of showing today's).
    pub version_known: bool,
}

/// The GDPR art. 15 report of one person.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectReport {
    /// The person, as the gateway's pseudonym (under the current key; entries made before a
    /// rotation are found under the earlier keys' pseudonyms as well).
    pub data_subject: String,
    /// Purposes the covenant marks confidential from the subject, left out of this report.
    pub confidential_purposes_left_out: Vec<String>,
    /// The legal basis the covenant states for leaving each of them out.
    pub confidential_grounds: BTreeMap<String, String>,
    /// Every disclosure about the person, oldest first.
    pub disclosures: Vec<ReportItem>,
    /// Older disclosures the log no longer holds: removed under the covenant's retention rules,
    /// so that a short list is not mistaken for a complete one.
    pub removed_under_retention: Vec<RemovedNotice>,
    /// When asked for: what proves the report complete (issue 28), for the asker to check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<crate::log::subjects::SubjectProof>,
}

/// Disclosures of some kinds older than a date removed under a retention rule (of anyone: a
/// removed entry no longer says whom it was about).
#[derive(Debug, Clone, Serialize)]
pub struct RemovedNotice {
    /// The rule.
    pub rule: String,
    /// The kinds of entries it removes that the report would list.
    pub kinds: Vec<String>,
    /// Only these purposes (empty: any).
    pub purposes: Vec<String>,
    /// The ground the covenant gives.
    pub ground: String,
    /// Entries from before this were removed (RFC 3339; the latest run's cut-off).
    pub removed_before: String,
}

/// What retention entries say was removed of the kinds an art. 15 report lists.
async fn removed_notices(db: &Db) -> Result<Vec<RemovedNotice>, Refusal> {
    let listed: Vec<&str> = Kind::ALL
        .into_iter()
        .filter(|k| k.reaches_recipient())
        .map(Kind::as_str)
        .collect();
    let mut by_rule: BTreeMap<String, (RemovedNotice, i64)> = BTreeMap::new();
    let mut after = 0;
    loop {
        let filter = LogFilter {
            kinds: vec![Kind::Retention.as_str()],
            after_seq: after,
            limit: 1000,
            ..LogFilter::default()
        };
        let page = parse_rows(db.search(&filter).await?)?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = *last;
        let done = page.len() < 1000;
        for (_, e, _) in page {
            let rules = e.retention.map(|r| r.rules).unwrap_or_default();
            for r in rules
                .into_iter()
                .filter(|r| r.target == crate::log::entry::RetentionTarget::Log && r.removed > 0)
            {
                let kinds: Vec<String> = r
                    .kinds
                    .iter()
                    .filter(|k| listed.contains(&k.as_str()))
                    .cloned()
                    .collect();
                if kinds.is_empty() {
                    continue;
                }
                let slot = by_rule.entry(r.rule.clone()).or_insert_with(|| {
                    (
                        RemovedNotice {
                            rule: r.rule.clone(),
                            kinds: kinds.clone(),
                            purposes: r.purposes.clone(),
                            ground: r.ground.clone(),
                            removed_before: String::new(),
                        },
                        i64::MIN,
                    )
                });
                if r.before > slot.1 {
                    slot.1 = r.before;
                    slot.0.removed_before =
                        crate::log::entry::rfc3339::format(r.before).unwrap_or_default();
                }
            }
        }
        if done {
            break;
        }
    }
    Ok(by_rule.into_values().map(|(n, _)| n).collect())
}

/// The art. 15 report for one subject (its pseudonyms under every key in use, the current one
/// first): every answered entry whose data reached a
/// recipient, to whom, when, for which purpose, which fields, on which grounds, all as the
/// version that decided it names them. Purposes that version marks confidential are left out
/// unless `include_confidential`.
pub async fn subject_report(
    db: &Db,
    versions: &mut Versions,
    active: &CompiledCovenant,
    pseudonyms: &[String],
    include_confidential: bool,
    visible_to: Option<String>,
) -> Result<SubjectReport, Refusal> {
    let mut left_out: BTreeSet<String> = active
        .covenant()
        .purposes
        .iter()
        .filter(|u| u.confidential)
        .map(|u| u.id.clone())
        .collect();
    let mut confidential_grounds: BTreeMap<String, String> = active
        .covenant()
        .purposes
        .iter()
        .filter_map(|u| Some((u.id.clone(), u.confidential_ground.clone()?)))
        .filter(|(u, _)| left_out.contains(u))
        .collect();
    if include_confidential {
        left_out.clear();
        confidential_grounds.clear();
    }
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let filter = LogFilter {
            subjects: pseudonyms.to_vec(),
            visible_to: visible_to.clone(),
            kinds: Kind::ALL
                .into_iter()
                .filter(|k| k.reaches_recipient())
                .map(Kind::as_str)
                .collect(),
            after_seq: after,
            limit: 1000,
            ..LogFilter::default()
        };
        let page = parse_rows(db.search(&filter).await?)?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = *last;
        let done = page.len() < 1000;
        for (seq, e, _) in page {
            if !e.outcome.answered() {
                continue;
            }
            let cc = versions.get(&e.policy_version).await?;
            let c = cc.as_deref().map(CompiledCovenant::covenant);
            let purpose = c
                .zip(e.processing_activity.as_deref())
                .and_then(|(c, u)| c.purpose(u).and_then(|u| c.purposes.get(u.index())));
            if let Some(u) = purpose.filter(|u| u.confidential && !include_confidential) {
                left_out.insert(u.id.clone());
                if let Some(g) = &u.confidential_ground {
                    confidential_grounds
                        .entry(u.id.clone())
                        .or_insert_with(|| g.clone());
                }
                continue;
            }
            let grounds: BTreeMap<&str, &str> = c
                .map(|c| {
                    c.rules
                        .iter()
                        .map(|r| (r.id.as_str(), r.ground.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            let mut received: BTreeMap<String, Vec<Received>> = BTreeMap::new();
            let mut rule_grounds = BTreeMap::new();
            for (p, s) in &e.products {
                let fields: Vec<Received> = s
                    .fields()
                    .filter_map(|(class, f, rule)| {
                        let how = match class {
                            OutcomeClass::Disclosed => "disclosed",
                            OutcomeClass::Transformed => "transformed",
                            _ => return None,
                        };
                        if let Some(g) = grounds.get(rule) {
                            rule_grounds.insert(rule.to_owned(), (*g).to_owned());
                        }
                        Some(Received {
                            field: f.to_owned(),
                            how,
                            rule: rule.to_owned(),
                        })
                    })
                    .collect();
                if !fields.is_empty() {
                    received.insert(p.clone(), fields);
                }
            }
            if let Some(r) = &e.case_read {
                received.insert(
                    "case-register".into(),
                    ["status"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain(r.classification.iter().cloned())
                        .map(|f| Received {
                            field: f,
                            how: "disclosed",
                            rule: "case-register".into(),
                        })
                        .collect(),
                );
            }
            out.push(ReportItem {
                seq,
                at: crate::log::entry::rfc3339::format(e.at).unwrap_or_default(),
                to: e.partner.clone(),
                role: e.role.clone(),
                purpose_name: purpose_name(cc.as_deref(), e.processing_activity.as_deref()),
                purpose: e.processing_activity.clone(),
                kind: e.kind,
                data_received: received,
                legal_grounds: rule_grounds,
                version_known: cc.is_some(),
                policy_version: e.policy_version.clone(),
            });
        }
        if done {
            break;
        }
    }
    Ok(SubjectReport {
        data_subject: pseudonyms.first().cloned().unwrap_or_default(),
        confidential_purposes_left_out: left_out.into_iter().collect(),
        confidential_grounds,
        disclosures: out,
        removed_under_retention: removed_notices(db).await?,
        proof: None,
    })
}

/// `POST /v1/audit/subjects/report`: the person, and whether purposes the covenant hides from
/// the subject are listed too.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    /// The person, by BSN: in the body, never in a URL.
    pub subject: crate::service::cases::SubjectIn,
    /// Whether purposes the covenant marks confidential are in the report (default: left out).
    #[serde(default)]
    pub confidential: Confidential,
    /// Also the proof that the report is complete (issue 28), for the asker to check.
    #[serde(default)]
    pub prove: bool,
}

/// Whether an art. 15 report holds the purposes the covenant marks confidential.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidential {
    /// Left out, with the covenant's stated ground (the default).
    #[default]
    Exclude,
    /// In the report.
    Include,
}

/// The art. 15 report, for an officer.
pub async fn subject(
    app: &App,
    call: &mut Call,
    q: SubjectQuery,
) -> Result<SubjectReport, Refusal> {
    let visible_to = officer(call)?;
    let pseudonyms = app.secrets.subject_pseudonyms(&parse_bsn(&q.subject.bsn)?);
    let include_confidential = q.confidential == Confidential::Include;
    call.record.data_subject = pseudonyms.first().cloned();
    let active = call.policy.covenant.clone();
    let mut versions = Versions::new(app.db.clone(), [active.clone()]);
    let mut report = subject_report(
        &app.db,
        &mut versions,
        &active,
        &pseudonyms,
        include_confidential,
        visible_to,
    )
    .await?;
    if q.prove {
        // A checkpoint over the log as it is, should none commit the map yet.
        app.log.checkpoint(app.clock.now()).await.map_err(|e| {
            tracing::error!(error = %e, "no checkpoint for a proven report");
            Refusal::DisclosureLogUnavailable
        })?;
        report.proof = Some(
            prove_subject(&app.db, &pseudonyms, app.log.subject_map().await)
                .await
                .map_err(|e| match e {
                    crate::log::LogError::Range(why) => Refusal::InvalidBody(why),
                    e => {
                        tracing::error!(error = %e, "the per-subject map could not prove a report");
                        Refusal::DisclosureLogUnavailable
                    }
                })?,
        );
    }
    record_query(
        app,
        call,
        format!(
            "subject report confidential={include_confidential} prove={}",
            q.prove
        ),
    )
    .await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    async fn overdue(app: &App) -> Option<u64> {
        let mut oov = testkit::call(app, Kind::AuditQuery, "oov", "fg.1", &["privacy-officer"]);
        overview(app, &mut oov, OverviewQuery::default())
            .await
            .unwrap()
            .notifications_overdue
    }

    /// Issue 31: the notification duty. An included case whose letter has not gone out 21
    /// days after the Regieoverleg's decision counts as overdue on the officers' overview and
    /// in the metric; once its date is recorded it no longer does.
    #[tokio::test]
    async fn an_overdue_notification_shows_on_the_overview_and_in_the_metric() {
        use crate::service::cases::{CasePatch, update};
        let (app, clock) = testkit::app().await;
        let case = testkit::included(&app, "999993331").await;
        let mut sec = testkit::call(&app, Kind::CaseChange, "oov", "sec.1", &["secretaris"]);
        let decided = CasePatch {
            decision_date: Some("2026-11-30".into()),
            ..CasePatch::default()
        };
        update(&app, &mut sec, &case.id, decided).await.unwrap();
        // T0 is 2026-12-01: one day after the decision, within the 21 days.
        assert_eq!(overdue(&app).await, Some(0));
        clock.advance(22 * 86_400);
        assert_eq!(overdue(&app).await, Some(1));
        crate::service::aggregates::measure_notifications(&app)
            .await
            .unwrap();
        assert_eq!(
            crate::metrics::metrics().case_notifications_overdue.get(),
            1
        );
        let mut sec = testkit::call(&app, Kind::CaseChange, "oov", "sec.1", &["secretaris"]);
        let sent = CasePatch {
            notification_date: Some("2026-12-20".into()),
            ..CasePatch::default()
        };
        update(&app, &mut sec, &case.id, sent).await.unwrap();
        assert_eq!(overdue(&app).await, Some(0));
    }

    #[tokio::test]
    async fn the_overview_counts_per_week_from_monday_and_is_recorded() {
        let (app, clock) = testkit::app().await;
        testkit::register(&app, "999993331").await;
        clock.advance(7 * 86_400);
        let mut oov = testkit::call(&app, Kind::AuditQuery, "oov", "fg.1", &["privacy-officer"]);
        let o = overview(&app, &mut oov, OverviewQuery { weeks: Some(3) })
            .await
            .unwrap();
        assert_eq!(o.weeks.len(), 3);
        let monday = |d: &str| {
            time::Date::parse(d, &time::format_description::well_known::Iso8601::DATE)
                .unwrap()
                .weekday()
                == time::Weekday::Monday
        };
        assert!(o.weeks.iter().all(|w| monday(w)), "{:?}", o.weeks);
        assert!(o.weeks.last().unwrap().as_str() <= app.clock.today().to_string().as_str());
        // A case change is neither a disclosure nor a refusal.
        assert!(o.disclosures_by_partner.is_empty() && o.refusals_by_type.is_empty());
        let mut reg = testkit::call(&app, Kind::AuditQuery, "rn", "reg.1", &["regisseur"]);
        assert!(matches!(
            overview(&app, &mut reg, OverviewQuery::default()).await,
            Err(Refusal::PurposeRole(..))
        ));
        let mut oov = testkit::call(&app, Kind::AuditQuery, "oov", "fg.1", &["privacy-officer"]);
        assert!(matches!(
            overview(&app, &mut oov, OverviewQuery { weeks: Some(0) }).await,
            Err(Refusal::InvalidBody(_))
        ));
        let recorded = testkit::entries(&app)
            .await
            .into_iter()
            .filter(|e| e.kind == Kind::AuditQuery)
            .filter_map(|e| e.query)
            .collect::<Vec<_>>();
        assert_eq!(recorded, vec!["overview weeks=3".to_owned()]);
    }

    #[tokio::test]
    async fn officers_see_by_partner_and_every_query_is_recorded() {
        let (app, _) = testkit::app().await;
        testkit::register(&app, "999993331").await;
        let q = || SearchQuery {
            subject: Some("999993331".into()),
            ..SearchQuery::default()
        };
        // The programme's officer sees the registration; another partner's officer does not.
        let mut oov = testkit::call(&app, Kind::AuditQuery, "oov", "fg.1", &["privacy-officer"]);
        let SearchAnswer::Json(items, _) = search(&app, &mut oov, q()).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            items.iter().map(|i| i.entry.kind).collect::<Vec<_>>(),
            vec![Kind::CaseChange]
        );
        let mut rn = testkit::call(&app, Kind::AuditQuery, "rn", "fg.2", &["privacy-officer"]);
        let SearchAnswer::Json(items, _) = search(&app, &mut rn, q()).await.unwrap() else {
            panic!()
        };
        assert!(items.is_empty());
        // Not an officer.
        let mut reg = testkit::call(&app, Kind::AuditQuery, "rn", "reg.1", &["regisseur"]);
        assert!(matches!(
            search(&app, &mut reg, q()).await,
            Err(Refusal::PurposeRole(..))
        ));
        // Both searches are entries, the subject as its pseudonym, never the BSN.
        let queries: Vec<LogEntry> = testkit::entries(&app)
            .await
            .into_iter()
            .filter(|e| e.kind == Kind::AuditQuery)
            .collect();
        assert_eq!(queries.len(), 2);
        assert!(
            queries.iter().all(|e| e.data_subject.is_some()
                && !e.query.as_deref().unwrap_or("").contains("999993331"))
        );
        // A filter on an unknown kind or outcome is refused, not silently empty.
        let mut oov = testkit::call(&app, Kind::AuditQuery, "oov", "fg.1", &["privacy-officer"]);
        assert!(matches!(
            search(
                &app,
                &mut oov,
                SearchQuery {
                    kind: Some("nope".into()),
                    ..SearchQuery::default()
                }
            )
            .await,
            Err(Refusal::InvalidBody(_))
        ));
    }

    #[tokio::test]
    async fn a_version_the_database_cannot_rebuild_is_said_so() {
        let (app, _) = testkit::app().await;
        let mut versions = Versions::new(app.db.clone(), []);
        assert!(versions.get("sha256:unknown").await.unwrap().is_none());
        let active = app.policy.load().version().to_owned();
        assert!(
            versions.get(&active).await.unwrap().is_some(),
            "the bootstrap's stored text"
        );
    }
}
