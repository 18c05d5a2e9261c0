//! Retention: what the covenant says has been kept long enough is removed, in steps, each one a
//! log entry committed with the removal it describes.
//!
//! Deposits go when the subject's last case has been closed for the deposits period (and with
//! a removed case); closed cases go, with their history and sealed BSN, after the cases period;
//! log entries lose their content after their rule's period, their hashes staying under a
//! tombstone so that the chain, the tree, every checkpoint and every remaining proof still
//! verify. Kinds the covenant names no rule for are kept.

use crate::log::entry::{
    Kind, LogEntry, Outcome, RemovedRange, RetentionStep, RetentionTarget, RuleApplied, Start,
    new_id,
};
use crate::log::{Log, LogError};
use crate::store::{Change, Db, DepositKey, Removal, StoreError, TombstoneRow};
use policy::Covenant;
use policy::covenant::{LogRetention, Period};
use std::collections::BTreeMap;

/// Entries one step removes at most (one transaction; the writer waits for it).
const STEP_ENTRIES: usize = 20_000;
/// Ranges one step lists at most (they are in its entry).
const STEP_RANGES: usize = 2_000;
/// Cases or deposits one step removes at most.
const STEP_ROWS: i64 = 1_000;
/// Entries read per page while looking for expired ones.
const PAGE: i64 = 5_000;
/// Steps refused because something changed meanwhile, before the run gives up.
const CONFLICTS: u32 = 3;

/// A retention run failed; what was committed before stays committed (and logged).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The log could not record a step; that step removed nothing.
    #[error("{0}")]
    Log(#[from] LogError),
    /// Other writers kept changing what a step was about to remove.
    #[error("what retention was about to remove kept changing ({0} steps refused); run it again")]
    Conflicts(u32),
}

/// What one rule removed in a run (or would remove, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleTotal {
    /// What it removes.
    pub target: RetentionTarget,
    /// The period in days.
    pub days: u32,
    /// The ground.
    pub ground: String,
    /// What is older than this goes (RFC 3339).
    pub before: String,
    /// How many.
    pub removed: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    /// Nothing was removed: this is what a run would remove now.
    pub dry_run: bool,
    /// Per rule, what went.
    pub rules: BTreeMap<String, RuleTotal>,
    /// The retention entries written (sequence numbers).
    pub entries: Vec<i64>,
    /// SHA-256 of the sealed deposits removed (their opened copies are to be forgotten).
    #[serde(skip)]
    pub forgotten: Vec<[u8; 32]>,
}

impl RunReport {
    /// Whether anything went (or would go).
    pub fn removed_any(&self) -> bool {
        self.rules.values().any(|r| r.removed > 0)
    }
}

/// A rule of the covenant as one step applies it.
#[derive(Debug, Clone)]
struct Applied {
    rule: String,
    target: RetentionTarget,
    kinds: Vec<String>,
    purposes: Vec<String>,
    period: Period,
    before: i64,
}

impl Applied {
    fn of_log(c: &Covenant, r: &LogRetention, now: i64) -> Applied {
        Applied {
            rule: r.id.clone(),
            target: RetentionTarget::Log,
            kinds: r.kinds.iter().map(|k| k.as_str().to_owned()).collect(),
            purposes: r
                .purposes
                .iter()
                .filter_map(|u| c.purposes.get(u.index()).map(|p| p.id.clone()))
                .collect(),
            period: r.period.clone(),
            before: now.saturating_sub(r.period.secs()),
        }
    }

    fn of(rule: &str, target: RetentionTarget, p: &Period, now: i64) -> Applied {
        Applied {
            rule: rule.to_owned(),
            target,
            kinds: Vec::new(),
            purposes: Vec::new(),
            period: p.clone(),
            before: now.saturating_sub(p.secs()),
        }
    }

    fn entry(&self, removed: u64) -> RuleApplied {
        RuleApplied {
            rule: self.rule.clone(),
            target: self.target,
            kinds: self.kinds.clone(),
            purposes: self.purposes.clone(),
            days: self.period.days,
            ground: self.period.ground.clone(),
            before: self.before,
            removed,
        }
    }
}

