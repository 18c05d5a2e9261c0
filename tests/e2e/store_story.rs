//! One story against both storage backends: every store method, the same calls, the same
//! results. State changes go through the log, as in the gateway: each with its entry, in one
//! transaction.

use crate::helpers::*;
use gateway::log::checkpoint::LogKey;
use gateway::log::entry::{Kind, LogEntry, Outcome, ProductStatus, ProductSummary, Start};
use gateway::log::{Log, LogKeys};
use gateway::store::{
    CaseAction, CaseEventRow, CaseRow, Change, Db, DraftKind, DraftStatus, LogFilter,
    PolicyDraftRow, RecordsRow, Regisseur, StoredCheckpoint,
};
use policy::CaseStatus;
use std::sync::Arc;

fn case(id: &str, pseudonym: &str) -> CaseRow {
    CaseRow {
        id: id.into(),
        subject_ref: format!("subj-{id}"),
        subject_pseudonym: pseudonym.into(),
        subject_sealed: vec![1, 2, 3, 0, 255],
        status: CaseStatus::Melding,
        risk_group: Some(3),
        ideology: Some(policy::domain::Ideology::Jihadistisch),
        regisseur: None,
        uvo_partners: vec![],
        signal_date: Some("2026-01-02".into()),
        decision_date: None,
        notification_date: None,
        notification_to: None,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        version: 1,
        sealed_key: None,
        pseudonym_key: None,
    }
}

fn event(c: &CaseRow, action: CaseAction) -> CaseEventRow {
    CaseEventRow {
        case_id: c.id.clone(),
        version: c.version,
        at: c.updated_at,
        partner: "politie".into(),
        staff_id: "p1".into(),
        role: "voorportaal".into(),
        action,
        fields: vec!["status".into()],
        status: Some(c.status),
    }
}

fn entry(n: u32, kind: Kind, subject: Option<&str>) -> LogEntry {
    let mut e = LogEntry::new(Start {
        id: format!("disc-story-{n}"),
        at: 1_700_000_000 + i64::from(n),
        trace_id: "trace-story-0001",
        kind,
        partner: "politie".into(),
        policy_version: "v-story",
    });
    e.data_subject = subject.map(str::to_owned);
    e.outcome = Outcome::Answered;
    e
}

fn draft(id: &str, status: DraftStatus) -> PolicyDraftRow {
    PolicyDraftRow {
        id: id.into(),
        version: format!("v-{id}"),
        source: "covenant text".into(),
        key_material: "{}".into(),
        kind: DraftKind::Change,
        base_version: Some("v-boot".into()),
        author_partner: "oov".into(),
        author_staff: "b1".into(),
        created_at: 1_700_000_000,
        approved_partner: None,
        approved_staff: None,
        approved_at: None,
        activated_partner: None,
        activated_staff: None,
        activated_at: None,
        status,
    }
}

