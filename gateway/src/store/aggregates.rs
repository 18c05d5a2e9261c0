//! What aggregate views are computed from, and their frozen answers.

use super::{Db, StoreError, on_pool};

/// What aggregates are computed from: one case, without its subject.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaseFacts {
    /// Status.
    pub status: String,
    /// Risk group.
    pub risk_group: Option<i64>,
    /// Ideology.
    pub ideology: Option<String>,
    /// Date of the signal.
    pub signal_date: Option<String>,
    /// Date of the inclusion decision.
    pub decision_date: Option<String>,
    /// Date of the notification letter.
    pub notification_date: Option<String>,
    /// When the case became `opgenomen` (epoch seconds).
    pub included_at: Option<i64>,
    /// When it was closed (epoch seconds).
    pub closed_at: Option<i64>,
}

impl Db {
    /// The facts of every case, for aggregate views.
    pub async fn case_facts(&self) -> Result<Vec<CaseFacts>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_as(
            "SELECT c.status, c.risk_group, c.ideology, c.signal_date, c.decision_date, c.notification_date, \
             (SELECT MIN(e.at) FROM case_events e WHERE e.case_id = c.id AND e.status = 'opgenomen') AS included_at, \
             (SELECT MIN(e.at) FROM case_events e WHERE e.case_id = c.id AND e.status = 'afgesloten') AS closed_at \
             FROM cases c",
        )
        .fetch_all(p)
        .await)?)
    }

    /// The frozen answer of a view for a period, if any.
    pub async fn release(&self, view: &str, period: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, p => sqlx::query_scalar(
            "SELECT body FROM aggregate_releases WHERE view = $1 AND period = $2",
        )
        .bind(view)
        .bind(period)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores a view's answer for a period unless one exists; returns the stored one.
    pub async fn put_release(
        &self,
        view: &str,
        period: &str,
        body: &str,
        at: i64,
    ) -> Result<String, StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO aggregate_releases (view, period, body, released_at) VALUES ($1, $2, $3, $4) ON CONFLICT (view, period) DO NOTHING",
        )
        .bind(view)
        .bind(period)
        .bind(body)
        .bind(at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        self.release(view, period)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a stored release vanished".into()))
    }
}
