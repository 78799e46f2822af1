//! The routing tree: which routes (receiver, grouping, timing) an alert
//! belongs to, with Alertmanager's semantics (depth first, `continue`,
//! inheritance of unset fields from the parent).

use std::time::Duration;

use tidewatch_common::{Label, Labels};

use crate::config::RouteConfig;
use crate::matcher::{MatchOp, Matcher, Matchers};

/// Alertmanager's default group_wait.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Alertmanager's default group_interval.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);
/// Alertmanager's default repeat_interval.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// How alerts of a route are grouped.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// `...`: every label.
    All,
    /// These labels.
    Labels(Vec<String>),
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Stable id: the matchers from the root down, plus the child index.
    pub id: String,
    /// Receiver name.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// Matchers of this node.
    pub matchers: Matchers,
    /// Keep matching siblings.
    pub continue_: bool,
    /// Wait before the first notification of a group.
    pub group_wait: Duration,
    /// Wait between notifications of a changed group.
    pub group_interval: Duration,
    /// Wait before re-sending an unchanged group.
    pub repeat_interval: Duration,
    /// Muted during these intervals.
    pub mute_time_intervals: Vec<String>,
    /// Muted outside these intervals (when non-empty).
    pub active_time_intervals: Vec<String>,
    /// Children.
    pub routes: Vec<Route>,
}

impl Route {
    /// Compiles the tree (the config is validated beforehand).
    pub fn build(cfg: &RouteConfig) -> Result<Route, String> {
        Self::build_child(cfg, None, "{}".to_string())
    }

    /// The default tree when none is configured: everything to `receiver`,
    /// grouped like TKEStack's per-cluster Alertmanager.
    pub fn default_for(receiver: &str) -> Route {
        Route {
            id: "{}".into(),
            receiver: receiver.into(),
            group_by: GroupBy::Labels(vec!["alertname".into(), "alarmPolicyName".into()]),
            matchers: Matchers::default(),
            continue_: false,
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: Duration::from_secs(3600),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
        }
    }

    fn build_child(cfg: &RouteConfig, parent: Option<&Route>, id: String) -> Result<Route, String> {
        let mut matchers = Matchers::parse_list(&cfg.matchers)?;
        for (k, v) in &cfg.match_eq {
            matchers.0.push(Matcher::new(k, MatchOp::Eq, v)?);
        }
        for (k, v) in &cfg.match_re {
            matchers.0.push(Matcher::new(k, MatchOp::Re, v)?);
        }
        let group_by = match &cfg.group_by {
            Some(g) if g.iter().any(|x| x == "...") => GroupBy::All,
            Some(g) => GroupBy::Labels(g.clone()),
            None => parent.map_or(GroupBy::Labels(Vec::new()), |p| p.group_by.clone()),
        };
        let mut route = Route {
            id,
            receiver: cfg
                .receiver
                .clone()
                .or_else(|| parent.map(|p| p.receiver.clone()))
                .unwrap_or_default(),
            group_by,
            matchers,
            continue_: cfg.continue_,
            group_wait: cfg
                .group_wait
                .or(parent.map(|p| p.group_wait))
                .unwrap_or(DEFAULT_GROUP_WAIT),
            group_interval: cfg
                .group_interval
                .or(parent.map(|p| p.group_interval))
                .unwrap_or(DEFAULT_GROUP_INTERVAL),
            repeat_interval: cfg
                .repeat_interval
                .or(parent.map(|p| p.repeat_interval))
                .unwrap_or(DEFAULT_REPEAT_INTERVAL),
            mute_time_intervals: cfg.mute_time_intervals.clone(),
            active_time_intervals: cfg.active_time_intervals.clone(),
            routes: Vec::new(),
        };
        let ms: Vec<String> = route.matchers.0.iter().map(|m| m.to_string()).collect();
        let base = if parent.is_some() {
            format!("{}/{{{}}}", route.id, ms.join(","))
        } else {
            route.id.clone()
        };
        route.id = base.clone();
        for (i, c) in cfg.routes.iter().enumerate() {
            let child = Self::build_child(c, Some(&route), format!("{base}/{i}"))?;
            route.routes.push(child);
        }
        Ok(route)
    }

    /// The routes `labels` is routed to.
    pub fn match_alert<'a>(&'a self, labels: &Labels) -> Vec<&'a Route> {
        if !self.matchers.matches(labels) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for c in &self.routes {
            let m = c.match_alert(labels);
            let matched = !m.is_empty();
            out.extend(m);
            if matched && !c.continue_ {
                break;
            }
        }
        if out.is_empty() {
            out.push(self);
        }
        out
    }

    /// The grouping labels of `labels` under this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => Labels::from_vec(
                names
                    .iter()
                    .filter_map(|n| labels.get(n).map(|v| Label::new(n.clone(), v)))
                    .collect(),
            ),
        }
    }

    /// Every receiver named in the tree.
    pub fn receivers(&self, out: &mut Vec<String>) {
        if !out.contains(&self.receiver) {
            out.push(self.receiver.clone());
        }
        for c in &self.routes {
            c.receivers(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_routes_with_continue() {
        let cfg: RouteConfig = serde_yaml::from_str(
            r#"
receiver: default
group_by: [alertname]
group_wait: 1s
routes:
  - matchers: ['severity="page"']
    receiver: pager
    continue: true
    routes:
      - match: {team: db}
        receiver: dba
  - match_re: {severity: "page|warn"}
    receiver: chat
    group_by: ['...']
  - receiver: never
"#,
        )
        .unwrap();
        let r = Route::build(&cfg).unwrap();
        let l = Labels::from_pairs([("alertname", "X"), ("severity", "page"), ("team", "db")]);
        let names: Vec<&str> = r
            .match_alert(&l)
            .iter()
            .map(|r| r.receiver.as_str())
            .collect();
        assert_eq!(names, ["dba", "chat"]);
        let m = r.match_alert(&l);
        assert_eq!(m[0].group_wait, Duration::from_secs(1));
        assert_eq!(m[1].group_labels(&l), l);
        assert_eq!(m[0].group_labels(&l).len(), 1);
        let other = Labels::from_pairs([("alertname", "Y")]);
        assert_eq!(r.match_alert(&other)[0].receiver, "never");
        assert_ne!(m[0].id, m[1].id);
    }
}
