//! First start-up: the built-in policies and roles, and the `admin` user.

use sqlx::Row;

use crate::crypto::hash_password;
use crate::policy::{BUILTIN_POLICIES, BUILTIN_ROLES, Effect};
use crate::store::{Store, new_id, now_rfc3339};

/// Upserts the built-in policies and roles (their definitions follow the
/// binary) and creates `admin` bound to `platform-admin` if missing.
pub async fn seed(store: &Store, admin_password: Option<&str>) -> anyhow::Result<()> {
    let mut tx = store.pool.begin().await?;
    for p in BUILTIN_POLICIES {
        let effect = match p.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        };
        let actions = serde_json::to_string(p.actions)?;
        let resources = serde_json::to_string(p.resources)?;
        let updated = sqlx::query(
            "UPDATE policies SET description = $2, scope = $3, effect = $4, actions = $5, \
             resources = $6, builtin = 1 WHERE name = $1",
        )
        .bind(p.name)
        .bind(p.description)
        .bind(p.scope)
        .bind(effect)
        .bind(&actions)
        .bind(&resources)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO policies (id, name, display_name, description, scope, effect, \
                 actions, resources, builtin, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,1,$9)",
            )
            .bind(new_id())
            .bind(p.name)
            .bind(p.name)
            .bind(p.description)
            .bind(p.scope)
            .bind(effect)
            .bind(&actions)
            .bind(&resources)
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
    }
    for r in BUILTIN_ROLES {
        let policies = serde_json::to_string(r.policies)?;
        let updated = sqlx::query(
            "UPDATE roles SET display_name = $2, scope = $3, policies = $4, builtin = 1 \
             WHERE name = $1",
        )
        .bind(r.name)
        .bind(r.display_name)
        .bind(r.scope)
        .bind(&policies)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO roles (id, name, display_name, description, scope, policies, \
                 builtin, created_at) VALUES ($1,$2,$3,'',$4,$5,1,$6)",
            )
            .bind(new_id())
            .bind(r.name)
            .bind(r.display_name)
            .bind(r.scope)
            .bind(&policies)
            .bind(now_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
    }
    let exists = sqlx::query("SELECT id FROM users WHERE name = 'admin'")
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        let password = match admin_password {
            Some(p) => p.to_string(),
            None => {
                tracing::warn!(
                    "platform: creating user 'admin' with the default password 'admin'; set \
                     platform.admin_password or TIDEWATCH_ADMIN_PASSWORD"
                );
                "admin".to_string()
            }
        };
        let user_id = new_id();
        sqlx::query(
            "INSERT INTO users (id, name, display_name, email, password_hash, locked, created_at) \
             VALUES ($1, 'admin', 'Administrator', '', $2, 0, $3)",
        )
        .bind(&user_id)
        .bind(hash_password(&password))
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        let role_id: String = sqlx::query("SELECT id FROM roles WHERE name = 'platform-admin'")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        sqlx::query(
            "INSERT INTO role_bindings (id, role_id, subject_kind, subject_id, business_id, \
             created_at) VALUES ($1, $2, 'user', $3, NULL, $4)",
        )
        .bind(new_id())
        .bind(role_id)
        .bind(&user_id)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