/// Finds what has expired, step by step; the log cursor only moves forward, so entries kept
/// are read once per run.
struct Planner<'a> {
    covenant: &'a Covenant,
    now: i64,
    log_rules: Vec<Applied>,
    cases: Option<Applied>,
    deposits: Option<Applied>,
    /// Without a deposits rule of its own: only the deposits of removed cases go.
    orphans_only: bool,
    cursor: i64,
    rows: i64,
}

impl<'a> Planner<'a> {
    fn new(covenant: &'a Covenant, now: i64, rows: i64) -> Self {
        let r = &covenant.retention;
        let cases = r
            .cases
            .as_ref()
            .map(|p| Applied::of("cases", RetentionTarget::Cases, p, now));
        // Without a deposits rule, a removed case's deposits go under the cases rule.
        let deposits = match (&r.deposits, &cases) {
            (Some(p), _) => Some(Applied::of("deposits", RetentionTarget::Deposits, p, now)),
            (None, Some(c)) => Some(Applied {
                target: RetentionTarget::Deposits,
                ..c.clone()
            }),
            (None, None) => None,
        };
        Planner {
            covenant,
            now,
            log_rules: r
                .log
                .iter()
                .map(|l| Applied::of_log(covenant, l, now))
                .collect(),
            orphans_only: r.deposits.is_none(),
            cases,
            deposits,
            cursor: 0,
            rows,
        }
    }

    /// The next step's removal and the rules it applies with their counts; `None` when nothing
    /// more has expired.
    async fn step(&mut self, db: &Db) -> Result<Option<(Removal, Vec<RuleApplied>)>, StoreError> {
        let mut removal = Removal::default();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        self.expired_entries(db, &mut removal, &mut counts).await?;
        if let Some(c) = &self.cases {
            for case in db.closed_cases(c.before, self.rows).await? {
                removal.cases.push((case.id, case.version));
            }
        }
        if let Some(d) = &self.deposits {
            let before = (!self.orphans_only).then_some(d.before);
            removal.deposits = db.expired_deposits(before, self.rows).await?;
        }
        let mut applied: Vec<RuleApplied> = self
            .log_rules
            .iter()
            .filter_map(|a| counts.get(&a.rule).map(|n| a.entry(*n)))
            .collect();
        if let Some(c) = self.cases.as_ref().filter(|_| !removal.cases.is_empty()) {
            applied.push(c.entry(removal.cases.len() as u64));
        }
        if let Some(d) = self
            .deposits
            .as_ref()
            .filter(|_| !removal.deposits.is_empty())
        {
            applied.push(d.entry(removal.deposits.len() as u64));
        }
        Ok((!applied.is_empty()).then_some((removal, applied)))
    }

