//! Cluster usage in Kubernetes mode: each node collector emits only **its
//! share** of the TKEStack cluster usage series, under a recording-rule
//! style name `node:<catalogue name>:share{cluster_id,node}`; built-in
//! recording rules (evaluated by the alert engine) sum the shares into the
//! catalogue names, one series per cluster:
//!
//! ```text
//! k8s_cluster_cpu_core_used = sum without(node) (node:k8s_cluster_cpu_core_used:share)
//! ```
//!
//! Without Kubernetes the machine is the cluster and the catalogue names are
//! emitted directly (no `node` label, no rule needed). The emitter
//! ([`super::tke`]) and the rules are both built from [`CLUSTER_USAGE`], so
//! they cannot drift.

/// Builds the `(catalogue name, share name)` table from the suffixes after
/// `k8s_cluster_`.
macro_rules! usage_table {
    ($($s:literal),* $(,)?) => {
        &[$((concat!("k8s_cluster_", $s), concat!("node:k8s_cluster_", $s, ":share"))),*]
    };
}

/// Every cluster usage series: `(catalogue name, per-node share name)`.
pub const CLUSTER_USAGE: &[(&str, &str)] = usage_table!(
    "cpu_core_used",
    "mem_usage_bytes",
    "mem_no_cache_bytes",
    "rate_cpu_core_used_cluster",
    "rate_mem_usage_bytes_cluster",
    "rate_mem_no_cache_bytes_cluster",
    "network_receive_bytes_bw",
    "network_transmit_bytes_bw",
    "network_receive_bytes",
    "network_transmit_bytes",
    "network_receive_packets",
    "network_transmit_packets",
    "fs_read_bytes",
    "fs_write_bytes",
    "fs_read_times",
    "fs_write_times",
    "gpu_used",
    "gpu_memory_used",
    "rate_gpu_used_cluster",
    "rate_gpu_memory_used_cluster",
);

/// Name of the built-in rule group.
pub const RULE_GROUP: &str = "tidewatch-k8s-cluster-usage";

/// The name to emit cluster usage series `name` under: the catalogue name
/// itself when the machine is the whole cluster (`share == false`), its
/// share name otherwise. `name` must be in [`CLUSTER_USAGE`] (a programming
/// error otherwise; the unit tests emit every entry).
pub fn emitted_name(name: &str, share: bool) -> &'static str {
    let (full, share_name) = CLUSTER_USAGE
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not a cluster usage series"));
    if share { share_name } else { full }
}

/// The per-node share name of cluster usage series `name`, if it is one.
pub fn share_name(name: &str) -> Option<&'static str> {
    CLUSTER_USAGE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// The catalogue name whose per-node share `name` is, if it is one.
pub fn share_of(name: &str) -> Option<&'static str> {
    CLUSTER_USAGE
        .iter()
        .find(|(_, s)| *s == name)
        .map(|(n, _)| *n)
}

/// One recording rule: `record` is the result of PromQL `expr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingRule {
    /// The recorded series name (a catalogue name).
    pub record: &'static str,
    /// The expression summing the per-node shares.
    pub expr: String,
}

/// The recording rules producing every cluster usage catalogue name from
/// the per-node shares (group [`RULE_GROUP`]).
pub fn recording_rules() -> Vec<RecordingRule> {
    CLUSTER_USAGE
        .iter()
        .map(|(name, share)| RecordingRule {
            record: name,
            expr: format!("sum without(node) ({share})"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_record_every_catalogue_name_from_its_share() {
        let rules = recording_rules();
        assert_eq!(rules.len(), 20);
        assert_eq!(rules[0].record, "k8s_cluster_cpu_core_used");
        assert_eq!(
            rules[0].expr,
            "sum without(node) (node:k8s_cluster_cpu_core_used:share)"
        );
        for (name, share) in CLUSTER_USAGE {
            assert_eq!(share_of(share), Some(*name));
            assert_eq!(emitted_name(name, false), *name);
            assert_eq!(emitted_name(name, true), *share);
        }
        assert_eq!(share_of("k8s_cluster_cpu_core_used"), None);
    }
}
