//! Authorisation: policies (actions × resources, allow/deny) granted through
//! roles, evaluated with deny-overrides.
//!
//! Actions are verb+Kind strings (`listBusiness`, `createNamespace`,
//! `queryData`) plus `k8s:{verb}:{group/}{resource}` for Kubernetes access
//! reviews. Resources are paths such as `business:{id}/cluster:{cid}/namespace:{ns}`.
//! Both may use `*` wildcards (matching any run of characters, `/` included).
//! In business-scoped policies `${business}` stands for each business the
//! role is bound in (and its descendants); `${self}` is the caller's user id.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, overriding any allow.
    Deny,
}

/// One policy statement after placeholder substitution.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Allow or deny.
    pub effect: Effect,
    /// Action patterns.
    pub actions: Vec<String>,
    /// Resource patterns (placeholders already substituted).
    pub resources: Vec<String>,
}

/// Expands a policy's resource patterns for one binding.
pub fn substitute(resources: &[String], business: Option<&str>, user_id: &str) -> Vec<String> {
    resources
        .iter()
        .filter_map(|r| {
            let r = r.replace("${self}", user_id);
            if r.contains("${business}") {
                business.map(|b| r.replace("${business}", b))
            } else {
                Some(r)
            }
        })
        .collect()
}

/// Deny-overrides evaluation of `grants` for `action` on `resource`.
pub fn evaluate(grants: &[Grant], action: &str, resource: &str) -> bool {
    let mut allowed = false;
    for g in grants {
        let hit = g.actions.iter().any(|a| glob(a, action, true))
            && g.resources.iter().any(|r| glob(r, resource, false));
        if hit {
            match g.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
    }
    allowed
}

/// `*`-wildcard match; `fold_case` compares ASCII case-insensitively.
pub fn glob(pattern: &str, text: &str, fold_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && eq(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// A built-in policy: name, description, scope, effect, actions, resources.
pub struct BuiltinPolicy {
    /// Unique name.
    pub name: &'static str,
    /// Human description.
    pub description: &'static str,
    /// `platform` or `business`.
    pub scope: &'static str,
    /// Allow or deny.
    pub effect: Effect,
    /// Action patterns.
    pub actions: &'static [&'static str],
    /// Resource patterns.
    pub resources: &'static [&'static str],
}

/// A built-in role and its policies.
pub struct BuiltinRole {
    /// Unique name.
    pub name: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// `platform` or `business`.
    pub scope: &'static str,
    /// Policy names.
    pub policies: &'static [&'static str],
}

const BUSINESS_SCOPE: &[&str] = &["business:${business}", "business:${business}/*"];

/// The predefined policies (TKEStack's `pol-…-administrator`, `-platform`,
/// `-viewer`, `project-owner/member/viewer`).
pub const BUILTIN_POLICIES: &[BuiltinPolicy] = &[
    BuiltinPolicy {
        name: "pol-administrator",
        description: "Everything, everywhere",
        scope: "platform",
        effect: Effect::Allow,
        actions: &["*"],
        resources: &["*"],
    },
    BuiltinPolicy {
        name: "pol-platform-user",
        description: "Read the platform and create businesses",
        scope: "platform",
        effect: Effect::Allow,
        actions: &["get*", "list*", "createBusiness"],
        resources: &["*"],
    },
    BuiltinPolicy {
        name: "pol-platform-user-deny",
        description: "No changes to identities, access rules or clusters; no audit log",
        scope: "platform",
        effect: Effect::Deny,
        actions: &["create*", "update*", "delete*", "listAudit"],
        resources: &[
            "user:*",
            "group:*",
            "role:*",
            "policy:*",
            "cluster:*",
            "audit",
        ],
    },
    BuiltinPolicy {
        name: "pol-self",
        description: "Own portal and API tokens",
        scope: "platform",
        effect: Effect::Allow,
        actions: &["getPortal", "*Token"],
        resources: &["portal", "token:user/${self}"],
    },
    BuiltinPolicy {
        name: "pol-business-owner",
        description: "Everything in the business, its namespaces and children",
        scope: "business",
        effect: Effect::Allow,
        actions: &["*"],
        resources: BUSINESS_SCOPE,
    },
    BuiltinPolicy {
        name: "pol-business-member",
        description: "Use the business: namespaces, data, Kubernetes objects",
        scope: "business",
        effect: Effect::Allow,
        actions: &[
            "get*",
            "list*",
            "queryData",
            "createNamespace",
            "updateNamespace",
            "k8s:*",
        ],
        resources: BUSINESS_SCOPE,
    },
    BuiltinPolicy {
        name: "pol-business-viewer",
        description: "Read the business, its data and Kubernetes objects",
        scope: "business",
        effect: Effect::Allow,
        actions: &[
            "get*",
            "list*",
            "queryData",
            "k8s:get:*",
            "k8s:list:*",
            "k8s:watch:*",
        ],
        resources: BUSINESS_SCOPE,
    },
];