async fn story(db: Db) {
    db.migrate().await.unwrap();
    db.migrate().await.unwrap(); // idempotent
    db.ping().await.unwrap();
    let key = || LogKeys {
        current: LogKey::from_seed("story/disclosures", &[9; 32]).unwrap(),
        retired: vec![],
    };
    let log = Arc::new(
        Log::open(
            db.clone(),
            key(),
            "story/disclosures".into(),
            std::sync::Arc::new(gateway::clock::SystemClock),
        )
        .await
        .unwrap(),
    );

    // The policy: bootstrap once; a second bootstrap loses and says so in its entry.
    let mut boot = draft("boot", DraftStatus::Active);
    boot.kind = DraftKind::Bootstrap;
    boot.version = "v-boot".into();
    boot.activated_at = Some(1_699_999_000);
    let a = log
        .append_with(
            entry(1, Kind::Policy, None),
            Change::Bootstrap(boot.clone()),
        )
        .await
        .unwrap();
    assert!(a.applied);
    let again = log
        .append_with(
            entry(2, Kind::Policy, None),
            Change::Bootstrap(draft("boot-2", DraftStatus::Active)),
        )
        .await
        .unwrap();
    assert!(!again.applied);
    assert_eq!(again.entry.outcome, Outcome::Refused);
    assert_eq!(again.entry.problem.as_deref(), Some("activation-conflict"));
    assert_eq!(db.active_policy_draft().await.unwrap().unwrap().id, "boot");

    // Drafts: insert, approve once, activate with compare-and-set.
    let d = draft("d1", DraftStatus::Draft);
    assert!(
        log.append_with(entry(3, Kind::Policy, None), Change::InsertDraft(d.clone()))
            .await
            .unwrap()
            .applied
    );
    assert_eq!(db.policy_draft("d1").await.unwrap(), Some(d.clone()));
    assert_eq!(db.policy_draft("nope").await.unwrap(), None);
    let approve = |n: i64| Change::ApproveDraft {
        id: "d1".into(),
        partner: "om".into(),
        staff: "b2".into(),
        at: 1_700_000_100 + n,
    };
    assert!(
        log.append_with(entry(4, Kind::Policy, None), approve(0))
            .await
            .unwrap()
            .applied
    );
    // Approved again, the approval is renewed (one that no longer counts is given anew).
    assert!(
        log.append_with(entry(5, Kind::Policy, None), approve(1))
            .await
            .unwrap()
            .applied,
        "an approval renewed"
    );
    assert_eq!(
        db.policy_draft("d1").await.unwrap().unwrap().approved_at,
        Some(1_700_000_101)
    );
    let activate = |expected: &str| Change::ActivateDraft {
        id: "d1".into(),
        expected_active: expected.into(),
        partner: "oov".into(),
        staff: "b1".into(),
        at: 1_700_000_200,
    };
    assert!(
        !log.append_with(entry(6, Kind::Policy, None), activate("someone-else"))
            .await
            .unwrap()
            .applied
    );
    assert_eq!(
        db.active_policy_draft().await.unwrap().unwrap().id,
        "boot",
        "a lost compare-and-set changes nothing"
    );
    assert!(
        log.append_with(entry(7, Kind::Policy, None), activate("boot"))
            .await
            .unwrap()
            .applied
    );
    let active = db.active_policy_draft().await.unwrap().unwrap();
    assert_eq!(
        (
            active.id.as_str(),
            active.status,
            active.approved_staff.as_deref()
        ),
        ("d1", DraftStatus::Active, Some("b2"))
    );
    assert_eq!(
        db.policy_draft("boot").await.unwrap().unwrap().status,
        DraftStatus::Superseded
    );
    let activated: Vec<String> = db
        .policy_drafts(true, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(activated, vec!["d1", "boot"]);
    assert_eq!(db.policy_drafts(false, 10).await.unwrap().len(), 2);
    assert_eq!(db.drafts_of_version("v-d1").await.unwrap().len(), 1);

    // Cases.
    let a = case("case-a", "pseudo-a");
    assert!(
        log.append_with(
            entry(8, Kind::CaseChange, Some("pseudo-a")),
            Change::CreateCase {
                case: a.clone(),
                event: event(&a, CaseAction::Created)
            }
        )
        .await
        .unwrap()
        .applied
    );
    assert_eq!(db.case("case-a").await.unwrap(), Some(a.clone()));
    assert_eq!(db.case("case-b").await.unwrap(), None);
    assert_eq!(
        db.subject_of_ref("subj-case-a").await.unwrap(),
        Some("pseudo-a".into())
    );
    let mut b = a.clone();
    b.status = CaseStatus::Duiding;
    b.regisseur = Some(Regisseur {
        partner: "rn".into(),
        staff_id: "r1".into(),
    });
    b.uvo_partners = vec!["ggd".into(), "politie".into()];
    b.version = 2;
    b.updated_at += 60;
    let up = |c: &CaseRow, expected| Change::UpdateCase {
        case: c.clone(),
        expected_version: expected,
        event: event(c, CaseAction::Updated),
    };
    assert!(
        log.append_with(entry(9, Kind::CaseChange, Some("pseudo-a")), up(&b, 1))
            .await
            .unwrap()
            .applied
    );
    // A writer that read version 1 loses, changes nothing, and the log says so.
    let mut stale = a.clone();
    stale.status = CaseStatus::NietOpgenomen;
    stale.version = 2;
    let lost = log
        .append_with(entry(10, Kind::CaseChange, Some("pseudo-a")), up(&stale, 1))
        .await
        .unwrap();
    assert!(!lost.applied);
    assert_eq!(lost.entry.problem.as_deref(), Some("case-conflict"));
    assert_eq!(db.case("case-a").await.unwrap(), Some(b.clone()));
    let events = db.case_events("case-a").await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.version, e.action))
            .collect::<Vec<_>>(),
        vec![(1, CaseAction::Created), (2, CaseAction::Updated)]
    );
    assert_eq!(
        db.subject_cases(&["pseudo-a".into()]).await.unwrap(),
        vec![b.clone()]
    );

    // Deposits: only for a registered subject.
    let rec = |subject: &str| RecordsRow {
        product: "rn.toezicht".into(),
        subject_ref: subject.into(),
        owner: "rn".into(),
        sealed: vec![7; 40],
        updated_at: 1_700_000_300,
        updated_by: "bron".into(),
        sealed_key: None,
        deposit_sha256: None,
    };
    assert!(
        log.append_with(
            entry(11, Kind::Deposit, Some("pseudo-a")),
            Change::PutRecords(rec("subj-case-a"))
        )
        .await
        .unwrap()
        .applied
    );
    assert!(
        !log.append_with(
            entry(12, Kind::Deposit, None),
            Change::PutRecords(rec("subj-nobody"))
        )
        .await
        .unwrap()
        .applied
    );
    let (c, records) = db.case_with_records("case-a").await.unwrap().unwrap();
    assert_eq!((c, records), (b.clone(), vec![rec("subj-case-a")]));
    assert_eq!(db.case_with_records("case-none").await.unwrap(), None);

    // Aggregates.
    let facts = db.case_facts().await.unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].status, "duiding");
    assert_eq!(db.release("v", "2026-Q4").await.unwrap(), None);
    assert_eq!(
        db.put_release("v", "2026-Q4", "{\"a\":1}", 1)
            .await
            .unwrap(),
        "{\"a\":1}"
    );
    assert_eq!(
        db.put_release("v", "2026-Q4", "{\"a\":2}", 2)
            .await
            .unwrap(),
        "{\"a\":1}",
        "frozen"
    );

    // The log: 12 entries, searchable by the derived columns and the side table.
    let mut with_product = entry(13, Kind::Disclosure, Some("pseudo-a"));
    with_product.products.insert(
        "rn.toezicht".into(),
        ProductSummary::new(ProductStatus::Ok, "rn", 1),
    );
    log.append(with_product).await.unwrap();
    let head = db.log_head().await.unwrap();
    assert_eq!(head.size, 13);
    let found = db
        .search(&LogFilter {
            subjects: vec!["pseudo-a".into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(),
        vec![8, 9, 10, 11, 13]
    );
    let by_product = db
        .search(&LogFilter {
            product: Some("rn.toezicht".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_product.len(), 1);
    let visible = db
        .search(&LogFilter {
            visible_to: Some("rn".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        visible.len(),
        1,
        "rn sees the entry about its product, not politie's others"
    );
    let kinds = db
        .search(&LogFilter {
            kinds: vec!["case-change"],
            outcome: Some("refused".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(),
        vec![10]
    );
    assert_eq!(db.products_between(0, 13).await.unwrap().len(), 1);
    assert!(db.entry(13).await.unwrap().unwrap().contains("rn.toezicht"));
    let all = db.entries(0, 100).await.unwrap();
    assert_eq!(all.len(), 13);
    assert!(all.iter().all(|e| e.record.is_some()));
    assert_eq!(db.leaf_hashes(0, 13).await.unwrap().len(), 13);
    assert!(db.orphan_records().await.unwrap().is_empty());

    // Checkpoints: one per size.
    let (size, note) = log.checkpoint(1_700_001_000).await.unwrap();
    assert_eq!(size, 13);
    assert_eq!(log.checkpoint(1_700_002_000).await.unwrap().1, note);
    let stored = db.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!((stored.size, stored.note.as_str()), (13, note.as_str()));
    let other = StoredCheckpoint {
        note: "another".into(),
        ..stored.clone()
    };
    assert_eq!(
        db.put_checkpoint(&other).await.unwrap(),
        note,
        "never two for one size"
    );
    assert_eq!(db.checkpoints().await.unwrap().len(), 1);

    // The stored tree: beyond 256 entries the first height-8 node exists and proofs verify.
    for n in 14..=300u32 {
        log.append(entry(n, Kind::Check, None)).await.unwrap();
    }
    let nodes = db.all_nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| (n.height, n.idx)).collect::<Vec<_>>(),
        vec![(8, 0)]
    );
    assert_eq!(db.node_hashes(8, 0, 1).await.unwrap().len(), 1);
    let (size, note) = log.checkpoint(1_700_003_000).await.unwrap();
    let keys = key().key_set().unwrap();
    let (cp, _) = keys.verify(&note).unwrap();
    for seq in [1, 200, 257, 300] {
        let p = log.inclusion(seq, Some(size), 0).await.unwrap();
        let proof: Vec<[u8; 32]> = p
            .proof
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect();
        let leaf: [u8; 32] = hex::decode(&p.leaf_hash).unwrap().try_into().unwrap();
        assert!(
            gateway::log::merkle::verify_inclusion(
                &leaf,
                (seq - 1) as u64,
                cp.size,
                &proof,
                &cp.root
            ),
            "{seq}"
        );
    }
    let report = gateway::log::verify::verify(&db, &keys, |_| {})
        .await
        .unwrap();
    assert_eq!(report.first_bad, None);
    assert_eq!((report.entries, report.nodes), (300, 1));

    // Append-only, even through the gateway's own connection.
    for sql in [
        "UPDATE log_records SET partner = 'x' WHERE seq = 1",
        "DELETE FROM log_records WHERE seq = 1",
        "UPDATE log_leaves SET leaf_hash = chain_hash WHERE seq = 1",
        "DELETE FROM log_leaves WHERE seq = 300",
        "UPDATE log_products SET owner = 'x'",
        "DELETE FROM log_nodes",
        "UPDATE log_checkpoints SET note = 'x'",
        "UPDATE log_tree_head SET size = 1",
        "DELETE FROM log_tree_head",
    ] {
        let e = db.execute_unchecked(sql).await.unwrap_err().to_string();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    // A restart reads the head and the tree's right edge, and carries on.
    log.shutdown().await;
    assert!(
        log.append(entry(999, Kind::Check, None)).await.is_err(),
        "no entries after shutdown"
    );
    let log = Log::open(
        db.clone(),
        key(),
        "story/disclosures".into(),
        std::sync::Arc::new(gateway::clock::SystemClock),
    )
    .await
    .unwrap();
    let a = log.append(entry(301, Kind::Check, None)).await.unwrap();
    assert_eq!(a.seq, 301);
    let report = gateway::log::verify::verify(&db, &keys, |_| {})
        .await
        .unwrap();
    assert_eq!(report.first_bad, None);
    log.shutdown().await;
}

#[tokio::test]
async fn story_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("gateway-e2e-story-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!(
        "sqlite://{}",
        dir.join(format!("{}.db", uuid::Uuid::new_v4().simple()))
            .display()
    );
    story(Db::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn story_on_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    story(Db::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn the_gateway_serves_cases_from_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    let gw = Gateway::start_with(&url, &[]);
    let c = client("oov");
    let t = token("oov", "vp.1", &["voorportaal"]);
    let r = c
        .post(gw.url("/v1/cases"))
        .bearer_auth(&t)
        .json(&serde_json::json!({"subject": {"bsn": "111222333"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let r = c
        .get(gw.url(&format!("/v1/cases/{}", v["id"].as_str().unwrap())))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h: serde_json::Value = reqwest::get(format!("http://{}/readyz", gw.health))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ready");
}
