//! Test stand-ins. There is no Kubernetes API server on the build
//! machines, so [`kube_standin`] provides a protocol-level one (real-shaped
//! JSON, list/watch with resourceVersion, bookmarks, 410 Gone) for the
//! platform's tests and the end-to-end tests. It is a test stand-in, not a
//! Kubernetes implementation.

pub mod kube_standin;
