//! hermetic-parent (work in progress).
