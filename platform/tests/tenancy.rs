//! Login, users, roles, tokens and the audit log through the HTTP API.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tidewatch_platform::Config;

#[tokio::test]
async fn login_sets_an_httponly_cookie_and_me_needs_it() {
    let t = common::start(Config::default()).await;
    let (st, v) = t.call(Method::GET, "/api/platform/v1/me", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(v["error"].is_string());

    let resp = t
        .http
        .post(format!("{}/api/platform/v1/login", t.base))
        .json(&json!({"username": "admin", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = t
        .http
        .post(format!("{}/api/platform/v1/login", t.base))
        .json(&json!({"username": "admin", "password": "admin-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("tidewatch_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["user"]["name"], "admin");
    assert_eq!(v["user"]["is_admin"], true);
    assert_eq!(v["user"]["roles"], json!(["platform-admin"]));

    let pair = cookie.split(';').next().unwrap().to_string();
    let me = t
        .http
        .get(format!("{}/api/platform/v1/me", t.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    let out = t
        .http
        .post(format!("{}/api/platform/v1/logout", t.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let me = t
        .http
        .get(format!("{}/api/platform/v1/me", t.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "session must end at logout"
    );
}

#[tokio::test]
async fn users_bad_input_is_rejected_with_the_field_and_changes_nothing() {
    let t = common::start(Config::default()).await;
    let before = t
        .admin_ok(Method::GET, "/api/platform/v1/users", None, StatusCode::OK)
        .await;
    for (body, field, status) in [
        (
            json!({"password": "password-123"}),
            "name",
            StatusCode::BAD_REQUEST,
        ),
        (json!({"name": "bob"}), "password", StatusCode::BAD_REQUEST),
        (
            json!({"name": "bob", "password": "short"}),
            "password",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "Bob!", "password": "password-123"}),
            "name",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "bob", "password": "password-123", "roles": ["nope"]}),
            "roles[0]",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "bob", "password": "password-123", "roles": ["business-owner"]}),
            "roles[0]",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "bob", "password": "password-123", "colour": "red"}),
            "colour",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "admin", "password": "password-123"}),
            "name",
            StatusCode::CONFLICT,
        ),
    ] {
        let (st, v) = t
            .call(
                Method::POST,
                "/api/platform/v1/users",
                Some(&t.admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, status, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let after = t
        .admin_ok(Method::GET, "/api/platform/v1/users", None, StatusCode::OK)
        .await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn platform_user_cannot_administer_and_tokens_are_revocable() {
    let t = common::start(Config::default()).await;
    let tok = t.user_with_token("carol", json!(["platform-user"])).await;
    let (st, me) = t
        .call(Method::GET, "/api/platform/v1/me", Some(&tok), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["user"]["is_admin"], false);
    let (st, _) = t
        .call(
            Method::POST,
            "/api/platform/v1/users",
            Some(&tok),
            Some(json!({"name": "eve", "password": "password-123"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = t
        .call(Method::GET, "/api/platform/v1/audit", Some(&tok), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Own tokens: allowed; other people's: not.
    let (st, v) = t
        .call(
            Method::POST,
            "/api/platform/v1/tokens",
            Some(&tok),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _) = t
        .call(
            Method::POST,
            "/api/platform/v1/tokens",
            Some(&tok),
            Some(json!({"name": "x", "user": "admin"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Revoke: the token stops working.
    let id = v["id"].as_str().unwrap();
    let ci = v["token"].as_str().unwrap();
    assert_eq!(
        t.call(Method::GET, "/api/platform/v1/me", Some(ci), None)
            .await
            .0,
        StatusCode::OK
    );
    let (st, _) = t
        .call(
            Method::DELETE,
            &format!("/api/platform/v1/tokens/{id}"),
            Some(&tok),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        t.call(Method::GET, "/api/platform/v1/me", Some(ci), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Locking a user disables their tokens.
    t.admin_ok(
        Method::PATCH,
        "/api/platform/v1/users/carol",
        Some(json!({"locked": true})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        t.call(Method::GET, "/api/platform/v1/me", Some(&tok), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // The audit log saw it all.
    let audit = t
        .admin_ok(
            Method::GET,
            "/api/platform/v1/audit?actor=carol",
            None,
            StatusCode::OK,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["deleteToken", "createToken"]);
}

#[tokio::test]
async fn custom_roles_and_policies_grant_exactly_what_they_say() {
    let t = common::start(Config::default()).await;
    t.admin_ok(
        Method::POST,
        "/api/platform/v1/policies",
        Some(json!({"name": "audit-reader", "actions": ["listAudit"], "resources": ["audit"]})),
        StatusCode::CREATED,
    )
    .await;
    let (st, v) = t
        .call(
            Method::POST,
            "/api/platform/v1/roles",
            Some(&t.admin),
            Some(json!({"name": "auditor", "policies": ["missing"]})),
        )
        .await;
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("policies[0]"))
    );
    t.admin_ok(
        Method::POST,
        "/api/platform/v1/roles",
        Some(json!({"name": "auditor", "policies": ["audit-reader", "pol-self"]})),
        StatusCode::CREATED,
    )
    .await;
    let tok = t.user_with_token("dave", json!(["auditor"])).await;
    assert_eq!(
        t.call(Method::GET, "/api/platform/v1/audit", Some(&tok), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        t.call(Method::GET, "/api/platform/v1/users", Some(&tok), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Built-ins are read-only; a used policy cannot be deleted.
    let (st, _) = t
        .call(
            Method::DELETE,
            "/api/platform/v1/roles/platform-admin",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = t
        .call(
            Method::DELETE,
            "/api/platform/v1/policies/audit-reader",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
}

#[tokio::test]
async fn openapi_document_lists_the_api() {
    let t = common::start(Config::default()).await;
    let (st, v) = t
        .call(Method::GET, "/api/platform/openapi.json", None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/platform/v1/login",
        "/api/platform/v1/businesses/{id}/namespaces",
        "/api/platform/v1/clusters/{id}/pods",
        "/api/platform/v1/tokens",
    ] {
        assert!(v["paths"].get(p).is_some(), "missing {p}");
    }
}

#[tokio::test]
async fn dashboards_fall_back_to_the_app_but_not_for_api_paths() {
    let t = common::start(Config::default()).await;
    let resp = t
        .http
        .get(format!("{}/clusters/abc", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"),
        "{body}"
    );
    let resp = t
        .http
        .get(format!("{}/api/platform/v1/nope", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}
