//! Secret delivery to the workload (in progress).
