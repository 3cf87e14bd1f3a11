//! People who sign in, and their sessions (found by the hash of the cookie).

use tokio_postgres::Row;

use super::{classify, PgStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{found, Person, PersonSession, Result, StoreError};

const COLUMNS: &str =
    "id, email, password_hash, role, totp_secret, created_at, updated_at, environment_roles";
const EMAIL_TAKEN: &str = "someone with this email already exists";

fn from_row_at(r: &Row, at: usize) -> Person {
    Person {
        id: r.get(at),
        email: r.get(at + 1),
        password_hash: r.get(at + 2),
        role: r.get(at + 3),
        totp_secret: r.get(at + 4),
        created_at: r.get(at + 5),
        updated_at: r.get(at + 6),
        environment_roles: crate::model::decode_roles(r.get(at + 7)),
    }
}

#[async_trait::async_trait]
impl crate::People for PgStore {
    async fn person_insert(&self, p: Person) -> Result<Person> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            &format!("INSERT INTO person ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
            &[
                &p.id,
                &p.email,
                &p.password_hash,
                &p.role,
                &p.totp_secret,
                &p.created_at,
                &p.updated_at,
                &crate::model::encode_roles(&p.environment_roles),
            ],
        )
        .await
        .map_err(|e| classify(e, EMAIL_TAKEN))?;
        Ok(p)
    }

    async fn person_get(&self, id_or_email: &str) -> Result<Person> {
        let mut conn = self.pool.get().await?;
        conn.query_opt(
            &format!("SELECT {COLUMNS} FROM person WHERE id = $1 OR email = $2 LIMIT 1"),
            &[&id_or_email, &id_or_email.to_lowercase()],
        )
        .await?
        .map(|r| from_row_at(&r, 0))
        .ok_or(StoreError::NotFound)
    }

    async fn person_list(&self, q: ListQuery) -> Result<Page<Person>> {
        let select = format!("SELECT {COLUMNS} FROM person");
        let list = simple_list(Dialect::Postgres, &select, None, &q, "id");
        let rows = self.query_built(&list, |r| from_row_at(r, 0)).await?;
        Ok(q.finish(rows, |p| p.id.clone()))
    }

    async fn person_update(&self, p: Person) -> Result<Person> {
        let mut conn = self.pool.get().await?;
        found(
            conn.execute(
                "UPDATE person SET role = $2, password_hash = $3, totp_secret = $4, updated_at = $5, environment_roles = $6 WHERE id = $1",
                &[
                    &p.id,
                    &p.role,
                    &p.password_hash,
                    &p.totp_secret,
                    &p.updated_at,
                    &crate::model::encode_roles(&p.environment_roles),
                ],
            )
            .await?,
        )?;
        Ok(p)
    }

    async fn person_delete(&self, id: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.begin().await?;
        let outcome = async {
            conn.execute("DELETE FROM person_session WHERE person_id = $1", &[&id])
                .await?;
            found(
                conn.execute("DELETE FROM person WHERE id = $1", &[&id])
                    .await?,
            )
        }
        .await;
        conn.finish(outcome).await
    }

    async fn session_insert(&self, s: PersonSession) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO person_session (hash, person_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&s.hash, &s.person_id, &s.csrf, &s.created_at, &s.expires_at],
        )
        .await?;
        Ok(())
    }

    async fn session_find(&self, hash: &str, now: i64) -> Result<Option<(PersonSession, Person)>> {
        let mut conn = self.pool.get().await?;
        let columns = COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = conn
            .query_opt(
                &format!(
                    "SELECT s.hash, s.person_id, s.csrf, s.created_at, s.expires_at, {columns} \
                     FROM person_session s JOIN person p ON p.id = s.person_id \
                     WHERE s.hash = $1 AND s.expires_at > $2"
                ),
                &[&hash, &now],
            )
            .await?;
        Ok(row.map(|r| {
            (
                PersonSession {
                    hash: r.get(0),
                    person_id: r.get(1),
                    csrf: r.get(2),
                    created_at: r.get(3),
                    expires_at: r.get(4),
                },
                from_row_at(&r, 5),
            )
        }))
    }

    async fn sessions_end_for(&self, person_id: &str) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let n = conn
            .execute(
                "DELETE FROM person_session WHERE person_id = $1",
                &[&person_id],
            )
            .await?;
        Ok(n as usize)
    }

    async fn session_delete(&self, hash: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        conn.execute("DELETE FROM person_session WHERE hash = $1", &[&hash])
            .await?;
        Ok(())
    }
}
