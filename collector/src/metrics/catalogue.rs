//! The TKEStack metric catalogue's names (`shared/reference/tkestack.md`
//! A.5) in the reference's brace notation, so tests (and tools) can walk
//! the whole list: `expand` turns `k8s_node_fs_{read,write}_bytes` into
//! both names.

/// A.5, one entry per line of the reference, brace groups as written there
/// (`{a,b}` expands to both; "the same usage set" spelled out).
pub const CATALOGUE: &[&str] = &[
    // Cluster.
    "k8s_cluster_{cpu_core_total,memory_total,gpu_total,gpu_memory_total}",
    "k8s_cluster_{cpu_core_used,mem_usage_bytes,mem_no_cache_bytes,cpu_core_request,mem_request_bytes}",
    "k8s_cluster_{rate_cpu_core_used_cluster,rate_mem_usage_bytes_cluster,rate_mem_no_cache_bytes_cluster,rate_cpu_core_request_cluster,rate_mem_request_bytes_cluster}",
    "k8s_cluster_{gpu_used,gpu_memory_used,rate_gpu_used_cluster,rate_gpu_request_cluster,rate_gpu_memory_used_cluster,rate_gpu_memory_request_cluster}",
    "k8s_cluster_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_cluster_fs_{read,write}_{bytes,times}",
    "k8s_cluster_{node_num,node_not_ready_num,node_not_ready_rate,pod_num}",
    "k8s_cluster_pod_status_phase_{failed,pending,running,succeeded,unknown}_{num,rate}",
    "k8s_cluster_{workload_num,workload_replicas_expected_num,workload_replicas_unexpected_num,workload_replicas_zero_num,age}",
    // Node.
    "k8s_node_{cpu_usage,mem_usage,mem_usage_no_cache}",
    "k8s_node_{gpu_usage,gpu_memory_usage}",
    "k8s_node_fs_{read,write}_{bytes,times}",
    "k8s_node_{disk_space_rate,filesystem_avail_bytes,filesystem_size_bytes,filesystem_usage}",
    "k8s_node_network_{receive,transmit}_bytes_bw",
    "k8s_node_{pod_num,pod_restart_total}",
    "k8s_node_{status_ready,status_ready_with_node_role,not_ready}",
    "k8s_node_{resource_request,resource_limit,status_capacity,status_allocatable}",
    "k8s_node_{info,age}",
    // Workload and namespace (the same usage set).
    "k8s_{workload,namespace}_{cpu_core_used,rate_cpu_core_used_cluster,mem_usage_bytes,mem_no_cache_bytes,rate_mem_usage_bytes_cluster,rate_mem_no_cache_cluster}",
    "k8s_{workload,namespace}_{gpu_used,rate_gpu_used_cluster,gpu_memory_used,rate_gpu_memory_used_cluster}",
    "k8s_{workload,namespace}_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_{workload,namespace}_fs_{read,write}_{bytes,times}",
    "k8s_workload_{pod_restart_total,resource_request,resource_limit,replicas_desire,replicas_current,abnormal}",
    // Pod.
    "k8s_pod_{cpu_core_used,rate_cpu_core_used_request,rate_cpu_core_used_limit,rate_cpu_core_used_node}",
    "k8s_pod_{mem_usage_bytes,mem_no_cache_bytes}",
    "k8s_pod_rate_{mem_usage,mem_no_cache}_{request,limit,node}",
    "k8s_pod_{gpu_used,gpu_request,rate_gpu_used_request,rate_gpu_used_node,gpu_memory_used,gpu_memory_request,rate_gpu_memory_used_request,rate_gpu_memory_used_node}",
    "k8s_pod_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_pod_fs_{read,write}_{bytes,times}",
    "k8s_pod_{resource_request,resource_limit}",
    "k8s_pod_{status_ready,status_phase,restart_total,restart_total_number}",
    // Container.
    "k8s_container_{cpu_core_used,rate_cpu_core_used_request,rate_cpu_core_used_limit,rate_cpu_core_used_node}",
    "k8s_container_{mem_usage_bytes,mem_no_cache_bytes}",
    "k8s_container_rate_{mem_usage,mem_no_cache}_{request,limit,node}",
    "k8s_container_{gpu_used,rate_gpu_used_request,rate_gpu_used_node,gpu_memory_used,rate_gpu_memory_used_request,rate_gpu_memory_used_node}",
    "k8s_container_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "k8s_container_fs_{read,write}_{bytes,times}",
    // Component.
    "k8s_component_{apiserver,etcd,scheduler,controller_manager}_ready",
    "k8s_component_{apiserver_request_latency,scheduler_scheduling_latency}",
    "k8s_component_{apiserver,scheduler,controller_manager,etcd}_version",
    // Business (project).
    "project_{namespace,cluster}_{cpu_core_used,mem_usage_bytes,mem_no_cache_bytes,gpu_used,gpu_memory_used}",
    "project_{namespace,cluster}_network_{receive,transmit}_{bytes_bw,bytes,packets}",
    "project_{namespace,cluster}_fs_{read,write}_bytes",
    "project_cluster_rate_{cpu_core_used,mem_usage_bytes,mem_no_cache,gpu_used,gpu_memory_used}_cluster",
];

/// Expands `{a,b}` groups (no nesting).
pub fn expand(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let close = open + pattern[open..].find('}').unwrap();
    pattern[open + 1..close]
        .split(',')
        .flat_map(|alt| {
            expand(&format!(
                "{}{}{}",
                &pattern[..open],
                alt.trim(),
                &pattern[close + 1..]
            ))
        })
        .collect()
}
