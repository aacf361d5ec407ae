//! hermetic-envelope (work in progress).
