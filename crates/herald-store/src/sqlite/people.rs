//! People who sign in, and their sessions (found by the hash of the cookie).

use rusqlite::{params, OptionalExtension, Row};

use super::{conflict_on_unique, found, query_rows, SqliteStore};
use crate::filters::simple_list;
use crate::page::{ListQuery, Page};
use crate::sql::Dialect;
use crate::{Person, PersonSession, Result, StoreError};

const COLUMNS: &str =
    "id, email, password_hash, role, totp_secret, created_at, updated_at, environment_roles";
const EMAIL_TAKEN: &str = "someone with this email already exists";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Person> {
    from_row_at(r, 0)
}

fn from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Person> {
    Ok(Person {
        id: r.get(at)?,
        email: r.get(at + 1)?,
        password_hash: r.get(at + 2)?,
        role: r.get(at + 3)?,
        totp_secret: r.get(at + 4)?,
        created_at: r.get(at + 5)?,
        updated_at: r.get(at + 6)?,
        environment_roles: crate::model::decode_roles(r.get(at + 7)?),
    })
}

#[async_trait::async_trait]
impl crate::People for SqliteStore {
    async fn person_insert(&self, p: Person) -> Result<Person> {
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO person ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                p.id,
                p.email,
                p.password_hash,
                p.role,
                p.totp_secret,
                p.created_at,
                p.updated_at,
                crate::model::encode_roles(&p.environment_roles)
            ])
            .map_err(|e| conflict_on_unique(e, EMAIL_TAKEN))?;
            Ok(p)
        })
        .await
    }

    async fn person_get(&self, id_or_email: &str) -> Result<Person> {
        let key = id_or_email.to_lowercase();
        let id = id_or_email.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM person WHERE id = ?1 OR email = ?2 LIMIT 1"
            ))?
            .query_row(params![id, key], from_row)
            .optional()?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn person_list(&self, q: ListQuery) -> Result<Page<Person>> {
        self.read(move |c| {
            let select = format!("SELECT {COLUMNS} FROM person");
            let list = simple_list(Dialect::Sqlite, &select, None, &q, "id");
            let rows = query_rows(c, &list, from_row)?;
            Ok(q.finish(rows, |p| p.id.clone()))
        })
        .await
    }

    async fn person_update(&self, p: Person) -> Result<Person> {
        self.write(move |c| {
            found(c.execute(
                "UPDATE person SET role = ?2, password_hash = ?3, totp_secret = ?4, updated_at = ?5, environment_roles = ?6 WHERE id = ?1",
                params![p.id, p.role, p.password_hash, p.totp_secret, p.updated_at, crate::model::encode_roles(&p.environment_roles)],
            )?)?;
            Ok(p)
        })
        .await
    }

    async fn person_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM person_session WHERE person_id = ?1", [&id])?;
            found(c.execute("DELETE FROM person WHERE id = ?1", [&id])?)
        })
        .await
    }

    async fn session_insert(&self, s: PersonSession) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO person_session (hash, person_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.hash, s.person_id, s.csrf, s.created_at, s.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn session_find(&self, hash: &str, now: i64) -> Result<Option<(PersonSession, Person)>> {
        let hash = hash.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT s.hash, s.person_id, s.csrf, s.created_at, s.expires_at, {} \
                 FROM person_session s JOIN person p ON p.id = s.person_id \
                 WHERE s.hash = ?1 AND s.expires_at > ?2",
                COLUMNS
                    .split(", ")
                    .map(|col| format!("p.{col}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?
            .query_row(params![hash, now], |r| {
                Ok((
                    PersonSession {
                        hash: r.get(0)?,
                        person_id: r.get(1)?,
                        csrf: r.get(2)?,
                        created_at: r.get(3)?,
                        expires_at: r.get(4)?,
                    },
                    from_row_at(r, 5)?,
                ))
            })
            .optional()?)
        })
        .await
    }

    async fn sessions_end_for(&self, person_id: &str) -> Result<usize> {
        let id = person_id.to_string();
        self.write(move |c| Ok(c.execute("DELETE FROM person_session WHERE person_id = ?1", [id])?))
            .await
    }

    async fn session_delete(&self, hash: &str) -> Result<()> {
        let hash = hash.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM person_session WHERE hash = ?1", [hash])?;
            Ok(())
        })
        .await
    }
}