/// The predefined roles.
pub const BUILTIN_ROLES: &[BuiltinRole] = &[
    BuiltinRole {
        name: "platform-admin",
        display_name: "Platform administrator",
        scope: "platform",
        policies: &["pol-administrator"],
    },
    BuiltinRole {
        name: "platform-user",
        display_name: "Platform user",
        scope: "platform",
        policies: &["pol-platform-user", "pol-platform-user-deny", "pol-self"],
    },
    BuiltinRole {
        name: "login-only",
        display_name: "Tenant (login only)",
        scope: "platform",
        policies: &["pol-self"],
    },
    BuiltinRole {
        name: "business-owner",
        display_name: "Business owner",
        scope: "business",
        policies: &["pol-business-owner"],
    },
    BuiltinRole {
        name: "business-member",
        display_name: "Business member",
        scope: "business",
        policies: &["pol-business-member"],
    },
    BuiltinRole {
        name: "business-viewer",
        display_name: "Business viewer",
        scope: "business",
        policies: &["pol-business-viewer"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(role: &str, business: Option<&str>) -> Vec<Grant> {
        let r = BUILTIN_ROLES.iter().find(|r| r.name == role).unwrap();
        r.policies
            .iter()
            .map(|p| {
                let p = BUILTIN_POLICIES.iter().find(|x| x.name == *p).unwrap();
                let res: Vec<String> = p.resources.iter().map(|s| s.to_string()).collect();
                Grant {
                    effect: p.effect,
                    actions: p.actions.iter().map(|s| s.to_string()).collect(),
                    resources: substitute(&res, business, "u1"),
                }
            })
            .collect()
    }

    #[test]
    fn glob_matches() {
        assert!(glob("*", "anything/at:all", false));
        assert!(glob(
            "business:b1/*",
            "business:b1/cluster:c/namespace:n",
            false
        ));
        assert!(!glob("business:b1/*", "business:b10", false));
        assert!(glob("get*", "getBusiness", true));
        assert!(glob("*token", "createToken", true));
        assert!(!glob("k8s:get:*", "k8s:delete:pods", true));
        assert!(glob("a*b*c", "aXXbYYc", false));
        assert!(!glob("a*b*c", "aXXbYY", false));
    }

    #[test]
    fn platform_user_cannot_manage_users_but_can_manage_own_tokens() {
        let g = grants("platform-user", None);
        assert!(evaluate(&g, "listBusiness", "business:x"));
        assert!(!evaluate(&g, "createUser", "user:new"));
        assert!(!evaluate(&g, "listAudit", "audit"));
        assert!(evaluate(&g, "createToken", "token:user/u1"));
        assert!(!evaluate(&g, "createToken", "token:user/u2"));
        assert!(!evaluate(
            &g,
            "queryData",
            "business:b/cluster:c/namespace:n"
        ));
    }

    #[test]
    fn business_roles_are_confined_to_their_business() {
        let g = grants("business-viewer", Some("b1"));
        assert!(evaluate(
            &g,
            "k8s:get:pods",
            "business:b1/cluster:c/namespace:n"
        ));
        assert!(!evaluate(
            &g,
            "k8s:delete:pods",
            "business:b1/cluster:c/namespace:n"
        ));
        assert!(!evaluate(
            &g,
            "k8s:get:pods",
            "business:b2/cluster:c/namespace:n"
        ));
        let m = grants("business-member", Some("b1"));
        assert!(evaluate(
            &m,
            "k8s:delete:apps/deployments",
            "business:b1/cluster:c/namespace:n"
        ));
        assert!(!evaluate(&m, "deleteBusiness", "business:b1"));
        // An unbound business-scoped grant expands to nothing.
        assert!(grants("business-owner", None)[0].resources.is_empty());
    }

    #[test]
    fn deny_overrides_allow() {
        let mut g = grants("platform-admin", None);
        g.push(Grant {
            effect: Effect::Deny,
            actions: vec!["delete*".into()],
            resources: vec!["cluster:*".into()],
        });
        assert!(evaluate(&g, "createCluster", "cluster:new"));
        assert!(!evaluate(&g, "deleteCluster", "cluster:c1"));
    }
}