    async fn expired_entries(
        &mut self,
        db: &Db,
        removal: &mut Removal,
        counts: &mut BTreeMap<String, u64>,
    ) -> Result<(), StoreError> {
        let Some(latest) = self.log_rules.iter().map(|a| a.before).max() else {
            return Ok(());
        };
        let mut taken = 0usize;
        loop {
            let page = db.expiring_entries(self.cursor, latest, PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            for e in page {
                self.cursor = e.seq;
                let rule = e
                    .kind
                    .parse::<Kind>()
                    .ok()
                    .and_then(Kind::expiring)
                    .and_then(|k| {
                        let purpose = e.purpose.as_deref().and_then(|u| self.covenant.purpose(u));
                        self.covenant.retention.log_rule(k, purpose)
                    });
                let Some(rule) = rule else { continue };
                let Some(a) = self.log_rules.iter().find(|a| a.rule == rule.id) else {
                    continue;
                };
                if e.at >= a.before {
                    continue;
                }
                let stones = &mut removal.tombstones;
                match stones.last_mut() {
                    Some(t) if t.last_seq + 1 == e.seq && t.rule == a.rule => t.last_seq = e.seq,
                    _ => stones.push(TombstoneRow {
                        first_seq: e.seq,
                        last_seq: e.seq,
                        rule: a.rule.clone(),
                        removed_at: self.now,
                    }),
                }
                *counts.entry(a.rule.clone()).or_default() += 1;
                taken += 1;
                if taken >= STEP_ENTRIES || stones.len() >= STEP_RANGES {
                    return Ok(());
                }
            }
        }
    }
}

/// The entry of one step.
fn step_entry(version: &str, now: i64, removal: &Removal, rules: Vec<RuleApplied>) -> LogEntry {
    let mut e = LogEntry::new(Start {
        id: new_id(),
        at: now,
        trace_id: &uuid::Uuid::new_v4().to_string(),
        kind: Kind::Retention,
        partner: "(gateway)".into(),
        policy_version: version,
    });
    e.outcome = Outcome::Answered;
    e.retention = Some(RetentionStep {
        rules,
        log: removal
            .tombstones
            .iter()
            .map(|t| RemovedRange {
                first: t.first_seq,
                last: t.last_seq,
                rule: t.rule.clone(),
            })
            .collect(),
    });
    e
}

fn add_totals(report: &mut RunReport, rules: &[RuleApplied]) {
    for r in rules {
        let t = report
            .rules
            .entry(r.rule.clone())
            .or_insert_with(|| RuleTotal {
                target: r.target,
                days: r.days,
                ground: r.ground.clone(),
                before: crate::log::entry::rfc3339::format(r.before).unwrap_or_default(),
                removed: 0,
            });
        t.removed += r.removed;
    }
}

/// What a run at `now` would remove under `covenant`; removes nothing.
pub async fn dry_run(db: &Db, covenant: &Covenant, now: i64) -> Result<RunReport, RetentionError> {
    let mut report = RunReport {
        dry_run: true,
        ..RunReport::default()
    };
    // Nothing is removed, so cases and deposits are counted in the first step, in one query
    // each, and the log's cursor moves on through the rest without asking for them again.
    let mut planner = Planner::new(covenant, now, i64::MAX);
    while let Some((removal, rules)) = planner.step(db).await? {
        planner.cases = None;
        planner.deposits = None;
        add_totals(&mut report, &rules);
        if removal.tombstones.is_empty() {
            break;
        }
    }
    Ok(report)
}

/// Removes what has expired by `now` under `covenant` (the active version, `version`), each
/// step recorded in the log in the transaction that removes it.
pub async fn run(
    log: &Log,
    covenant: &Covenant,
    version: &str,
    now: i64,
) -> Result<RunReport, RetentionError> {
    let db = log.db();
    // Every entry about a person is in the per-subject map before any content goes (issue 28):
    // its place in the person's chain outlives its content, and a proven report shows it removed.
    crate::log::subjects::map_at(db, db.log_head().await?.size).await?;
    let mut report = RunReport::default();
    let mut planner = Planner::new(covenant, now, STEP_ROWS);
    let mut refused = 0;
    while let Some((removal, rules)) = planner.step(db).await? {
        let entry = step_entry(version, now, &removal, rules.clone());
        let forgotten: Vec<[u8; 32]> = removal
            .deposits
            .iter()
            .map(|d: &DepositKey| d.sealed_sha256)
            .collect();
        let a = log
            .append_with(entry, Change::RemoveExpired(removal))
            .await?;
        report.entries.push(a.seq);
        if !a.applied {
            // Something changed between reading and removing: read again from the start.
            refused += 1;
            if refused >= CONFLICTS {
                return Err(RetentionError::Conflicts(refused));
            }
            planner = Planner::new(covenant, now, STEP_ROWS);
            continue;
        }
        add_totals(&mut report, &rules);
        report.forgotten.extend(forgotten);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::entry::Kind;
    use crate::service::cases::{CasePatch, update};
    use crate::testkit::{self, T0};
    use policy::CaseStatus;

    const DAY: i64 = 86_400;

    const RETENTION: &str = r#"
[retention]
deposits = { days = 30, ground = "convenant art. 12 lid 2" }
cases = { days = 365, ground = "convenant art. 12 lid 1" }

[[retention.log]]
id = "log-verzoeken"
kinds = ["disclosure", "check", "case-read", "request"]
days = 90
ground = "convenant art. 12 lid 3"

[[retention.log]]
id = "log-register"
kinds = ["case-change", "deposit"]
days = 400
ground = "convenant art. 12 lid 3"
"#;

    fn covenant() -> policy::CompiledCovenant {
        // The example's own periods (years) replaced by the test's.
        let example = crate::demo::EXAMPLE_COVENANT
            .split("\n[retention]")
            .next()
            .unwrap();
        policy::compile_toml(&format!("{example}\n{RETENTION}")).unwrap()
    }

    /// The test's periods made the active version the way administrators do it (draft,
    /// approval, the partners' signatures, activation), so that the log shows it in force.
    async fn activate_test_periods(
        app: &crate::app::App,
    ) -> std::sync::Arc<policy::CompiledCovenant> {
        use crate::service::policy_admin::{activate, approve, create_draft};
        let example = crate::demo::EXAMPLE_COVENANT
            .split("\n[retention]")
            .next()
            .unwrap();
        let admin = |staff: &str| testkit::call(app, Kind::Policy, "oov", staff, &["beheerder"]);
        let d = create_draft(
            app,
            &mut admin("beheerder-1"),
            Ok(format!("{example}\n{RETENTION}")),
        )
        .await
        .unwrap();
        let id = d["id"].as_str().unwrap().to_owned();
        approve(app, &mut admin("beheerder-2"), &id).await.unwrap();
        testkit::sign_all(app, &id).await;
        activate(app, &mut admin("beheerder-1"), &id).await.unwrap();
        app.policy.load().covenant.clone()
    }

    async fn run_at(app: &crate::app::App, cc: &policy::CompiledCovenant, at: i64) -> RunReport {
        run(&app.log, cc.covenant(), cc.version().as_str(), at)
            .await
            .unwrap()
    }

    async fn verified(app: &crate::app::App) -> crate::log::verify::Report {
        let keys = app.log.key_set().unwrap();
        crate::log::verify::verify(&app.db, &keys, |_| {})
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn expired_data_goes_in_logged_steps_and_the_log_still_verifies() {
        let (app, _) = testkit::app().await;
        let cc = activate_test_periods(&app).await;
        // A: registered, deposited for, closed at T0. B: open.
        let a = testkit::register(&app, "999990007").await;
        let mut dep = testkit::call(&app, Kind::Deposit, "ggd", "bron", &["bronsysteem"]);
        let recs = serde_json::from_value(serde_json::json!({"records": [{"screeningsdatum": "2026-09-30", "in_zorg": false, "zorgaanbieder": "GGZ", "diagnose": "x", "medicatie": "y", "contactpersoon": "GGD Team"}]})).unwrap();
        crate::service::records::deposit(&app, &mut dep, "ggd.screening", &a.subject_ref, recs)
            .await
            .unwrap();
        let mut close = testkit::call(&app, Kind::CaseChange, "politie", "vp.1", &["voorportaal"]);
        let patch = CasePatch {
            status: Some(CaseStatus::NietOpgenomen),
            ..CasePatch::default()
        };
        update(&app, &mut close, &a.id, patch).await.unwrap();
        let b = testkit::register(&app, "999990019").await;
        let mut stray = testkit::call(&app, Kind::Request, "rn", "reg.1", &["regisseur"]);
        stray.record.refuse("not-found");
        app.log.append(stray.record).await.unwrap();
        let before = app.db.log_head().await.unwrap().size;

        // Nothing is due yet: nothing happens, and nothing is logged.
        let r = run_at(&app, &cc, T0 + 10 * DAY).await;
        assert!(!r.removed_any() && r.entries.is_empty());
        assert_eq!(app.db.log_head().await.unwrap().size, before);

        // A dry run a month on says what would go, and removes nothing.
        let dry = dry_run(&app.db, cc.covenant(), T0 + 31 * DAY)
            .await
            .unwrap();
        assert_eq!(dry.rules.get("deposits").map(|t| t.removed), Some(1));
        assert!(dry.entries.is_empty());
        assert!(app.db.case_with_records(&a.id).await.unwrap().is_some());

        // After 31 days A's deposit goes, in one logged step; the rest stays.
        let r = run_at(&app, &cc, T0 + 31 * DAY).await;
        assert_eq!(r.rules.get("deposits").map(|t| t.removed), Some(1));
        assert_eq!(r.rules.len(), 1, "{:?}", r.rules);
        assert_eq!(r.forgotten.len(), 1);
        let step = testkit::entries(&app).await.pop().unwrap();
        assert_eq!(step.kind, Kind::Retention);
        assert_eq!(step.partner, "(gateway)");
        let applied = &step.retention.as_ref().unwrap().rules;
        assert_eq!(
            (
                applied[0].rule.as_str(),
                applied[0].removed,
                applied[0].days
            ),
            ("deposits", 1, 30)
        );

        // After 91 days the request entry's content goes under a tombstone.
        let r = run_at(&app, &cc, T0 + 91 * DAY).await;
        assert_eq!(r.rules.get("log-verzoeken").map(|t| t.removed), Some(1));
        let stones = app.db.tombstones().await.unwrap();
        assert_eq!(stones.len(), 1);
        assert_eq!(stones[0].first_seq, before);
        let report = verified(&app).await;
        assert_eq!(report.first_bad, None);
        assert_eq!(report.removed, 1);

        // After 401 days: the closed case A (not B) and the register's entries.
        let r = run_at(&app, &cc, T0 + 401 * DAY).await;
        assert_eq!(r.rules.get("cases").map(|t| t.removed), Some(1));
        assert!(r.rules.get("log-register").is_some_and(|t| t.removed >= 4));
        assert!(app.db.case(&a.id).await.unwrap().is_none());
        assert!(app.db.case_events(&a.id).await.unwrap().is_empty());
        assert!(app.db.case(&b.id).await.unwrap().is_some());
        let report = verified(&app).await;
        assert_eq!(report.first_bad, None, "{report:?}");
        assert!(report.removed >= 5);
        // Every retention entry is kept: the log's own history never expires.
        let steps = testkit::entries(&app)
            .await
            .into_iter()
            .filter(|e| e.kind == Kind::Retention)
            .count();
        assert_eq!(steps, 3);

        // The art. 15 report says what went, rather than silently showing less.
        let pseudonym = app
            .secrets
            .subject_pseudonym(&policy::Bsn::parse("999990007").unwrap());
        let active = app.policy.load_full();
        let mut versions =
            crate::service::audit::Versions::new(app.db.clone(), [active.covenant.clone()]);
        let letter = crate::service::audit::subject_report(
            &app.db,
            &mut versions,
            &active.covenant,
            &[pseudonym],
            false,
            None,
        )
        .await
        .unwrap();
        assert_eq!(letter.removed_under_retention.len(), 1);
        assert_eq!(letter.removed_under_retention[0].rule, "log-verzoeken");
    }

    #[tokio::test]
    async fn removed_content_cannot_come_back_and_a_forged_tombstone_is_found() {
        let (app, _) = testkit::app().await;
        let cc = covenant();
        let mut stray = testkit::call(&app, Kind::Request, "rn", "reg.1", &["regisseur"]);
        stray.record.refuse("not-found");
        let gone = app.log.append(stray.record).await.unwrap();
        testkit::register(&app, "999990020").await;
        run_at(&app, &cc, T0 + 91 * DAY).await;
        let seq = gone.seq;
        let insert = format!(
            "INSERT INTO log_records (seq, entry, id, at, trace_id, kind, partner, policy_version, outcome) \
             VALUES ({seq}, '{{}}', 'disc-x', 0, 't', 'request', 'rn', 'v', 'refused')"
        );
        // The database refuses it.
        let refused = app.db.execute_unchecked(&insert).await.unwrap_err();
        assert!(
            refused.to_string().contains("cannot come back"),
            "{refused}"
        );
        // With the trigger dropped, verification finds it.
        app.db
            .execute_unchecked("DROP TRIGGER log_records_removed_stays_removed")
            .await
            .unwrap();
        app.db.execute_unchecked(&insert).await.unwrap();
        let report = verified(&app).await;
        let (bad, why) = report.first_bad.unwrap();
        assert_eq!(bad, seq);
        assert!(why.contains("its content is back"), "{why}");

        // A tombstone no retention entry backs: content "removed" to hide an entry.
        let (app, _) = testkit::app().await;
        testkit::register(&app, "999990032").await;
        let seq = app.db.log_head().await.unwrap().size;
        app.db
            .execute_unchecked(&format!(
                "INSERT INTO log_tombstones VALUES ({seq}, {seq}, 'log-register', 0); \
                 DELETE FROM log_products WHERE seq = {seq}; DELETE FROM log_records WHERE seq = {seq}"
            ))
            .await
            .unwrap();
        let report = verified(&app).await;
        let (bad, why) = report.first_bad.unwrap();
        assert_eq!(bad, seq);
        assert!(
            why.contains("does not match the retention entries"),
            "{why}"
        );
    }
}
